/**
 * Reading the ledger: balances per owner and currency (from the cached account balances) and an owner's
 * transaction list.
 *
 * Totals are read as text and added with BigInt (./postings.ts, MONEY): an owner's figures sum several accounts
 * (every campaign reservation, every advertiser's platform sub-account), and a sum past Number.MAX_SAFE_INTEGER
 * is an explicit AMOUNT_OUT_OF_RANGE error, never a rounded number.
 */
import { AppError, parseWith, type Sql } from '../infra/index.ts';
import { checkedSum, minorFromText } from './amounts.ts';
import { id, type LedgerContext } from './context.ts';
import type { PostingType } from './postings.ts';

export interface AdvertiserBalance {
  currency: string;
  /** available + reserved: what the advertiser still owns. */
  total: number;
  /** Free to reserve for campaigns. */
  available: number;
  /** Held as campaign budgets (all campaigns). */
  reserved: number;
  /** Spent on conversions/clicks so far, net of reversals. */
  spent: number;
  /** Deposits waiting for an admin's confirmation. */
  pending_deposits: number;
}

export interface AffiliateBalance {
  currency: string;
  /** Commissions inside their hold period. */
  pending: number;
  /** Withdrawable (negative after a clawback of an already-paid commission). */
  approved: number;
  /** Requested withdrawals not yet approved/rejected. */
  withdrawal_pending: number;
  /** Paid out (approved withdrawals); FirstPromoter's `paid_balance`. */
  paid: number;
  /**
   * Every cash reward earned and not taken back: pending + approved + withdrawal_pending + paid (FirstPromoter's
   * `earnings_balance` = current + paid, plus what is still in its hold).
   */
  earnings: number;
  /** Approved and not yet paid out or being withdrawn: the same figure as `approved` (`current_balance`). */
  current: number;
}

export interface TransactionRow {
  id: string;
  type: PostingType;
  status: string;
  created_at: Date;
  campaign_id: number | null;
  conversion_id: string | null;
  meta: Record<string, unknown>;
  /** This owner's entries of the posting. */
  entries: Array<{ account: string; currency: string; amount: number; phase: 'posted' | 'pending' }>;
}

/** Every posting type, as `GET /wallet/transactions?type=` accepts them. */
export const POSTING_TYPE_NAMES = [
  'deposit',
  'deposit_confirm',
  'deposit_void',
  'campaign_reserve',
  'campaign_release',
  'conversion',
  'conversion_approve',
  'conversion_adjust',
  'conversion_reverse',
  'click_charge',
  'withdrawal',
  'withdrawal_paid',
  'withdrawal_rejected',
  'pending_expired',
] as const satisfies readonly PostingType[];

const POSTING_TYPES: ReadonlySet<string> = new Set<string>(POSTING_TYPE_NAMES);

async function balanceRows(sql: Sql, ownerType: 'advertiser' | 'affiliate', ownerId: number) {
  return sql<
    Array<{ purpose: string; currency: string; balance: string; pending_debits: string; pending_credits: string }>
  >`
    select purpose, currency, balance::text, pending_debits::text, pending_credits::text from ledger_accounts
    where owner_type = ${ownerType} and owner_id = ${ownerId} order by currency, purpose`;
}

/** Per currency, BigInt running sums of the named figures, turned into checked numbers by {@link finish}. */
function sums<K extends string>(names: readonly K[]) {
  const byCur = new Map<string, Record<K, bigint>>();
  return {
    add(cur: string, name: K, v: string | bigint, sign: 1n | -1n = 1n) {
      let b = byCur.get(cur);
      if (!b) {
        b = Object.fromEntries(names.map((n) => [n, 0n])) as Record<K, bigint>;
        byCur.set(cur, b);
      }
      b[name] += BigInt(v) * sign;
    },
    /** @throws AppError AMOUNT_OUT_OF_RANGE for a figure past Number.MAX_SAFE_INTEGER. */
    finish(extra: (b: Record<K, bigint>) => Partial<Record<string, bigint>> = () => ({})) {
      return [...byCur].map(([currency, b]) => {
        const all: Record<string, bigint> = { ...b, ...extra(b) } as Record<string, bigint>;
        const out: Record<string, number | string> = { currency };
        for (const [k, v] of Object.entries(all)) out[k] = checkedSum(`${k} (${currency})`, v);
        return out;
      });
    },
  };
}

/** The balance and transaction-list methods of the ledger (amounts in minor units). */
export function balanceFlows({ sql }: LedgerContext) {
  return {
    /** Balances per currency of an advertiser: {total, available, reserved, spent, pending_deposits}. */
    async advertiserBalances(advertiserId: number): Promise<AdvertiserBalance[]> {
      const rows = await balanceRows(sql, 'advertiser', advertiserId);
      const s = sums(['available', 'reserved', 'spent', 'pending_deposits'] as const);
      for (const r of rows) {
        if (r.purpose === 'available') {
          s.add(r.currency, 'available', r.balance);
          s.add(r.currency, 'available', r.pending_debits, -1n);
          s.add(r.currency, 'pending_deposits', r.pending_credits);
        } else if (r.purpose === 'reserved') s.add(r.currency, 'reserved', r.balance);
        else if (r.purpose === 'spent') s.add(r.currency, 'spent', r.balance);
        else s.add(r.currency, 'spent', 0n);
      }
      const out = s.finish((b) => ({ total: b.available + b.reserved }));
      return out.map((b) => ({
        currency: b.currency as string,
        total: b.total as number,
        available: b.available as number,
        reserved: b.reserved as number,
        spent: b.spent as number,
        pending_deposits: b.pending_deposits as number,
      }));
    },

    /**
     * Balances per currency of an affiliate: {pending, approved (withdrawable), withdrawal_pending, paid} and the
     * three states of FirstPromoter's payloads, {earnings, current, paid}.
     */
    async affiliateBalances(affiliateId: number): Promise<AffiliateBalance[]> {
      const rows = await balanceRows(sql, 'affiliate', affiliateId);
      const s = sums(['pending', 'approved', 'withdrawal_pending', 'paid'] as const);
      for (const r of rows) {
        if (r.purpose === 'pending') s.add(r.currency, 'pending', r.balance);
        else if (r.purpose === 'approved') {
          s.add(r.currency, 'approved', r.balance);
          s.add(r.currency, 'approved', r.pending_debits, -1n);
          s.add(r.currency, 'withdrawal_pending', r.pending_debits);
        } else if (r.purpose === 'paid') s.add(r.currency, 'paid', r.balance);
        else s.add(r.currency, 'paid', 0n);
      }
      const earned = (b: Record<string, bigint>) => ({
        earnings: b.pending! + b.approved! + b.withdrawal_pending! + b.paid!,
      });
      return s.finish(earned).map((b) => ({
        currency: b.currency as string,
        pending: b.pending as number,
        approved: b.approved as number,
        withdrawal_pending: b.withdrawal_pending as number,
        paid: b.paid as number,
        earnings: b.earnings as number,
        current: b.approved as number,
      }));
    },

    /** The admin API's seam: an advertiser's free balance in one currency (minor units). */
    async availableBalance(advertiserId: number, cur: string): Promise<number> {
      const [r] = await sql<{ v: string }[]>`
        select (balance - pending_debits)::text as v from ledger_accounts
        where owner_type = 'advertiser' and owner_id = ${advertiserId} and purpose = 'available' and currency = ${cur}`;
      return minorFromText(r?.v ?? '0', `available (${cur})`)!;
    },

    /** The platform's margin per currency (sum of revenue sub-accounts): revenue − payout, net of reversals. */
    async platformBalances(): Promise<Array<{ currency: string; revenue: number; advertiser_spend: number }>> {
      // numeric sums (Postgres' sum of int8) never overflow; the check is on the way out.
      const rows = await sql<Array<{ currency: string; revenue: string; advertiser_spend: string }>>`
        select currency,
          coalesce(sum(balance) filter (where purpose = 'revenue'), 0)::text as revenue,
          coalesce(-sum(balance) filter (where purpose = 'spend_offset'), 0)::text as advertiser_spend
        from ledger_accounts where owner_type = 'platform' group by currency order by currency`;
      return rows.map((r) => ({
        currency: r.currency,
        revenue: minorFromText(r.revenue, `platform revenue (${r.currency})`)!,
        advertiser_spend: minorFromText(r.advertiser_spend, `advertiser spend (${r.currency})`)!,
      }));
    },

    /**
     * One owner's postings, newest first, with that owner's entries. Filters: posting type, created_at in
     * [from, to). @returns rows and the total count for the envelope's meta.
     * @throws VALIDATION_ERROR (bad owner id, unknown type; the latter with details `{ allowed }`).
     */
    async listTransactions(q: {
      ownerType: 'advertiser' | 'affiliate';
      ownerId: number;
      type?: PostingType;
      from?: Date;
      to?: Date;
      page: number;
      perPage: number;
    }): Promise<{ rows: TransactionRow[]; total: number }> {
      parseWith(id, q.ownerId);
      const page = Math.max(1, Math.floor(q.page) || 1);
      const perPage = Math.min(200, Math.max(1, Math.floor(q.perPage) || 1));
      if (q.type !== undefined && !POSTING_TYPES.has(q.type)) {
        throw new AppError('VALIDATION_ERROR', 'unknown transaction type', { allowed: [...POSTING_TYPES] });
      }
      const where = sql`
        a.owner_type = ${q.ownerType} and a.owner_id = ${q.ownerId}
        ${q.type ? sql`and p.type = ${q.type}` : sql``}
        ${q.from ? sql`and p.created_at >= ${q.from}` : sql``}
        ${q.to ? sql`and p.created_at < ${q.to}` : sql``}`;
      const [count] = await sql<{ n: number }[]>`
        select count(distinct p.id)::int8 as n from ledger_postings p
        join ledger_entries e on e.posting_id = p.id join ledger_accounts a on a.id = e.account_id where ${where}`;
      const rows = await sql<TransactionRow[]>`
        select p.id, p.type, p.status, p.created_at, p.campaign_id, p.conversion_id, p.meta,
          json_agg(json_build_object('account', a.purpose, 'currency', e.currency, 'amount', e.amount, 'phase', e.phase)
                   order by e.id) as entries
        from ledger_postings p join ledger_entries e on e.posting_id = p.id join ledger_accounts a on a.id = e.account_id
        where ${where}
        group by p.id order by p.created_at desc, p.id desc
        limit ${perPage} offset ${(page - 1) * perPage}`;
      return { rows: [...rows], total: count?.n ?? 0 };
    },
  };
}
