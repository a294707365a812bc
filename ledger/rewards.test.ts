/**
 * Tiers and rewards in the ledger: a sub-affiliate's conversion pays its recruiters (tier 2, tier 3) as legs of the
 * same posting, the margin guard sees the sum of every payout, approval releases every hold, a reversal undoes every
 * leg; non-cash rewards create a fulfilment and pay no affiliate cash; the three balance states move as a
 * conversion goes pending → approved → withdrawn. The file's `after` audit runs checkInvariants.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Sql } from '../infra/index.ts';
import { HOUR, ledgerWorld, makeConversion, makeUser, runningCampaign } from './testing.ts';

/** An affiliate recruited by `parent` (null: none). */
async function recruit(sql: Sql, parent: number | null): Promise<number> {
  const id = await makeUser(sql, 'affiliate');
  await sql`update users set parent_affiliate_id = ${parent} where id = ${id}`;
  return id;
}

/** The posted legs of one conversion's `conversion` posting, by account key. */
async function legs(sql: Sql, conv: string): Promise<Record<string, number>> {
  const rows = await sql<{ key: string; amount: number }[]>`
    select a.key, e.amount from ledger_entries e join ledger_postings p on p.id = e.posting_id
    join ledger_accounts a on a.id = e.account_id where p.conversion_id = ${conv} and p.type = 'conversion'`;
  return Object.fromEntries(rows.map((r) => [r.key, Number(r.amount)]));
}

describe('ledger tiers and rewards', () => {
  const world = ledgerWorld();

  it('pays tier 2 and tier 3 as legs of the one posting, with rewards rows and events', async () => {
    const { env, ledger } = world;
    const {
      adv,
      aff: grand,
      camp,
    } = await runningCampaign(world, { budget: 10_000, revenue: 1_000, payout: 700 }, 10_000);
    await env.sql`update campaigns set tier2_share_bp = 1000, tier3_share_bp = 500 where id = ${camp}`;
    const parent = await recruit(env.sql, grand);
    const sub = await recruit(env.sql, parent);
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: sub,
      revenue: 1_000,
      payout: 700,
    });
    const out = await ledger.conversionRecorded({ id: conv });
    assert.equal(out.type, 'posted');
    // 10 % of 700 = 70 to the parent, 5 % = 35 to the grandparent; the margin is 1 000 − 805.
    assert.deepEqual(await legs(env.sql, conv), {
      [`advertiser:${adv}:reserved:USD:${camp}`]: -1_000,
      [`platform:${adv}:revenue:USD:0`]: 195,
      [`advertiser:${adv}:spent:USD:0`]: 1_000,
      [`platform:${adv}:spend_offset:USD:0`]: -1_000,
      [`affiliate:${sub}:pending:USD:0`]: 700,
      [`affiliate:${parent}:pending:USD:0`]: 70,
      [`affiliate:${grand}:pending:USD:0`]: 35,
    });
    const rewards = await env.sql<{ affiliate_id: number; tier_level: number; amount: number; status: string }[]>`
      select affiliate_id, tier_level, amount, status from rewards where conversion_id = ${conv} order by tier_level`;
    assert.deepEqual(
      rewards.map((r) => ({ ...r, affiliate_id: Number(r.affiliate_id), amount: Number(r.amount) })),
      [
        { affiliate_id: sub, tier_level: 1, amount: 700, status: 'pending' },
        { affiliate_id: parent, tier_level: 2, amount: 70, status: 'pending' },
        { affiliate_id: grand, tier_level: 3, amount: 35, status: 'pending' },
      ],
    );
    assert.ok(
      await world.received(
        (m) =>
          m.msg.type === 'reward_created' &&
          (m.msg.data as { conversion_id?: string; tier_level?: number }).conversion_id === conv &&
          (m.msg.data as { tier_level?: number }).tier_level === 3,
      ),
    );
    // Booking again moves nothing and creates no second reward or event.
    assert.equal((await ledger.conversionRecorded({ id: conv })).type, 'replayed');
    const [n] = await env.sql<{ n: number }[]>`select count(*)::int as n from rewards where conversion_id = ${conv}`;
    assert.equal(n!.n, 3);
    const created = world.messages.filter(
      (m) => m.msg.type === 'reward_created' && (m.msg.data as { conversion_id?: string }).conversion_id === conv,
    );
    assert.equal(created.length, 3);
    // The recruiter sees its own reward, not the recruit's.
    assert.deepEqual(
      created.map((m) => (m.msg.user_ids as number[]).sort()),
      [[adv, sub].sort(), [adv, parent].sort(), [adv, grand].sort()],
    );

    // Approval releases every affiliate's hold; reversal undoes every leg and follows in the rewards.
    await ledger.approveConversion(conv);
    assert.equal((await ledger.affiliateBalances(parent))[0]!.approved, 70);
    assert.equal((await ledger.affiliateBalances(grand))[0]!.approved, 35);
    await ledger.reverseConversion(conv, 'reversed', 'chargeback');
    for (const who of [sub, parent, grand]) {
      const [b] = await ledger.affiliateBalances(who);
      assert.equal(b!.pending + b!.approved, 0, `affiliate ${who} keeps nothing`);
    }
    const statuses = await env.sql`select distinct status from rewards where conversion_id = ${conv}`;
    assert.deepEqual(
      statuses.map((r) => r.status),
      ['reversed'],
    );
    const [margin] = await env.sql<{ balance: number }[]>`
      select balance from ledger_accounts where key = ${`platform:${adv}:revenue:USD:0`}`;
    assert.equal(Number(margin!.balance), 0);
  });

  it('refuses a conversion whose tier shares would take the payouts past its revenue (negative_margin)', async () => {
    const { env, ledger } = world;
    const {
      adv,
      aff: parent,
      camp,
    } = await runningCampaign(world, { budget: 10_000, revenue: 1_000, payout: 900 }, 10_000);
    await env.sql`update campaigns set tier2_share_bp = 2000 where id = ${camp}`;
    const sub = await recruit(env.sql, parent);
    // Without a recruiter the same terms are fine, and leave the platform 100 of margin on this advertiser
    // (so the revenue account alone would cover the next posting's −80: the sum check must refuse it).
    const alone = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: parent,
      revenue: 1_000,
      payout: 900,
    });
    assert.equal((await ledger.conversionRecorded({ id: alone })).type, 'posted');
    // 900 + 20 % of 900 = 1 080 > 1 000.
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: sub,
      revenue: 1_000,
      payout: 900,
    });
    assert.deepEqual(await ledger.conversionRecorded({ id: conv }), { type: 'rejected', reason: 'negative_margin' });
    const posted = await env.sql`select 1 from ledger_postings where conversion_id = ${conv}`;
    assert.equal(posted.length, 0);
    const rewards = await env.sql`select 1 from rewards where conversion_id = ${conv}`;
    assert.equal(rewards.length, 0);
  });

  it('uses the network default share when the campaign sets none', async () => {
    const { env } = world;
    const ledger = world.ledgerWith({ config: { TIER2_SHARE_BP: 2500 } });
    const {
      adv,
      aff: parent,
      camp,
    } = await runningCampaign({ env, ledger }, { budget: 10_000, revenue: 1_000, payout: 400 }, 10_000);
    const sub = await recruit(env.sql, parent);
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: sub,
      revenue: 1_000,
      payout: 400,
    });
    await ledger.conversionRecorded({ id: conv });
    assert.equal((await legs(env.sql, conv))[`affiliate:${parent}:pending:USD:0`], 100);
  });

  it('books a non-cash reward as a fulfilment and pays its affiliate no cash', async () => {
    const { env, ledger } = world;
    const {
      adv,
      aff: parent,
      camp,
    } = await runningCampaign(world, { budget: 10_000, revenue: 500, payout: 0 }, 10_000);
    await env.sql`update campaigns set tier2_share_bp = 5000,
                  goals = ${env.sql.json([{ goal: 'signup', reward: { unit: 'free_months', quantity: 3 } }])}
                  where id = ${camp}`;
    const sub = await recruit(env.sql, parent);
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: sub,
      revenue: 500,
      payout: 0,
    });
    await env.sql`update conversions set goal = 'signup' where id = ${conv}`;
    assert.equal((await ledger.conversionRecorded({ id: conv })).type, 'posted');
    const l = await legs(env.sql, conv);
    assert.equal(
      Object.keys(l).some((k) => k.startsWith('affiliate:')),
      false,
      'no affiliate leg',
    );
    assert.equal(l[`platform:${adv}:revenue:USD:0`], 500);
    const [r] = await env.sql<{ id: number; kind: string; unit: string; quantity: number; posting_id: null }[]>`
      select id, kind, unit, quantity, posting_id from rewards where conversion_id = ${conv}`;
    assert.deepEqual(
      { kind: r!.kind, unit: r!.unit, quantity: r!.quantity, posting_id: r!.posting_id },
      { kind: 'non_cash', unit: 'free_months', quantity: 3, posting_id: null },
    );
    const [f] = await env.sql`select status from reward_fulfilments where reward_id = ${r!.id}`;
    assert.equal(f!.status, 'fulfilment_pending');
    assert.ok(
      await world.received(
        (m) => m.msg.type === 'fulfilment_pending' && (m.msg.data as { conversion_id?: string }).conversion_id === conv,
      ),
    );
    // Rejected before fulfilment: the fulfilment is cancelled.
    await ledger.reverseConversion(conv, 'rejected', 'fraud');
    const [g] = await env.sql`select status from reward_fulfilments where reward_id = ${r!.id}`;
    assert.equal(g!.status, 'cancelled');
  });

  it('moves the three balance states: earnings, current, paid', async () => {
    const { env, ledger } = world;
    const { adv, aff, camp } = await runningCampaign(world, { budget: 10_000, revenue: 3_000, payout: 2_000 }, 10_000);
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: aff,
      revenue: 3_000,
      payout: 2_000,
    });
    const states = async () => {
      const [b] = await ledger.affiliateBalances(aff);
      return { earnings: b!.earnings, current: b!.current, paid: b!.paid };
    };
    await ledger.conversionRecorded({ id: conv });
    assert.deepEqual(await states(), { earnings: 2_000, current: 0, paid: 0 });
    await ledger.approveConversion(conv);
    assert.deepEqual(await states(), { earnings: 2_000, current: 2_000, paid: 0 });
    const wallet = await ledger.addPayoutWallet({
      affiliateId: aff,
      network: 'ETH',
      address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
    });
    world.clock += 25 * HOUR;
    const w = await ledger.requestWithdrawal({
      affiliateId: aff,
      amount: 1_500,
      currency: 'USD',
      walletId: wallet.id,
      idempotencyKey: `w-${aff}`,
    });
    assert.deepEqual(await states(), { earnings: 2_000, current: 500, paid: 0 });
    await ledger.approveWithdrawal(w.id);
    assert.deepEqual(await states(), { earnings: 2_000, current: 500, paid: 1_500 });
  });
});
