import { AppError } from '../../../infra/index.ts';
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

/** Goals as the API takes them (`payout`, `revenue`) turned into their stored shape (`*_amount`). */
export function storedGoals(goals: ReadonlyArray<{ goal: string; payout?: number; revenue?: number }>) {
  return goals.map((g) => ({
    goal: g.goal,
    ...(g.payout === undefined ? {} : { payout_amount: g.payout }),
    ...(g.revenue === undefined ? {} : { revenue_amount: g.revenue }),
  }));
}

/**
 * Checks that the advertiser's available balance covers `budget` (no ledger or no budget: nothing to check).
 * @throws AppError INSUFFICIENT_FUNDS otherwise.
 */
export async function checkFunds(
  a: { deps: { ledger?: Ledger } },
  advertiserId: number,
  cur: string,
  budget?: number | null,
) {
  if (!a.deps.ledger || budget === undefined || budget === null) return;
  const available = await a.deps.ledger.availableBalance(advertiserId, cur);
  if (available < budget)
    throw new AppError('INSUFFICIENT_FUNDS', 'wallet balance does not cover the campaign budget', {
      budget,
      available,
      currency: cur,
    });
}
