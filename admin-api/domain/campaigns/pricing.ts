import { z } from 'zod';
import { AppError, goalTerms, type PriceTerms } from '../../../infra/index.ts';
import type { Ledger } from '../../../ledger/index.ts';
import type { CampaignRow } from './campaign-view.ts';

/**
 * Why `v` is not a valid payout/revenue for a campaign of `model`, or undefined when it is: RevShare takes a
 * percent 0..100 with at most 2 decimals, the other models integer minor units.
 */
export function priceIssue(model: CampaignRow['payout_model'], v: number): string | undefined {
  if (model === 'RevShare')
    return v > 100 || Math.round(v * 100) !== v * 100
      ? 'RevShare: a percent 0..100 with at most 2 decimals'
      : undefined;
  return Number.isInteger(v) ? undefined : 'must be integer minor units';
}

/** Splits payout/revenue into the storage columns by model. */
export function moneyColumns(model: CampaignRow['payout_model'], payout?: number, revenue?: number) {
  if (model === 'RevShare')
    return {
      payout_percent_bp: payout === undefined ? undefined : Math.round(payout * 100),
      revenue_percent_bp: revenue === undefined ? undefined : Math.round(revenue * 100),
    };
  return { payout_amount: payout, revenue_amount: revenue };
}

/**
 * A goal's non-cash reward: `quantity` of `unit` (e.g. `free_months`, `credits`; never `cash`) instead of a cash
 * payout; the pipeline prices such a goal's payout at 0 and the ledger books the reward (ledger/rewards.ts).
 */
export const nonCashReward = z.object({
  unit: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,31}$/, 'lower-case letters, digits and _, e.g. free_months')
    .refine((u) => u !== 'cash', 'cash is a payout, not a unit'),
  quantity: z.number().int().min(1).max(1_000_000),
});

/** Goals as the API takes them (`payout`, `revenue`) turned into their stored shape (`*_amount`). */
export function storedGoals(
  goals: ReadonlyArray<{ goal: string; payout?: number; revenue?: number; reward?: z.infer<typeof nonCashReward> }>,
) {
  return goals.map((g) => ({
    goal: g.goal,
    ...(g.payout === undefined ? {} : { payout_amount: g.payout }),
    ...(g.revenue === undefined ? {} : { revenue_amount: g.revenue }),
    ...(g.reward === undefined ? {} : { reward: g.reward }),
  }));
}

/**
 * Checks that the advertiser's available balance covers `budget` (no ledger, no budget or a test-mode campaign,
 * which reserves no live money: nothing to check). @throws AppError INSUFFICIENT_FUNDS otherwise.
 */
export async function checkFunds(
  a: { deps: { ledger?: Ledger } },
  advertiserId: number,
  cur: string,
  budget: number | null | undefined,
  mode: 'live' | 'test',
) {
  if (!a.deps.ledger || budget === undefined || budget === null || mode === 'test') return;
  const available = await a.deps.ledger.availableBalance(advertiserId, cur);
  if (available < budget)
    throw new AppError('INSUFFICIENT_FUNDS', 'wallet balance does not cover the campaign budget', {
      budget,
      available,
      currency: cur,
    });
}

/** A campaign's stored pricing columns and per-goal overrides, as `campaigns` holds them (minor units / bp). */
export interface StoredTerms {
  payout_model: CampaignRow['payout_model'];
  payout_amount: number;
  revenue_amount: number;
  payout_percent_bp: number | null;
  revenue_percent_bp: number | null;
  goals: ReadonlyArray<{
    goal: string;
    payout_amount?: number | null;
    revenue_amount?: number | null;
    payout_percent_bp?: number | null;
    revenue_percent_bp?: number | null;
    reward?: unknown;
  }>;
}

/**
 * Where the terms would pay an affiliate more than the advertiser pays, as field errors (`payout` for the
 * campaign's own terms, `goals.<i>.payout` for a goal), or undefined when every goal keeps payout ≤ revenue.
 * Each goal is resolved as the pipeline prices it (tracker/pipeline/campaigns.ts `priceConversion`): a goal's
 * fields replace the campaign's; percent terms (RevShare, or a goal with `*_percent_bp`) compare basis points,
 * fixed ones (CPA/CPL, CPC per click) minor units; a percent side against a fixed side cannot be bounded, so it
 * is an issue too.
 */
export function marginIssues(t: StoredTerms): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  const check = (field: string, { terms: g, percent }: { terms: PriceTerms; percent: boolean }) => {
    const pBp = percent ? g.payout_percent_bp : null;
    const rBp = percent ? g.revenue_percent_bp : null;
    if (pBp !== null && rBp !== null) {
      if (pBp > rBp) out[field] = `must not exceed revenue (${pBp / 100}% > ${rBp / 100}% of the sale)`;
    } else if (pBp === null && rBp === null) {
      if (g.payout_amount > g.revenue_amount)
        out[field] = `must not exceed revenue (${g.payout_amount} > ${g.revenue_amount} minor units)`;
    } else if ((pBp ?? g.payout_amount) > 0) {
      // A share of the sale against a fixed price: one of them outgrows the other for some sale amount.
      out[field] = 'a percent and a fixed amount cannot be compared: give payout and revenue the same kind';
    }
  };
  // Each goal is read as the pipeline prices it (goalTerms, infra/contracts.ts §3).
  check('payout', goalTerms(t));
  // CPC conversions price at 0 (clicks pay), so goals do not matter there.
  // A goal rewarded in kind pays no cash (priceConversion prices its payout at 0).
  if (t.payout_model !== 'CPC')
    for (const [i, o] of t.goals.entries()) {
      const r = goalTerms(t, o);
      check(
        `goals.${i}.payout`,
        o.reward ? { ...r, terms: { ...r.terms, payout_amount: 0, payout_percent_bp: 0 } } : r,
      );
    }
  return Object.keys(out).length > 0 ? out : undefined;
}
