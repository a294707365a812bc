/**
 * Reading the ledger: balances per owner and currency (from the cached account balances) and an owner's
 * transaction list.
 */
import { AppError, parseWith, type Sql } from '../infra/index.ts';
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
  paid: number;
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
    Array<{ purpose: string; currency: string; balance: number; pending_debits: number; pending_credits: number }>
  >`
    select purpose, currency, balance, pending_debits, pending_credits from ledger_accounts
    where owner_type = ${ownerType} and owner_id = ${ownerId} order by currency, purpose`;
}

/** The balance and transaction-list methods of the ledger (amounts in minor units). */
export function balanceFlows({ sql }: LedgerContext) {
  return {
    /** Balances per currency of an advertiser: {total, available, reserved, spent, pending_deposits}. */
    async advertiserBalances(advertiserId: number): Promise<AdvertiserBalance[]> {
      const rows = await balanceRows(sql, 'advertiser', advertiserId);
      const byCur = new Map<string, AdvertiserBalance>();
      for (const r of rows) {
        const b = byCur.get(r.currency) ?? {
          currency: r.currency,
          total: 0,
          available: 0,
          reserved: 0,
          spent: 0,
          pending_deposits: 0,
        };
        if (r.purpose === 'available') {
          b.available += r.balance - r.pending_debits;
          b.pending_deposits += r.pending_credits;
        } else if (r.purpose === 'reserved') b.reserved += r.balance;
        else if (r.purpose === 'spent') b.spent += r.balance;
        b.total = b.available + b.reserved;
        byCur.set(r.currency, b);
      }
      return [...byCur.values()];
    },

    /** Balances per currency of an affiliate: {pending, approved (withdrawable), withdrawal_pending, paid}. */
    async affiliateBalances(affiliateId: number): Promise<AffiliateBalance[]> {
      const rows = await balanceRows(sql, 'affiliate', affiliateId);
      const byCur = new Map<string, AffiliateBalance>();
      for (const r of rows) {
        const b = byCur.get(r.currency) ?? {
          currency: r.currency,
          pending: 0,
          approved: 0,
          withdrawal_pending: 0,
          paid: 0,
        };
        if (r.purpose === 'pending') b.pending += r.balance;
        else if (r.purpose === 'approved') {
          b.approved += r.balance - r.pending_debits;
          b.withdrawal_pending += r.pending_debits;
        } else if (r.purpose === 'paid') b.paid += r.balance;
        byCur.set(r.currency, b);
      }
      return [...byCur.values()];
    },

    /** The admin API's seam: an advertiser's free balance in one currency (minor units). */
    async availableBalance(advertiserId: number, cur: string): Promise<number> {
      const [r] = await sql<{ v: number }[]>`
        select balance - pending_debits as v from ledger_accounts
        where owner_type = 'advertiser' and owner_id = ${advertiserId} and purpose = 'available' and currency = ${cur}`;
      return r?.v ?? 0;
    },

    /** The platform's margin per currency (sum of revenue sub-accounts): revenue − payout, net of reversals. */
    async platformBalances(): Promise<Array<{ currency: string; revenue: number; advertiser_spend: number }>> {
      return [
        ...(await sql<Array<{ currency: string; revenue: number; advertiser_spend: number }>>`
        select currency,
          coalesce(sum(balance) filter (where purpose = 'revenue'), 0)::int8 as revenue,
          coalesce(-sum(balance) filter (where purpose = 'spend_offset'), 0)::int8 as advertiser_spend
        from ledger_accounts where owner_type = 'platform' group by currency order by currency`),
      ];
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
