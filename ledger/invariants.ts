import type { Sql } from '../infra/index.ts';

/**
 * Audits the whole ledger against its guarantees, read-only, in one REPEATABLE READ snapshot.
 * Used by the tests after every step and by the crash test after each kill; cheap enough for an
 * operator's periodic check on modest data (full scans).
 * @returns human-readable violations; empty when every invariant holds.
 */
export async function checkInvariants(sql: Sql): Promise<string[]> {
  const out: string[] = [];
  await sql.begin('isolation level repeatable read read only', async (tx) => {
    const add = (label: string, rows: readonly unknown[]) => {
      for (const r of rows) out.push(`${label}: ${JSON.stringify(r)}`);
    };
    // 1. Every posting balances per currency (and per phase: pending holds balance among themselves).
    add(
      'unbalanced posting',
      await tx`select posting_id, currency, phase, sum(amount)::int8 as sum from ledger_entries
               group by posting_id, currency, phase having sum(amount) <> 0 limit 20`,
    );
    // 2. Cached balances equal the entries.
    add(
      'cached balance differs from entries',
      await tx`
        select a.id, a.key, a.balance, a.pending_debits, a.pending_credits, coalesce(s.posted, 0) as posted,
               coalesce(s.held_debits, 0) as held_debits, coalesce(s.held_credits, 0) as held_credits
        from ledger_accounts a left join (
          select e.account_id,
            sum(e.amount) filter (where e.phase = 'posted')::int8 as posted,
            sum(-e.amount) filter (where e.phase = 'pending' and e.amount < 0 and p.status = 'pending')::int8 as held_debits,
            sum(e.amount) filter (where e.phase = 'pending' and e.amount > 0 and p.status = 'pending')::int8 as held_credits
          from ledger_entries e join ledger_postings p on p.id = e.posting_id group by e.account_id
        ) s on s.account_id = a.id
        where a.balance <> coalesce(s.posted, 0) or a.pending_debits <> coalesce(s.held_debits, 0)
           or a.pending_credits <> coalesce(s.held_credits, 0)
        limit 20`,
    );
    // 3. No forbidden negative balance.
    add(
      'negative balance',
      await tx`select id, key, balance, pending_debits from ledger_accounts
               where debits_must_not_exceed_credits and balance - pending_debits < 0 limit 20`,
    );
    // 3b. The platform's revenue (margin) accounts: below zero only by the amounts of admin overrides. Entries of
    // postings whose meta records an override, and of every posting of a conversion any of whose postings does,
    // are set aside; what is left must not be negative (each conversion or click charge without an override
    // earns at least what it pays, and reversing one takes back no more than it earned).
    add(
      'platform revenue below zero without an override',
      await tx`
        select a.id, a.key, a.balance, coalesce(o.amount, 0)::int8 as overridden
        from ledger_accounts a left join (
          select e.account_id, sum(e.amount)::int8 as amount
          from ledger_entries e join ledger_postings p on p.id = e.posting_id
          where e.phase = 'posted' and (p.meta ? 'override' or p.conversion_id in (
            select conversion_id from ledger_postings where meta ? 'override' and conversion_id is not null))
          group by e.account_id
        ) o on o.account_id = a.id
        where a.owner_type = 'platform' and a.purpose = 'revenue' and a.balance - coalesce(o.amount, 0) < 0
        limit 20`,
    );
    // 4. Each pending posting resolved at most once, and its status agrees with its resolution.
    add(
      'pending posting resolution mismatch',
      await tx`
        select p.id, p.status, count(r.id) as resolutions,
               coalesce(sum((r.meta->>'amount')::int8), 0) as moved, max(pe.amount) as held
        from ledger_postings p
        left join ledger_postings r on r.pending_id = p.id
        left join lateral (select max(amount) as amount from ledger_entries where posting_id = p.id) pe on true
        where p.id in (select id from ledger_postings where status <> 'posted' or id in (select pending_id from ledger_postings))
        group by p.id, p.status
        having (p.status = 'pending' and count(r.id) <> 0) or (p.status <> 'pending' and count(r.id) <> 1)
            or coalesce(sum((r.meta->>'amount')::int8), 0) > max(pe.amount)
            or (p.status = 'voided' and coalesce(sum((r.meta->>'amount')::int8), 0) <> 0)
        limit 20`,
    );
    // 5. Postings other than pure status/no-money ones carry entries (nothing half-written).
    add(
      'posting without entries',
      await tx`
        select p.id, p.type from ledger_postings p
        where p.type in ('deposit', 'campaign_reserve', 'campaign_release', 'conversion', 'conversion_approve',
                         'conversion_adjust', 'conversion_reverse', 'withdrawal')
          and not exists (select 1 from ledger_entries e where e.posting_id = p.id)
        limit 20`,
    );
    // 6. Campaigns never spend past their budget or daily cap; the spend table agrees with the entries.
    add(
      'campaign over budget',
      await tx`
        select c.id, c.budget, s.spent, coalesce(r.balance, 0) as reserved
        from campaigns c join (select campaign_id, sum(spent)::int8 as spent from ledger_campaign_spend group by 1) s
          on s.campaign_id = c.id
        left join ledger_accounts r on r.purpose = 'reserved' and r.campaign_id = c.id
        where c.budget is not null and s.spent + coalesce(r.balance, 0) > c.budget
        limit 20`,
    );
    add(
      'campaign over daily cap or negative day',
      await tx`
        select s.campaign_id, s.day, s.spent, c.daily_cap from ledger_campaign_spend s join campaigns c on c.id = s.campaign_id
        where s.spent < 0 or (c.daily_cap is not null and s.spent > c.daily_cap) limit 20`,
    );
    add(
      'campaign spend differs from entries',
      await tx`
        select coalesce(s.campaign_id, e.campaign_id) as campaign_id, s.spent, e.spent as entries
        from (select campaign_id, sum(spent)::int8 as spent from ledger_campaign_spend group by 1) s
        full join (
          select p.campaign_id, sum(en.amount)::int8 as spent from ledger_entries en
          join ledger_postings p on p.id = en.posting_id join ledger_accounts a on a.id = en.account_id
          where a.purpose = 'spent' group by 1
        ) e on e.campaign_id = s.campaign_id
        where coalesce(s.spent, 0) <> coalesce(e.spent, 0) limit 20`,
    );
    // 7. Conversion status agrees with its postings (status change and posting are one transaction).
    add(
      'conversion status disagrees with postings',
      await tx`
        select v.id, v.status,
          bool_or(p.type = 'conversion') as accrued, bool_or(p.type = 'conversion_approve') as approved,
          bool_or(p.type = 'conversion_reverse') as reversed
        from conversions v join ledger_postings p on p.conversion_id = v.id
        group by v.id, v.status
        having (v.status = 'pending' and (bool_or(p.type = 'conversion_approve') or bool_or(p.type = 'conversion_reverse')))
            or (v.status in ('rejected', 'reversed') and not bool_or(p.type = 'conversion_reverse'))
            or (v.status <> 'pending' and v.status <> 'approved' and v.status <> 'rejected' and v.status <> 'reversed')
        limit 20`,
    );
    // 8. Cash rewards (./rewards.ts) are exactly their affiliates' legs of the booking posting, follow their
    // conversion's status, and without an override sum to at most the revenue booked (tiers 1 + 2 + 3 ≤ revenue).
    add(
      'cash reward differs from its leg',
      await tx`
        select r.id, r.conversion_id, r.tier_level, r.amount, coalesce(l.amount, 0) as leg from rewards r
        left join lateral (
          select sum(e.amount)::int8 as amount from ledger_entries e join ledger_accounts a on a.id = e.account_id
          where e.posting_id = r.posting_id and a.owner_type = 'affiliate' and a.owner_id = r.affiliate_id
        ) l on true
        where r.kind = 'cash' and r.amount <> coalesce(l.amount, 0) limit 20`,
    );
    add(
      'reward status differs from its conversion',
      await tx`select r.id, r.status, v.status as conversion_status from rewards r
               join conversions v on v.id = r.conversion_id where r.status <> v.status limit 20`,
    );
    add(
      'rewards of a conversion exceed its revenue without an override',
      await tx`
        select p.id, p.meta->>'revenue' as revenue, sum(r.amount)::int8 as rewards
        from ledger_postings p join rewards r on r.posting_id = p.id
        where not p.meta ? 'override' group by p.id, p.meta
        having sum(r.amount) > (p.meta->>'revenue')::int8 limit 20`,
    );
  });
  return out;
}
