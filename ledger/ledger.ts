/**
 * The money flows on top of the posting engine (./postings.ts): deposits, campaign budgets, conversions and
 * their lifecycle, CPC click charges, bulk reconciliation, balances, transaction lists, payout wallets and
 * withdrawals. Every public method is one Postgres transaction (retried on deadlock / serialization failure);
 * Redis messages (wallet events, link invalidation) are published after it commits.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  AppError,
  type CampaignStatus,
  type ClickChargeSink,
  type Config,
  type ConversionRef,
  type ConversionSink,
  type LiveEvent,
  type LiveEventType,
  type Logger,
  publishEvent,
  publishLinkInvalidation,
  type Redis,
  type RedisKeys,
  type Sql,
  type TransactionSql,
  UUID_RE,
} from '../infra/index.ts';
import { isValidPayoutAddress, PAYOUT_NETWORKS, type PayoutNetwork } from './addresses.ts';
import {
  type AccountRef,
  accountKey,
  inTransaction,
  type Leg,
  type Posting,
  type PostingType,
  post,
  postingByKey,
  resolvePending,
} from './postings.ts';

/** What happened to a conversion handed to the ledger. */
export type ConversionOutcome =
  | { type: 'posted'; posting_id: string; revenue: number; payout: number; currency: string }
  | { type: 'replayed'; posting_id: string }
  | { type: 'skipped'; reason: 'not_payable' | 'zero_amount' | 'unattributed' }
  | { type: 'rejected'; reason: 'budget_exhausted' | 'daily_cap_reached' | 'campaign_inactive' };

export interface LedgerDeps {
  sql: Sql;
  config: Pick<Config, 'WALLET_TEST_DEPOSITS' | 'WITHDRAWAL_MIN_AMOUNT'>;
  logger: Logger;
  /** Where wallet events and link invalidations go; absent → nothing is published (tests, scripts). */
  redis?: Redis;
  keys?: RedisKeys;
  /** Time source (tests move time forward for holds, expiry and wallet cool-down). */
  now?: () => Date;
  /** How long an unconfirmed deposit stays pending before it is voided, ms. Default 7 days. */
  depositTtlMs?: number;
}

/** A transfer as the wallet routes show it. */
export interface TransferView {
  id: string;
  type: PostingType;
  status: 'posted' | 'pending' | 'voided';
  amount: number;
  currency: string;
  created_at: Date;
  replayed: boolean;
  meta: Record<string, unknown>;
}

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

/** A row of `reconcile`: identify a conversion and say what changes. */
export interface ReconcileRow {
  event_id?: string;
  click_id?: string;
  status?: 'approved' | 'rejected' | 'reversed';
  /** New sale amount (minor units): re-prices RevShare campaigns. */
  amount?: number;
  /** New advertiser price / affiliate payout, minor units. */
  revenue?: number;
  payout?: number;
  reason?: string;
}

export type ReconcileResult =
  | { index: number; ok: true; conversion_id: string; status: string; changed: boolean }
  | { index: number; ok: false; error: { code: string; message: string } };

export interface PayoutWallet {
  id: number;
  affiliate_id: number;
  network: PayoutNetwork;
  address: string;
  label: string | null;
  created_at: Date;
  usable_at: Date;
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

const currency = z.string().regex(/^[A-Z]{3}$/, 'ISO 4217 code, upper case');
const minor = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const idemKey = z.string().min(1).max(200);
const id = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input);
  if (!r.success) {
    throw new AppError('VALIDATION_ERROR', 'invalid request', {
      issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  return r.data;
}

const WALLET_COOLDOWN_MS = 24 * 3600_000;

/** Authorization scope: when `advertiserId` is set, objects of other advertisers are NOT_FOUND. */
export interface Scope {
  advertiserId?: number;
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

interface CampaignRow {
  id: number;
  advertiser_id: number;
  payout_model: string;
  currency: string;
  payout_amount: number;
  revenue_amount: number;
  payout_percent_bp: number | null;
  revenue_percent_bp: number | null;
  budget: number | null;
  daily_cap: number | null;
  hold_days: number;
  status: CampaignStatus;
}

interface ConversionRow {
  id: string;
  advertiser_id: number;
  event_id: string;
  campaign_id: number | null;
  affiliate_id: number | null;
  status: 'pending' | 'approved' | 'rejected' | 'reversed';
  amount: number | null;
  payout: number;
  revenue: number;
  created_at: Date;
}

/** Side effects collected during a transaction and published after it commits. */
class Effects {
  events: Array<{ type: LiveEventType; user_ids: number[]; data: Record<string, unknown> }> = [];
  invalidations: number[] = [];
  wallet(userIds: Array<number | null | undefined>, data: Record<string, unknown>): void {
    const ids = [...new Set(userIds.filter((u): u is number => typeof u === 'number' && u > 0))];
    this.events.push({ type: 'wallet.updated', user_ids: ids, data });
  }
}

const advertiser = (owner: number, purpose: 'available' | 'spent', cur: string): AccountRef => ({
  owner_type: 'advertiser',
  owner_id: owner,
  purpose,
  currency: cur,
});
const reservedOf = (c: Pick<CampaignRow, 'id' | 'advertiser_id' | 'currency'>): AccountRef => ({
  owner_type: 'advertiser',
  owner_id: c.advertiser_id,
  purpose: 'reserved',
  currency: c.currency,
  campaign_id: c.id,
});
const affiliate = (owner: number, purpose: 'pending' | 'approved' | 'paid', cur: string): AccountRef => ({
  owner_type: 'affiliate',
  owner_id: owner,
  purpose,
  currency: cur,
});
/**
 * Platform accounts are split into one sub-account per advertiser (owner_id = the advertiser whose spend it
 * records) so that conversions of different advertisers never queue on one hot row; totals are sums.
 */
const platform = (purpose: 'revenue' | 'spend_offset', cur: string, advertiserId: number): AccountRef => ({
  owner_type: 'platform',
  owner_id: advertiserId,
  purpose,
  currency: cur,
});
const external = (purpose: 'deposits' | 'withdrawals', cur: string): AccountRef => ({
  owner_type: 'external',
  owner_id: 0,
  purpose,
  currency: cur,
});

/**
 * The legs of charging an advertiser `revenue` for a conversion/click that pays an affiliate `payout`:
 * the money leaves `source` (the campaign reservation, or `available` for unbudgeted campaigns), the
 * affiliate's share goes to `payoutTo`, the margin to platform revenue; `spent` records the advertiser's
 * cumulative spend against the platform's `spend_offset` (a memo pair, so "spent" is an account balance).
 * Negative arguments give the legs of a refund.
 */
function chargeLegs(
  source: AccountRef,
  payoutTo: AccountRef | null,
  advertiserId: number,
  cur: string,
  revenue: number,
  payout: number,
): Leg[] {
  const legs: Leg[] = [
    { account: source, amount: -revenue },
    { account: platform('revenue', cur, advertiserId), amount: revenue - (payoutTo ? payout : 0) },
    { account: advertiser(advertiserId, 'spent', cur), amount: revenue },
    { account: platform('spend_offset', cur, advertiserId), amount: -revenue },
  ];
  if (payoutTo) legs.push({ account: payoutTo, amount: payout });
  return legs;
}

function transferView(p: Posting, amount: number, cur: string): TransferView {
  return {
    id: p.id,
    type: p.type,
    status: p.status,
    amount,
    currency: cur,
    created_at: p.created_at,
    replayed: p.replayed,
    meta: p.meta,
  };
}

/** The ledger's public API. Construct with {@link createLedger}. */
export type Ledger = ReturnType<typeof createLedger>;

/**
 * Builds the ledger over a Postgres pool. All amounts are integer minor units (JS numbers, safe integers).
 * Errors are AppError: VALIDATION_ERROR, NOT_FOUND, INSUFFICIENT_FUNDS, BUDGET_EXHAUSTED, INVALID_STATE,
 * IDEMPOTENCY_CONFLICT. Authorization (who may call what on which object) is the caller's job; methods take
 * the owner id explicitly and check the object belongs to it.
 */
export function createLedger(deps: LedgerDeps) {
  const { sql, config } = deps;
  const log = deps.logger.child({ module: 'ledger' });
  const now = deps.now ?? (() => new Date());
  const depositTtlMs = deps.depositTtlMs ?? 7 * 24 * 3600_000;

  async function publish(fx: Effects): Promise<void> {
    const { redis, keys } = deps;
    if (!redis || !keys) return;
    try {
      for (const campaignId of new Set(fx.invalidations)) {
        await publishLinkInvalidation(redis, keys, { campaign_id: campaignId });
      }
      for (const e of fx.events) {
        const event: LiveEvent = { id: randomUUID(), created_at: now().toISOString(), ...e };
        await publishEvent(redis, keys, event);
      }
    } catch (err) {
      // The money moved and is committed; a lost notification must not turn into a failed request.
      log.warn({ err: String(err) }, 'could not publish ledger events');
    }
  }

  /** Runs a flow in one transaction, then publishes its effects. */
  async function run<T>(fn: (tx: TransactionSql, fx: Effects) => Promise<T>): Promise<T> {
    let fx = new Effects();
    const result = await inTransaction(sql, (tx) => {
      fx = new Effects();
      return fn(tx, fx);
    });
    await publish(fx);
    return result;
  }

  /** Locks a campaign; `scope.advertiserId` makes another advertiser's campaign NOT_FOUND. */
  async function lockCampaign(tx: TransactionSql, campaignId: number, scope: Scope = {}): Promise<CampaignRow> {
    const [c] = await tx<CampaignRow[]>`
      select id, advertiser_id, payout_model, currency, payout_amount, revenue_amount, payout_percent_bp,
             revenue_percent_bp, budget, daily_cap, hold_days, status
      from campaigns where id = ${campaignId} for update`;
    if (!c || (scope.advertiserId !== undefined && c.advertiser_id !== scope.advertiserId)) {
      throw new AppError('NOT_FOUND', 'campaign not found');
    }
    return c;
  }

  async function reservedBalance(tx: TransactionSql, c: CampaignRow): Promise<number> {
    const [r] = await tx<{ balance: number }[]>`
      select balance from ledger_accounts where owner_type = 'advertiser' and purpose = 'reserved'
        and campaign_id = ${c.id} and currency = ${c.currency}`;
    return r?.balance ?? 0;
  }

  async function spentTotal(tx: TransactionSql, campaignId: number): Promise<number> {
    const [r] = await tx<{ s: number }[]>`
      select coalesce(sum(spent), 0)::int8 as s from ledger_campaign_spend where campaign_id = ${campaignId}`;
    return r!.s;
  }

  /** The UTC day (YYYY-MM-DD) spend is booked on, for daily caps. */
  const today = (): string => now().toISOString().slice(0, 10);

  async function spentOn(tx: TransactionSql, campaignId: number, day: string): Promise<number> {
    const [r] = await tx<{ spent: number }[]>`
      select spent from ledger_campaign_spend where campaign_id = ${campaignId} and day = ${day}`;
    return r?.spent ?? 0;
  }

  async function addSpend(tx: TransactionSql, c: CampaignRow, day: string, delta: number): Promise<void> {
    if (delta === 0) return;
    await tx`
      insert into ledger_campaign_spend (campaign_id, day, currency, spent) values (${c.id}, ${day}, ${c.currency}, ${delta})
      on conflict (campaign_id, day) do update set spent = ledger_campaign_spend.spent + excluded.spent`;
  }

  /** Releases a campaign's remaining reservation and sets its status (paused/archived). Caller holds the lock. */
  async function stopCampaign(
    tx: TransactionSql,
    fx: Effects,
    c: CampaignRow,
    status: 'paused' | 'archived',
    reason: string,
  ): Promise<number> {
    const left = await reservedBalance(tx, c);
    if (left > 0) {
      await post(tx, {
        idempotencyKey: `campaign:${c.id}:release:${randomUUID()}`,
        type: 'campaign_release',
        legs: [
          { account: reservedOf(c), amount: -left },
          { account: advertiser(c.advertiser_id, 'available', c.currency), amount: left },
        ],
        advertiserId: c.advertiser_id,
        campaignId: c.id,
        meta: { reason },
      });
      fx.wallet([c.advertiser_id], {
        reason: 'campaign_release',
        campaign_id: c.id,
        amount: left,
        currency: c.currency,
      });
    }
    if (c.status !== status) {
      await tx`update campaigns set status = ${status}, updated_at = now() where id = ${c.id}`;
      fx.invalidations.push(c.id);
      fx.events.push({
        type: 'campaign.status_changed',
        user_ids: [c.advertiser_id],
        data: { campaign_id: c.id, from: c.status, to: status, reason },
      });
      c.status = status;
    }
    return left;
  }

  /** Where a charge for this campaign is taken from: its reservation, or `available` when it has no budget. */
  function chargeSource(c: CampaignRow): AccountRef {
    return c.budget === null ? advertiser(c.advertiser_id, 'available', c.currency) : reservedOf(c);
  }

  /**
   * Pauses a campaign whose money source (its reservation, or `available` when it has no budget) can no longer
   * pay for one more conversion/click, so the tracker sends its traffic to the fallback URL.
   */
  async function pauseIfExhausted(tx: TransactionSql, fx: Effects, c: CampaignRow, unitCost: number): Promise<void> {
    if (c.status !== 'active') return;
    const [src] = await tx<{ v: number }[]>`
      select balance - pending_debits as v from ledger_accounts where key = ${accountKey(chargeSource(c))}`;
    const left = src?.v ?? 0;
    if (left <= 0 || (unitCost > 0 && left < unitCost)) {
      await stopCampaign(tx, fx, c, 'paused', c.budget === null ? 'insufficient_funds' : 'budget_exhausted');
    }
  }

  /** Locks a conversion; `scope.advertiserId` makes another advertiser's conversion NOT_FOUND. */
  async function lockConversion(tx: TransactionSql, conversionId: string, scope: Scope = {}): Promise<ConversionRow> {
    if (!UUID_RE.test(conversionId)) throw new AppError('NOT_FOUND', 'conversion not found');
    const [row] = await tx<ConversionRow[]>`
      select id, advertiser_id, event_id, campaign_id, affiliate_id, status, amount, payout, revenue, created_at
      from conversions where id = ${conversionId} for update`;
    if (!row || (scope.advertiserId !== undefined && row.advertiser_id !== scope.advertiserId)) {
      throw new AppError('NOT_FOUND', 'conversion not found');
    }
    return row;
  }

  /** Books a stored conversion's revenue/payout (the accrual). Caller holds the conversion lock. */
  async function accrue(tx: TransactionSql, fx: Effects, conv: ConversionRow): Promise<ConversionOutcome> {
    const key = `conversion:${conv.id}`;
    const done = await postingByKey(tx, key);
    if (done) return { type: 'replayed', posting_id: done.id };
    if (conv.status === 'rejected' || conv.status === 'reversed') return { type: 'skipped', reason: 'not_payable' };
    if (!conv.campaign_id || !conv.affiliate_id) return { type: 'skipped', reason: 'unattributed' };
    if (conv.revenue === 0 && conv.payout === 0) return { type: 'skipped', reason: 'zero_amount' };
    const c = await lockCampaign(tx, conv.campaign_id);
    const reject = async (reason: 'budget_exhausted' | 'daily_cap_reached' | 'campaign_inactive') => {
      await tx`update conversions set status = 'rejected', reject_reason = ${reason}, updated_at = now()
               where id = ${conv.id}`;
      conv.status = 'rejected';
      fx.events.push({
        type: 'conversion.rejected',
        user_ids: [c.advertiser_id, conv.affiliate_id!],
        data: { conversion_id: conv.id, campaign_id: c.id, reason },
      });
      return { type: 'rejected', reason } as const;
    };
    if (c.budget !== null && c.status !== 'active') return reject('campaign_inactive');
    const day = today();
    if (c.daily_cap !== null && (await spentOn(tx, c.id, day)) + conv.revenue > c.daily_cap) {
      return reject('daily_cap_reached');
    }
    const payoutTo = affiliate(conv.affiliate_id, conv.status === 'approved' ? 'approved' : 'pending', c.currency);
    let p: Posting;
    try {
      p = await tx.savepoint((sp) =>
        post(sp as unknown as TransactionSql, {
          idempotencyKey: key,
          type: 'conversion',
          legs: chargeLegs(chargeSource(c), payoutTo, c.advertiser_id, c.currency, conv.revenue, conv.payout),
          advertiserId: c.advertiser_id,
          affiliateId: conv.affiliate_id,
          campaignId: c.id,
          conversionId: conv.id,
          meta: { day, revenue: conv.revenue, payout: conv.payout, event_id: conv.event_id },
        }),
      );
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'INSUFFICIENT_FUNDS') throw err;
      const out = await reject('budget_exhausted');
      await pauseIfExhausted(tx, fx, c, c.payout_model === 'RevShare' ? 1 : c.revenue_amount);
      return out;
    }
    if (p.replayed) return { type: 'replayed', posting_id: p.id };
    await addSpend(tx, c, day, conv.revenue);
    await pauseIfExhausted(tx, fx, c, c.payout_model === 'RevShare' ? 1 : c.revenue_amount);
    fx.wallet([c.advertiser_id, conv.affiliate_id], {
      reason: 'conversion',
      conversion_id: conv.id,
      campaign_id: c.id,
      revenue: conv.revenue,
      payout: conv.payout,
      currency: c.currency,
    });
    return { type: 'posted', posting_id: p.id, revenue: conv.revenue, payout: conv.payout, currency: c.currency };
  }

  /** Net posted amounts per account of every posting of one conversion. */
  async function conversionNet(
    tx: TransactionSql,
    conversionId: string,
  ): Promise<Array<{ account: AccountRef; amount: number }>> {
    const rows = await tx<
      Array<{
        owner_type: AccountRef['owner_type'];
        owner_id: number;
        purpose: AccountRef['purpose'];
        currency: string;
        campaign_id: number | null;
        amount: number;
      }>
    >`
      select a.owner_type, a.owner_id, a.purpose, a.currency, a.campaign_id, sum(e.amount)::int8 as amount
      from ledger_entries e join ledger_postings p on p.id = e.posting_id join ledger_accounts a on a.id = e.account_id
      where p.conversion_id = ${conversionId} and e.phase = 'posted'
      group by a.owner_type, a.owner_id, a.purpose, a.currency, a.campaign_id
      having sum(e.amount) <> 0`;
    return rows.map((r) => ({
      account: {
        owner_type: r.owner_type,
        owner_id: r.owner_id,
        purpose: r.purpose,
        currency: r.currency,
        campaign_id: r.campaign_id,
      },
      amount: r.amount,
    }));
  }

  async function approveLocked(tx: TransactionSql, fx: Effects, conv: ConversionRow, by: string): Promise<boolean> {
    if (conv.status === 'approved') return false;
    if (conv.status !== 'pending') {
      throw new AppError('INVALID_STATE', `conversion is ${conv.status}`, { status: conv.status });
    }
    const net = await conversionNet(tx, conv.id);
    const held = net.find((l) => l.account.owner_type === 'affiliate' && l.account.purpose === 'pending');
    if (held && held.amount > 0) {
      await post(tx, {
        idempotencyKey: `conversion:${conv.id}:approve`,
        type: 'conversion_approve',
        legs: [
          { account: held.account, amount: -held.amount },
          { account: { ...held.account, purpose: 'approved' }, amount: held.amount },
        ],
        affiliateId: conv.affiliate_id,
        advertiserId: conv.advertiser_id,
        campaignId: conv.campaign_id,
        conversionId: conv.id,
        meta: { by },
      });
      fx.wallet([conv.affiliate_id], {
        reason: 'conversion_approved',
        conversion_id: conv.id,
        amount: held.amount,
        currency: held.account.currency,
      });
    }
    await tx`update conversions set status = 'approved', updated_at = now() where id = ${conv.id}`;
    conv.status = 'approved';
    fx.events.push({
      type: 'conversion.approved',
      user_ids: [conv.advertiser_id, conv.affiliate_id ?? 0].filter((x) => x > 0),
      data: { conversion_id: conv.id, by },
    });
    return true;
  }

  async function reverseLocked(
    tx: TransactionSql,
    fx: Effects,
    conv: ConversionRow,
    status: 'rejected' | 'reversed',
    reason: string | null,
  ): Promise<boolean> {
    if (conv.status === 'rejected' || conv.status === 'reversed') return false;
    const net = await conversionNet(tx, conv.id);
    if (net.length > 0) {
      const c = conv.campaign_id ? await lockCampaign(tx, conv.campaign_id) : undefined;
      // Refunds go back to the reservation while the campaign runs, else to `available` (the reservation was
      // released when it stopped). Affiliate legs reverse where they now are (clawback may go negative).
      const refundTo = c && c.status === 'active' ? chargeSource(c) : undefined;
      const legs: Leg[] = net.map((l) => {
        const a = l.account;
        const isSource = a.owner_type === 'advertiser' && (a.purpose === 'reserved' || a.purpose === 'available');
        if (!isSource) return { account: a, amount: -l.amount };
        return { account: refundTo ?? advertiser(a.owner_id, 'available', a.currency), amount: -l.amount };
      });
      // Spend is un-booked on the days it was booked, so daily figures never go negative.
      const byDay = await tx<{ day: string; spent: number }[]>`
        select p.meta->>'day' as day, sum(e.amount)::int8 as spent
        from ledger_entries e join ledger_postings p on p.id = e.posting_id join ledger_accounts a on a.id = e.account_id
        where p.conversion_id = ${conv.id} and a.purpose = 'spent' and e.phase = 'posted' and p.meta ? 'day'
        group by 1`;
      await post(tx, {
        idempotencyKey: `conversion:${conv.id}:reverse`,
        type: 'conversion_reverse',
        legs,
        advertiserId: conv.advertiser_id,
        affiliateId: conv.affiliate_id,
        campaignId: conv.campaign_id,
        conversionId: conv.id,
        meta: { status, reason },
      });
      if (c) for (const d of byDay) await addSpend(tx, c, d.day, -d.spent);
      fx.wallet([conv.advertiser_id, conv.affiliate_id], { reason: `conversion_${status}`, conversion_id: conv.id });
    }
    await tx`update conversions set status = ${status}, reject_reason = ${reason}, updated_at = now()
             where id = ${conv.id}`;
    conv.status = status;
    fx.events.push({
      type: 'conversion.rejected',
      user_ids: [conv.advertiser_id, conv.affiliate_id ?? 0].filter((x) => x > 0),
      data: { conversion_id: conv.id, status, reason },
    });
    return true;
  }

  /** Changes revenue/payout of a booked (or not yet booked) conversion by a delta posting. */
  async function adjustLocked(
    tx: TransactionSql,
    fx: Effects,
    conv: ConversionRow,
    revenue: number,
    payout: number,
    amount: number | null,
  ): Promise<boolean> {
    if (conv.status === 'rejected' || conv.status === 'reversed') {
      throw new AppError('INVALID_STATE', `conversion is ${conv.status}`, { status: conv.status });
    }
    const dR = revenue - conv.revenue;
    const dP = payout - conv.payout;
    if (dR === 0 && dP === 0 && (amount === null || amount === conv.amount)) return false;
    const accrued = await postingByKey(tx, `conversion:${conv.id}`);
    if ((dR !== 0 || dP !== 0) && accrued && conv.campaign_id && conv.affiliate_id) {
      const c = await lockCampaign(tx, conv.campaign_id);
      if (dR > 0 && c.budget !== null && c.status !== 'active') {
        throw new AppError('BUDGET_EXHAUSTED', 'the campaign is not active; its budget cannot be charged');
      }
      const day = today();
      if (dR > 0 && c.daily_cap !== null && (await spentOn(tx, c.id, day)) + dR > c.daily_cap) {
        throw new AppError('BUDGET_EXHAUSTED', 'the daily cap does not allow this correction');
      }
      const source =
        c.status === 'active' || c.budget === null
          ? chargeSource(c)
          : advertiser(c.advertiser_id, 'available', c.currency);
      const payoutTo = affiliate(conv.affiliate_id, conv.status === 'approved' ? 'approved' : 'pending', c.currency);
      const [adjusts] = await tx<{ n: number }[]>`
        select count(*)::int as n from ledger_postings where conversion_id = ${conv.id} and type = 'conversion_adjust'`;
      const n = adjusts?.n ?? 0;
      try {
        await tx.savepoint((sp) =>
          post(sp as unknown as TransactionSql, {
            idempotencyKey: `conversion:${conv.id}:adjust:${n + 1}`,
            type: 'conversion_adjust',
            legs: chargeLegs(source, payoutTo, c.advertiser_id, c.currency, dR, dP),
            advertiserId: c.advertiser_id,
            affiliateId: conv.affiliate_id,
            campaignId: c.id,
            conversionId: conv.id,
            meta: { revenue_from: conv.revenue, revenue_to: revenue, payout_from: conv.payout, payout_to: payout, day },
          }),
        );
      } catch (err) {
        if (err instanceof AppError && err.code === 'INSUFFICIENT_FUNDS') {
          throw new AppError('BUDGET_EXHAUSTED', 'the campaign budget does not cover this correction', err.details);
        }
        throw err;
      }
      await addSpend(tx, c, day, dR);
      fx.wallet([c.advertiser_id, conv.affiliate_id], { reason: 'conversion_adjusted', conversion_id: conv.id });
    }
    await tx`update conversions set revenue = ${revenue}, payout = ${payout}, amount = ${amount ?? conv.amount},
             updated_at = now() where id = ${conv.id}`;
    conv.revenue = revenue;
    conv.payout = payout;
    if (!accrued) await accrue(tx, fx, conv);
    return true;
  }

  const fundSchema = z.object({
    advertiserId: id,
    amount: minor,
    currency,
    reference: z.string().min(1).max(200),
    idempotencyKey: idemKey,
  });

  const ledger = {
    /**
     * Advertiser deposit. With `WALLET_TEST_DEPOSITS` it is credited at once; otherwise it is a pending
     * transfer (two-phase) an admin confirms with {@link confirmDeposit} or voids; unconfirmed ones expire.
     * Idempotent per (advertiser, idempotencyKey).
     */
    async fund(input: {
      advertiserId: number;
      amount: number;
      currency: string;
      reference: string;
      idempotencyKey: string;
    }): Promise<TransferView> {
      const r = parse(fundSchema, input);
      return run(async (tx, fx) => {
        const p = await post(tx, {
          idempotencyKey: `deposit:${r.advertiserId}:${r.idempotencyKey}`,
          type: 'deposit',
          legs: [
            { account: external('deposits', r.currency), amount: -r.amount },
            { account: advertiser(r.advertiserId, 'available', r.currency), amount: r.amount },
          ],
          pending: config.WALLET_TEST_DEPOSITS ? undefined : { expiresAt: new Date(now().getTime() + depositTtlMs) },
          hashBody: { amount: r.amount, currency: r.currency, reference: r.reference },
          advertiserId: r.advertiserId,
          meta: { reference: r.reference },
        });
        if (!p.replayed)
          fx.wallet([r.advertiserId], { reason: 'deposit', status: p.status, amount: r.amount, currency: r.currency });
        return transferView(p, r.amount, r.currency);
      });
    },

    /** Admin confirms a pending deposit, fully or for a smaller `amount` (the rest is released). */
    async confirmDeposit(depositId: string, opts: { amount?: number } = {}): Promise<TransferView> {
      return run(async (tx, fx) => {
        const r = await resolvePending(tx, {
          pendingId: depositId,
          action: 'post',
          amount: opts.amount,
          idempotencyKey: `deposit-resolve:${depositId}`,
          type: 'deposit_confirm',
          expectType: 'deposit',
        });
        if (!r.resolution.replayed)
          fx.wallet([r.pending.advertiser_id], { reason: 'deposit_confirmed', amount: r.amount });
        return transferView(r.resolution, r.amount, await postingCurrency(tx, depositId));
      });
    },

    /** Admin rejects a pending deposit: nothing is credited. */
    async voidDeposit(depositId: string): Promise<TransferView> {
      return run(async (tx, fx) => {
        const r = await resolvePending(tx, {
          pendingId: depositId,
          action: 'void',
          idempotencyKey: `deposit-resolve:${depositId}`,
          type: 'deposit_void',
          expectType: 'deposit',
        });
        if (!r.resolution.replayed) fx.wallet([r.pending.advertiser_id], { reason: 'deposit_voided' });
        return transferView(r.resolution, 0, await postingCurrency(tx, depositId));
      });
    },

    /**
     * Activates a campaign (or re-syncs an active one after its budget changed): reserves
     * `budget − spent` from the advertiser's `available` and sets status 'active'; publishes link invalidation.
     * @throws INSUFFICIENT_FUNDS (nothing changes), BUDGET_EXHAUSTED (budget already spent), INVALID_STATE (archived).
     */
    async activateCampaign(
      campaignId: number,
      scope: Scope = {},
    ): Promise<{ campaign_id: number; status: 'active'; reserved: number }> {
      parse(id, campaignId);
      return run(async (tx, fx) => {
        const c = await lockCampaign(tx, campaignId, scope);
        if (c.status === 'archived') throw new AppError('INVALID_STATE', 'an archived campaign cannot be activated');
        let reserved = 0;
        if (c.budget !== null) {
          const target = c.budget - (await spentTotal(tx, c.id));
          if (target <= 0) throw new AppError('BUDGET_EXHAUSTED', 'the campaign budget is already spent');
          reserved = await reservedBalance(tx, c);
          const diff = target - reserved;
          if (diff !== 0) {
            await post(tx, {
              idempotencyKey: `campaign:${c.id}:${diff > 0 ? 'reserve' : 'release'}:${randomUUID()}`,
              type: diff > 0 ? 'campaign_reserve' : 'campaign_release',
              legs: [
                { account: advertiser(c.advertiser_id, 'available', c.currency), amount: -diff },
                { account: reservedOf(c), amount: diff },
              ],
              advertiserId: c.advertiser_id,
              campaignId: c.id,
              meta: { budget: c.budget },
            });
            fx.wallet([c.advertiser_id], {
              reason: 'campaign_reserve',
              campaign_id: c.id,
              amount: diff,
              currency: c.currency,
            });
            reserved = target;
          }
        }
        if (c.status !== 'active') {
          await tx`update campaigns set status = 'active', updated_at = now() where id = ${c.id}`;
          fx.invalidations.push(c.id);
          fx.events.push({
            type: 'campaign.status_changed',
            user_ids: [c.advertiser_id],
            data: { campaign_id: c.id, from: c.status, to: 'active' },
          });
        }
        return { campaign_id: c.id, status: 'active' as const, reserved };
      });
    },

    /** Pauses or archives a campaign, releasing its unspent reservation to `available`. Idempotent. */
    async stopCampaign(
      campaignId: number,
      status: 'paused' | 'archived',
      scope: Scope = {},
    ): Promise<{ campaign_id: number; status: 'paused' | 'archived'; released: number }> {
      parse(id, campaignId);
      return run(async (tx, fx) => {
        const c = await lockCampaign(tx, campaignId, scope);
        if (c.status === 'archived' && status === 'paused') {
          throw new AppError('INVALID_STATE', 'an archived campaign cannot be paused');
        }
        const released = await stopCampaign(tx, fx, c, status, 'requested');
        return { campaign_id: c.id, status, released };
      });
    },

    /**
     * Books a stored, priced conversion (infra/contracts.ts §4): revenue leaves the campaign reservation, payout goes
     * to the affiliate's `pending`, the margin to platform revenue. Idempotent by conversion id. A conversion
     * the budget/daily cap cannot pay is marked rejected (reason given) and an exhausted campaign is paused.
     */
    async conversionRecorded(c: ConversionRef): Promise<ConversionOutcome> {
      parse(z.object({ id: z.string().uuid() }), c);
      return run(async (tx, fx) => accrue(tx, fx, await lockConversion(tx, c.id)));
    },

    /** Moves a pending conversion's payout from `pending` to `approved`. Idempotent (approved → no-op). */
    async approveConversion(conversionId: string, opts: Scope & { by?: string } = {}): Promise<{ changed: boolean }> {
      return run(async (tx, fx) => ({
        changed: await approveLocked(tx, fx, await lockConversion(tx, conversionId, opts), opts.by ?? 'manual'),
      }));
    },

    /**
     * Rejects (before approval) or reverses (refund/chargeback, also after approval) a conversion: its postings
     * are reversed; an already paid-out commission leaves the affiliate's `approved` negative (clawback,
     * recovered from the next payouts). Idempotent (rejected/reversed → no-op).
     */
    async reverseConversion(
      conversionId: string,
      status: 'rejected' | 'reversed',
      reason: string | null = null,
      scope: Scope = {},
    ): Promise<{ changed: boolean }> {
      return run(async (tx, fx) => ({
        changed: await reverseLocked(tx, fx, await lockConversion(tx, conversionId, scope), status, reason),
      }));
    },

    /** Approves pending conversions whose campaign hold period has passed. @returns how many were approved. */
    async approveDue(limit = 500): Promise<number> {
      const due = await sql<{ id: string }[]>`
        select v.id from conversions v join campaigns c on c.id = v.campaign_id
        where v.status = 'pending' and v.created_at + make_interval(days => c.hold_days) <= ${now()}
        order by v.created_at limit ${limit}`;
      let n = 0;
      for (const { id: cid } of due) {
        const changed = await run(async (tx, fx) => {
          const conv = await lockConversion(tx, cid);
          return conv.status === 'pending' ? approveLocked(tx, fx, conv, 'hold_elapsed') : false;
        });
        if (changed) n++;
      }
      return n;
    },

    /**
     * Charges a CPC campaign for `count` valid clicks (fraud-flagged ones excluded by the caller), crediting
     * the affiliate's `approved` with payout_amount per click. Charges only as many clicks as the budget and
     * daily cap allow and pauses the campaign when its budget is exhausted. Idempotent by key (the replay
     * returns the first result).
     */
    async chargeClicks(
      campaignId: number,
      count: number,
      idempotencyKey: string,
      opts: { affiliateId?: number } = {},
    ): Promise<{ posting_id: string; charged_clicks: number; revenue: number; payout: number; replayed: boolean }> {
      parse(id, campaignId);
      parse(z.number().int().min(0).max(1e9), count);
      parse(idemKey, idempotencyKey);
      const key = `clicks:${campaignId}:${idempotencyKey}`;
      return run(async (tx, fx) => {
        const done = await postingByKey(tx, key);
        const hashBody = { campaignId, count, affiliateId: opts.affiliateId ?? null };
        if (done) {
          const p = await post(tx, { idempotencyKey: key, type: 'click_charge', legs: [], hashBody });
          return {
            posting_id: p.id,
            ...(p.meta as { charged_clicks: number; revenue: number; payout: number }),
            replayed: true,
          };
        }
        const c = await lockCampaign(tx, campaignId);
        const cpc = c.revenue_amount;
        const ppc = opts.affiliateId ? c.payout_amount : 0;
        let n = c.status === 'active' ? count : 0;
        if (cpc > 0 && n > 0) {
          const day = today();
          const [src] = await tx<{ balance: number; pending_debits: number }[]>`
            select balance, pending_debits from ledger_accounts where key = ${accountKey(chargeSource(c))} for update`;
          const room = (src?.balance ?? 0) - (src?.pending_debits ?? 0);
          n = Math.min(n, Math.floor(room / cpc));
          if (c.daily_cap !== null) n = Math.min(n, Math.floor((c.daily_cap - (await spentOn(tx, c.id, day))) / cpc));
          n = Math.max(n, 0);
        }
        const revenue = n * cpc;
        const payout = n * ppc;
        const day = today();
        const p = await post(tx, {
          idempotencyKey: key,
          type: 'click_charge',
          legs:
            revenue > 0 || payout > 0
              ? chargeLegs(
                  chargeSource(c),
                  opts.affiliateId ? affiliate(opts.affiliateId, 'approved', c.currency) : null,
                  c.advertiser_id,
                  c.currency,
                  revenue,
                  payout,
                )
              : [],
          hashBody,
          advertiserId: c.advertiser_id,
          affiliateId: opts.affiliateId ?? null,
          campaignId: c.id,
          meta: { charged_clicks: n, requested_clicks: count, revenue, payout, day },
        });
        await addSpend(tx, c, day, revenue);
        if (n < count && c.status === 'active') await pauseIfExhausted(tx, fx, c, cpc);
        if (revenue > 0 || payout > 0) {
          fx.wallet([c.advertiser_id, opts.affiliateId], {
            reason: 'click_charge',
            campaign_id: c.id,
            revenue,
            payout,
          });
        }
        return { posting_id: p.id, charged_clicks: n, revenue, payout, replayed: false };
      });
    },

    /**
     * Bulk reconciliation: status changes and amount corrections keyed by event_id or click_id, scoped to one
     * advertiser (null = admin, click_id only or event_id with any advertiser). Each row is its own transaction
     * and is idempotent (applying the same batch again changes nothing). At most 10 000 rows.
     */
    async reconcile(advertiserId: number | null, rows: ReconcileRow[]): Promise<ReconcileResult[]> {
      if (!Array.isArray(rows) || rows.length > 10_000) {
        throw new AppError('VALIDATION_ERROR', 'rows must be an array of at most 10000 items');
      }
      const rowSchema = z
        .object({
          event_id: z.string().min(1).max(255).optional(),
          click_id: z.string().uuid().optional(),
          status: z.enum(['approved', 'rejected', 'reversed']).optional(),
          amount: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
          revenue: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
          payout: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
          reason: z.string().max(500).optional(),
        })
        .refine((r) => r.event_id || r.click_id, 'event_id or click_id is required');
      const out: ReconcileResult[] = [];
      for (const [index, raw] of rows.entries()) {
        const parsed = rowSchema.safeParse(raw);
        if (!parsed.success) {
          out.push({ index, ok: false, error: { code: 'VALIDATION_ERROR', message: parsed.error.issues[0]!.message } });
          continue;
        }
        const r = parsed.data;
        try {
          out.push(
            await run(async (tx, fx) => {
              const found = await tx<{ id: string }[]>`
                select id from conversions
                where ${r.event_id ? tx`event_id = ${r.event_id}` : tx`click_id = ${r.click_id!}`}
                  ${advertiserId === null ? tx`` : tx`and advertiser_id = ${advertiserId}`}
                limit 2`;
              if (found.length === 0) throw new AppError('NOT_FOUND', 'conversion not found');
              if (found.length > 1) throw new AppError('CONFLICT', 'several conversions match; use event_id');
              const conv = await lockConversion(tx, found[0]!.id);
              let changed = false;
              if (r.amount !== undefined || r.revenue !== undefined || r.payout !== undefined) {
                let { revenue, payout } = conv;
                if (r.amount !== undefined && conv.campaign_id) {
                  const [c] = await tx<CampaignRow[]>`
                    select payout_percent_bp, revenue_percent_bp from campaigns where id = ${conv.campaign_id}`;
                  if (c?.revenue_percent_bp != null) revenue = Math.floor((r.amount * c.revenue_percent_bp) / 10_000);
                  if (c?.payout_percent_bp != null) payout = Math.floor((r.amount * c.payout_percent_bp) / 10_000);
                }
                revenue = r.revenue ?? revenue;
                payout = r.payout ?? payout;
                if (conv.status === 'rejected' || conv.status === 'reversed') {
                  if (r.status === undefined || r.status === 'approved') {
                    throw new AppError('INVALID_STATE', `conversion is ${conv.status}`);
                  }
                } else {
                  changed = (await adjustLocked(tx, fx, conv, revenue, payout, r.amount ?? null)) || changed;
                }
              }
              if (r.status === 'approved') changed = (await approveLocked(tx, fx, conv, 'reconciliation')) || changed;
              else if (r.status) changed = (await reverseLocked(tx, fx, conv, r.status, r.reason ?? null)) || changed;
              return { index, ok: true as const, conversion_id: conv.id, status: conv.status, changed };
            }),
          );
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          out.push({ index, ok: false, error: { code: err.code, message: err.message } });
        }
      }
      return out;
    },

    /** Balances per currency of an advertiser: {total, available, reserved, spent, pending_deposits}. */
    async advertiserBalances(advertiserId: number): Promise<AdvertiserBalance[]> {
      const rows = await balanceRows('advertiser', advertiserId);
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
      const rows = await balanceRows('affiliate', affiliateId);
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

    /**
     * One owner's postings, newest first, with that owner's entries. Filters: posting type, created_at in
     * [from, to). @returns rows and the total count for the envelope's meta.
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
      parse(id, q.ownerId);
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

    /** Adds a payout address (validated per network); usable for withdrawals 24 hours later. Emits wallet.updated. */
    async addPayoutWallet(input: {
      affiliateId: number;
      network: PayoutNetwork;
      address: string;
      label?: string;
    }): Promise<PayoutWallet> {
      const r = parse(
        z.object({
          affiliateId: id,
          network: z.enum(PAYOUT_NETWORKS as [PayoutNetwork, ...PayoutNetwork[]]),
          address: z.string().trim().min(1).max(128),
          label: z.string().max(100).optional(),
        }),
        input,
      );
      if (!isValidPayoutAddress(r.network, r.address)) {
        throw new AppError('VALIDATION_ERROR', `not a valid ${r.network} address`, { field: 'address' });
      }
      return run(async (tx, fx) => {
        const created = now();
        const [w] = await tx<PayoutWallet[]>`
          insert into payout_wallets (affiliate_id, network, address, label, created_at, usable_at)
          values (${r.affiliateId}, ${r.network}, ${r.address}, ${r.label ?? null}, ${created},
                  ${new Date(created.getTime() + WALLET_COOLDOWN_MS)})
          on conflict do nothing
          returning id, affiliate_id, network, address, label, created_at, usable_at`;
        if (!w) throw new AppError('CONFLICT', 'this address is already registered');
        fx.wallet([r.affiliateId], {
          reason: 'payout_wallet_added',
          wallet_id: w.id,
          network: w.network,
          usable_at: w.usable_at,
        });
        return w;
      });
    },

    /** The affiliate's payout wallets (not deleted). */
    async listPayoutWallets(affiliateId: number): Promise<PayoutWallet[]> {
      return [
        ...(await sql<PayoutWallet[]>`
        select id, affiliate_id, network, address, label, created_at, usable_at from payout_wallets
        where affiliate_id = ${affiliateId} and deleted_at is null order by id`),
      ];
    },

    /** Removes a payout wallet (soft delete). */
    async removePayoutWallet(affiliateId: number, walletId: number): Promise<void> {
      const r = await sql`update payout_wallets set deleted_at = now()
        where id = ${walletId} and affiliate_id = ${affiliateId} and deleted_at is null`;
      if (r.count === 0) throw new AppError('NOT_FOUND', 'payout wallet not found');
    },

    /**
     * Withdrawal request: holds `amount` of the affiliate's `approved` in a pending transfer to `paid`.
     * @throws VALIDATION_ERROR (below WITHDRAWAL_MIN_AMOUNT), NOT_FOUND (wallet), INVALID_STATE (wallet younger
     *   than 24 h), INSUFFICIENT_FUNDS, IDEMPOTENCY_CONFLICT.
     */
    async requestWithdrawal(input: {
      affiliateId: number;
      amount: number;
      currency: string;
      walletId: number;
      idempotencyKey: string;
    }): Promise<TransferView> {
      const r = parse(
        z.object({ affiliateId: id, amount: minor, currency, walletId: id, idempotencyKey: idemKey }),
        input,
      );
      if (r.amount < config.WITHDRAWAL_MIN_AMOUNT) {
        throw new AppError('VALIDATION_ERROR', `the minimum withdrawal is ${config.WITHDRAWAL_MIN_AMOUNT}`, {
          min_amount: config.WITHDRAWAL_MIN_AMOUNT,
        });
      }
      const key = `withdrawal:${r.affiliateId}:${r.idempotencyKey}`;
      const hashBody = { amount: r.amount, currency: r.currency, walletId: r.walletId };
      return run(async (tx, fx) => {
        if (!(await postingByKey(tx, key))) {
          const [w] = await tx<{ usable_at: Date }[]>`
            select usable_at from payout_wallets
            where id = ${r.walletId} and affiliate_id = ${r.affiliateId} and deleted_at is null`;
          if (!w) throw new AppError('NOT_FOUND', 'payout wallet not found');
          if (w.usable_at > now()) {
            throw new AppError('INVALID_STATE', 'this payout wallet can be used 24 hours after it was added', {
              usable_at: w.usable_at.toISOString(),
            });
          }
        }
        const approved = affiliate(r.affiliateId, 'approved', r.currency);
        const p = await post(tx, {
          idempotencyKey: key,
          type: 'withdrawal',
          legs: [
            { account: approved, amount: -r.amount },
            { account: affiliate(r.affiliateId, 'paid', r.currency), amount: r.amount },
          ],
          pending: { expiresAt: null },
          mustCover: [approved],
          hashBody,
          affiliateId: r.affiliateId,
          meta: { wallet_id: r.walletId },
        });
        if (!p.replayed)
          fx.wallet([r.affiliateId], { reason: 'withdrawal_requested', withdrawal_id: p.id, amount: r.amount });
        return transferView(p, r.amount, r.currency);
      });
    },

    /** Admin approves a withdrawal: the held amount moves to `paid`; emits payout.paid. */
    async approveWithdrawal(withdrawalId: string, opts: { txHash?: string } = {}): Promise<TransferView> {
      return run(async (tx, fx) => {
        const r = await resolvePending(tx, {
          pendingId: withdrawalId,
          action: 'post',
          idempotencyKey: `withdrawal-resolve:${withdrawalId}`,
          type: 'withdrawal_paid',
          expectType: 'withdrawal',
          meta: opts.txHash ? { tx_hash: opts.txHash } : {},
        });
        const cur = await postingCurrency(tx, withdrawalId);
        if (!r.resolution.replayed) {
          fx.events.push({
            type: 'payout.paid',
            user_ids: [r.pending.affiliate_id!],
            data: { withdrawal_id: withdrawalId, amount: r.amount, currency: cur, wallet_id: r.pending.meta.wallet_id },
          });
          fx.wallet([r.pending.affiliate_id], { reason: 'withdrawal_paid', withdrawal_id: withdrawalId });
        }
        return transferView(r.resolution, r.amount, cur);
      });
    },

    /** Admin rejects a withdrawal: the held amount returns to `approved`. */
    async rejectWithdrawal(withdrawalId: string, reason: string | null = null): Promise<TransferView> {
      return run(async (tx, fx) => {
        const r = await resolvePending(tx, {
          pendingId: withdrawalId,
          action: 'void',
          idempotencyKey: `withdrawal-resolve:${withdrawalId}`,
          type: 'withdrawal_rejected',
          expectType: 'withdrawal',
          meta: { reason },
        });
        if (!r.resolution.replayed)
          fx.wallet([r.pending.affiliate_id], { reason: 'withdrawal_rejected', withdrawal_id: withdrawalId });
        return transferView(r.resolution, 0, await postingCurrency(tx, withdrawalId));
      });
    },

    /** Withdrawals (pending and resolved), newest first; `affiliateId` scopes to one affiliate. */
    async listWithdrawals(q: {
      affiliateId?: number;
      status?: 'pending' | 'posted' | 'voided';
      page: number;
      perPage: number;
    }) {
      const perPage = Math.min(200, Math.max(1, Math.floor(q.perPage)));
      const where = sql`p.type = 'withdrawal'
        ${q.affiliateId ? sql`and p.affiliate_id = ${q.affiliateId}` : sql``}
        ${q.status ? sql`and p.status = ${q.status}` : sql``}`;
      const [count] = await sql<{ n: number }[]>`select count(*)::int8 as n from ledger_postings p where ${where}`;
      const rows = await sql<
        Array<{
          id: string;
          affiliate_id: number;
          status: string;
          amount: number;
          currency: string;
          wallet_id: number;
          created_at: Date;
          resolved_at: Date | null;
        }>
      >`
        select p.id, p.affiliate_id, p.status, e.amount, e.currency, (p.meta->>'wallet_id')::int8 as wallet_id,
               p.created_at, p.resolved_at
        from ledger_postings p join ledger_entries e on e.posting_id = p.id and e.amount > 0
        where ${where} order by p.created_at desc, p.id desc
        limit ${perPage} offset ${(Math.max(1, Math.floor(q.page)) - 1) * perPage}`;
      return { rows: [...rows], total: count?.n ?? 0 };
    },

    /** Voids pending transfers whose expiry has passed. @returns how many were voided. */
    async expirePending(limit = 500): Promise<number> {
      const due = await sql<{ id: string }[]>`
        select id from ledger_postings where status = 'pending' and expires_at <= ${now()}
        order by expires_at limit ${limit}`;
      let n = 0;
      for (const { id: pid } of due) {
        try {
          await run(async (tx, fx) => {
            const r = await resolvePending(tx, {
              pendingId: pid,
              action: 'void',
              idempotencyKey: `expire:${pid}`,
              type: 'pending_expired',
            });
            fx.wallet([r.pending.advertiser_id, r.pending.affiliate_id], {
              reason: 'pending_expired',
              posting_id: pid,
            });
          });
          n++;
        } catch (err) {
          if (!(err instanceof AppError && err.code === 'INVALID_STATE')) throw err;
        }
      }
      return n;
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
     * Runs the periodic jobs (expire pending transfers, approve conversions past their hold) every
     * `intervalMs`, one pass at a time. @returns stop(), which waits for a running pass.
     */
    startMaintenance(intervalMs = 60_000): { stop(): Promise<void> } {
      let running: Promise<void> | undefined;
      const timer = setInterval(() => {
        if (running) return;
        running = (async () => {
          try {
            const expired = await ledger.expirePending();
            const approved = await ledger.approveDue();
            if (expired || approved) log.info({ expired, approved }, 'ledger maintenance');
          } catch (err) {
            log.error({ err: String(err) }, 'ledger maintenance failed');
          } finally {
            running = undefined;
          }
        })();
      }, intervalMs);
      timer.unref();
      return {
        async stop() {
          clearInterval(timer);
          await running;
        },
      };
    },

    /** The pipeline's conversion sink (contracts.ts §4). */
    sink: undefined as unknown as ConversionSink<ConversionRef>,
    /** CPC sink for the pipeline: charges each (campaign, affiliate) group once per batch. */
    clickSink: undefined as unknown as ClickChargeSink,
  };
  ledger.sink = {
    async conversionRecorded(c) {
      await ledger.conversionRecorded(c);
    },
  };
  ledger.clickSink = {
    async clicksCharged(charges, batchKey) {
      for (const c of charges) {
        await ledger.chargeClicks(c.campaign_id, c.count, `${batchKey}:${c.affiliate_id}`, {
          affiliateId: c.affiliate_id,
        });
      }
    },
  };

  async function postingCurrency(tx: TransactionSql, postingId: string): Promise<string> {
    const [r] = await tx<
      { currency: string }[]
    >`select currency from ledger_entries where posting_id = ${postingId} limit 1`;
    return r?.currency ?? '';
  }

  async function balanceRows(ownerType: 'advertiser' | 'affiliate', ownerId: number) {
    return sql<
      Array<{ purpose: string; currency: string; balance: number; pending_debits: number; pending_credits: number }>
    >`
      select purpose, currency, balance, pending_debits, pending_credits from ledger_accounts
      where owner_type = ${ownerType} and owner_id = ${ownerId} order by currency, purpose`;
  }

  return ledger;
}
