/**
 * Conversions: booking a priced conversion against its campaign (the accrual), approving it (hold released),
 * rejecting or reversing it (every posting undone), and bulk reconciliation (status changes and amount
 * corrections by event_id / click_id).
 */
import { z } from 'zod';
import {
  AppError,
  type ConversionRef,
  MAX_MINOR_UNITS,
  parseWith,
  type TransactionSql,
  validationError,
} from '../infra/index.ts';
import {
  advertiser,
  affiliate,
  type CampaignRow,
  type ConversionRow,
  chargeLegs,
  chargeSource,
  isMarginRefusal,
  lockCampaign,
  lockConversion,
  type MarginOverride,
  marginGuard,
  negativeMargin,
  type Scope,
} from './accounts.ts';
import { addSpend, pauseIfExhausted, spentOn } from './budget.ts';
import { capsFull, conversionCaps, countConversion } from './caps.ts';
import type { Effects, LedgerContext } from './context.ts';
import { type AccountRef, type Leg, type Posting, post, postingByKey } from './postings.ts';
import { payoutLegs, planRewards, recordRewards, rewardsFollow } from './rewards.ts';

/** What happened to a conversion handed to the ledger. */
export type ConversionOutcome =
  | { type: 'posted'; posting_id: string; revenue: number; payout: number; currency: string }
  | { type: 'replayed'; posting_id: string }
  | { type: 'skipped'; reason: 'not_payable' | 'zero_amount' | 'unattributed' }
  | { type: 'rejected'; reason: RejectReason };

/**
 * Why the ledger refused to book a conversion. `negative_margin`: its payout exceeds its revenue (or the booking
 * would take the platform's revenue account below zero) and neither its campaign nor the caller carries an admin
 * override. `conversion_cap_reached`: a daily or total conversion cap of the campaign or of the affiliate on it is
 * full (./caps.ts).
 */
type RejectReason =
  | 'budget_exhausted'
  | 'daily_cap_reached'
  | 'campaign_inactive'
  | 'negative_margin'
  | 'conversion_cap_reached';

const amountField = z.number().int().min(0).max(MAX_MINOR_UNITS).optional();

/**
 * A row of `reconcile`: identify a conversion (event_id or click_id) and say what changes. Amounts are minor
 * units: `amount` is the new sale amount (re-prices RevShare campaigns), `revenue` / `payout` the new
 * advertiser price / affiliate payout. `event_id` is trimmed. Unknown keys are dropped (admin-api's batch route
 * refuses them with `.strict()`).
 */
export const reconcileRowSchema = z
  .object({
    event_id: z.string().trim().min(1).max(255).optional(),
    click_id: z.string().uuid().optional(),
    status: z.enum(['approved', 'rejected', 'reversed']).optional(),
    amount: amountField,
    revenue: amountField,
    payout: amountField,
    reason: z.string().max(500).optional(),
  })
  .refine((r) => r.event_id !== undefined || r.click_id !== undefined, 'event_id or click_id is required');

/** A row of `reconcile`, as callers pass it; see {@link reconcileRowSchema}. */
export type ReconcileRow = z.input<typeof reconcileRowSchema>;

export type ReconcileResult =
  | { index: number; ok: true; conversion_id: string; status: string; changed: boolean }
  | { index: number; ok: false; error: { code: string; message: string } };

/**
 * Books a stored conversion's revenue/payout (the accrual). Caller holds the conversion lock. A payout above
 * the revenue is booked only under an admin override: the caller's (reconcile by an admin), else the campaign's
 * `margin_override`; the override is recorded in the posting's meta.
 */
async function accrue(
  ctx: LedgerContext,
  tx: TransactionSql,
  fx: Effects,
  conv: ConversionRow,
  override?: MarginOverride,
): Promise<ConversionOutcome> {
  const key = `conversion:${conv.id}`;
  const done = await postingByKey(tx, key);
  if (done) return { type: 'replayed', posting_id: done.id };
  if (conv.status === 'rejected' || conv.status === 'reversed') return { type: 'skipped', reason: 'not_payable' };
  if (!conv.campaign_id || !conv.affiliate_id) return { type: 'skipped', reason: 'unattributed' };
  if (conv.revenue === 0 && conv.payout === 0) return { type: 'skipped', reason: 'zero_amount' };
  const c = await lockCampaign(tx, conv.campaign_id);
  const reject = async (reason: RejectReason) => {
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
  const ov = override ?? c.margin_override ?? undefined;
  // Tier shares (./rewards.ts) are paid from the same charge, so the guard sees the sum of every payout.
  const plan = await planRewards(tx, conv, c, ctx.config);
  // Each conversion's own margin stays ≥ 0 without an override, so reversing any of them never takes the
  // platform's revenue account below zero either (checkInvariants audits it).
  if (plan.total > conv.revenue && !ov) return reject('negative_margin');
  const guard = marginGuard(c.advertiser_id, c.currency, ov);
  const caps = await conversionCaps(tx, c, conv.affiliate_id, ctx.now());
  if (capsFull(caps)) return reject('conversion_cap_reached');
  const day = ctx.today();
  if (c.daily_cap !== null && (await spentOn(tx, c.id, day)) + conv.revenue > c.daily_cap) {
    return reject('daily_cap_reached');
  }
  let p: Posting;
  try {
    p = await tx.savepoint((sp) =>
      post(sp as unknown as TransactionSql, {
        idempotencyKey: key,
        type: 'conversion',
        legs: [
          ...chargeLegs(chargeSource(c), null, c.advertiser_id, c.currency, conv.revenue, 0),
          ...payoutLegs(plan, conv.status === 'approved', c.currency),
        ].map((l) => (l.account.purpose === 'revenue' ? { ...l, amount: l.amount - plan.total } : l)),
        mustCover: guard.mustCover,
        advertiserId: c.advertiser_id,
        affiliateId: conv.affiliate_id,
        campaignId: c.id,
        conversionId: conv.id,
        meta: { day, revenue: conv.revenue, payout: conv.payout, event_id: conv.event_id, ...guard.meta },
      }),
    );
  } catch (err) {
    if (isMarginRefusal(err)) return reject('negative_margin');
    if (!(err instanceof AppError) || err.code !== 'INSUFFICIENT_FUNDS') throw err;
    const out = await reject('budget_exhausted');
    await pauseIfExhausted(tx, fx, c, c.payout_model === 'RevShare' ? 1 : c.revenue_amount);
    return out;
  }
  if (p.replayed) return { type: 'replayed', posting_id: p.id };
  await recordRewards(tx, fx, conv, c, plan, p.id);
  await addSpend(tx, c, day, conv.revenue);
  await countConversion(tx, fx, c, caps);
  await pauseIfExhausted(tx, fx, c, c.payout_model === 'RevShare' ? 1 : c.revenue_amount);
  fx.wallet([c.advertiser_id, ...plan.cash.map((x) => x.affiliate_id)], {
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

/**
 * Moves a pending conversion's held payout to `approved`. Caller holds the conversion lock.
 * @returns false when it was already approved. @throws INVALID_STATE (rejected/reversed).
 */
export async function approveLocked(
  tx: TransactionSql,
  fx: Effects,
  conv: ConversionRow,
  by: string,
): Promise<boolean> {
  if (conv.status === 'approved') return false;
  if (conv.status !== 'pending') {
    throw new AppError('INVALID_STATE', `conversion is ${conv.status}`, { status: conv.status });
  }
  const net = await conversionNet(tx, conv.id);
  // Tier 2/3 shares are held like the tier-1 payout: one posting releases every affiliate's.
  const held = net.filter((l) => l.account.owner_type === 'affiliate' && l.account.purpose === 'pending');
  const heldAmount = held.reduce((t, l) => t + Math.max(0, l.amount), 0);
  if (heldAmount > 0) {
    await post(tx, {
      idempotencyKey: `conversion:${conv.id}:approve`,
      type: 'conversion_approve',
      legs: held.flatMap((h) => [
        { account: h.account, amount: -h.amount },
        { account: { ...h.account, purpose: 'approved' as const }, amount: h.amount },
      ]),
      affiliateId: conv.affiliate_id,
      advertiserId: conv.advertiser_id,
      campaignId: conv.campaign_id,
      conversionId: conv.id,
      meta: { by },
    });
    for (const h of held) {
      fx.wallet([h.account.owner_id], {
        reason: 'conversion_approved',
        conversion_id: conv.id,
        amount: h.amount,
        currency: h.account.currency,
      });
    }
  }
  await rewardsFollow(tx, conv.id, 'approved');
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
    const paid = net.filter((l) => l.account.owner_type === 'affiliate').map((l) => l.account.owner_id);
    fx.wallet([conv.advertiser_id, ...paid], { reason: `conversion_${status}`, conversion_id: conv.id });
  }
  await rewardsFollow(tx, conv.id, status);
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

/**
 * Changes revenue/payout of a booked (or not yet booked) conversion by a delta posting. A new payout above the
 * new revenue needs `override` (an admin's), which the posting's meta records.
 * @throws VALIDATION_ERROR (payout > revenue without override, or the platform revenue account cannot cover the
 *   correction), INVALID_STATE, BUDGET_EXHAUSTED.
 */
async function adjustLocked(
  ctx: LedgerContext,
  tx: TransactionSql,
  fx: Effects,
  conv: ConversionRow,
  revenue: number,
  payout: number,
  amount: number | null,
  override?: MarginOverride,
): Promise<boolean> {
  if (conv.status === 'rejected' || conv.status === 'reversed') {
    throw new AppError('INVALID_STATE', `conversion is ${conv.status}`, { status: conv.status });
  }
  const dR = revenue - conv.revenue;
  const dP = payout - conv.payout;
  if (dR === 0 && dP === 0 && (amount === null || amount === conv.amount)) return false;
  if ((dR !== 0 || dP !== 0) && payout > revenue && !override) throw negativeMargin(payout, revenue);
  const accrued = await postingByKey(tx, `conversion:${conv.id}`);
  if ((dR !== 0 || dP !== 0) && accrued && conv.campaign_id && conv.affiliate_id) {
    const c = await lockCampaign(tx, conv.campaign_id);
    if (dR > 0 && c.budget !== null && c.status !== 'active') {
      throw new AppError('BUDGET_EXHAUSTED', 'the campaign is not active; its budget cannot be charged');
    }
    const day = ctx.today();
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
    const guard = marginGuard(c.advertiser_id, c.currency, override);
    try {
      await tx.savepoint((sp) =>
        post(sp as unknown as TransactionSql, {
          idempotencyKey: `conversion:${conv.id}:adjust:${n + 1}`,
          type: 'conversion_adjust',
          legs: chargeLegs(source, payoutTo, c.advertiser_id, c.currency, dR, dP),
          mustCover: guard.mustCover,
          advertiserId: c.advertiser_id,
          affiliateId: conv.affiliate_id,
          campaignId: c.id,
          conversionId: conv.id,
          meta: {
            revenue_from: conv.revenue,
            revenue_to: revenue,
            payout_from: conv.payout,
            payout_to: payout,
            day,
            ...guard.meta,
          },
        }),
      );
    } catch (err) {
      if (isMarginRefusal(err)) {
        throw validationError(
          { payout: "the platform's revenue account does not cover this correction" },
          'payout must not exceed what the platform earned',
        );
      }
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
  if (!accrued) await accrue(ctx, tx, fx, conv, override);
  return true;
}

/** The conversion methods of the ledger. */
export function conversionFlows(ctx: LedgerContext) {
  const { run } = ctx;
  return {
    /**
     * Books a stored, priced conversion (infra/contracts.ts §4): revenue leaves the campaign reservation, payout goes
     * to the affiliate's `pending`, the margin to platform revenue. Idempotent by conversion id. A conversion
     * the budget/daily cap cannot pay is marked rejected (reason given) and an exhausted campaign is paused.
     */
    async conversionRecorded(c: ConversionRef): Promise<ConversionOutcome> {
      parseWith(z.object({ id: z.string().uuid() }), c);
      return run(async (tx, fx) => accrue(ctx, tx, fx, await lockConversion(tx, c.id)));
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

    /**
     * Bulk reconciliation: status changes and amount corrections keyed by event_id or click_id, scoped to one
     * advertiser (null = admin, click_id only or event_id with any advertiser). Each row is its own transaction
     * and is idempotent (applying the same batch again changes nothing). At most 10 000 rows.
     * A row whose new payout exceeds its new revenue is refused (VALIDATION_ERROR on `payout`) unless an admin
     * (`advertiserId` null) passes `opts.override` (admin id and reason), which the row's posting records.
     * @returns one result per row; a row's AppError (VALIDATION_ERROR, NOT_FOUND, CONFLICT, INVALID_STATE,
     *   BUDGET_EXHAUSTED) is its result. @throws VALIDATION_ERROR when `rows` is not an array of ≤ 10 000.
     */
    async reconcile(
      advertiserId: number | null,
      rows: ReconcileRow[],
      opts: { override?: MarginOverride } = {},
    ): Promise<ReconcileResult[]> {
      // Only an admin's call may carry an override.
      const override = advertiserId === null ? opts.override : undefined;
      if (!Array.isArray(rows) || rows.length > 10_000) {
        throw new AppError('VALIDATION_ERROR', 'rows must be an array of at most 10000 items');
      }
      const out: ReconcileResult[] = [];
      for (const [index, raw] of rows.entries()) {
        const parsed = reconcileRowSchema.safeParse(raw);
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
                  changed =
                    (await adjustLocked(ctx, tx, fx, conv, revenue, payout, r.amount ?? null, override)) || changed;
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
  };
}
