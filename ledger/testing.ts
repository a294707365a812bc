/**
 * Test fixtures for the ledger's tests (users, campaigns, stored conversions). Not part of the public surface.
 */
import type { Sql } from '../infra/index.ts';
import { makeCampaign as insertCampaign } from '../infra/testing/index.ts';

export { makeConversion, makeUser } from '../infra/testing/index.ts';

/** Inserts a draft campaign (CPA unless told) in the ledger tests' terms and returns its id. */
export async function makeCampaign(
  sql: Sql,
  o: {
    advertiserId: number;
    currency?: string;
    budget?: number | null;
    dailyCap?: number | null;
    revenue?: number;
    payout?: number;
    model?: 'CPA' | 'CPC' | 'RevShare';
    holdDays?: number;
    revenuePercentBp?: number;
    payoutPercentBp?: number;
  },
): Promise<number> {
  return insertCampaign(sql, o.advertiserId, {
    payout_model: o.model ?? 'CPA',
    currency: o.currency ?? 'USD',
    payout_amount: o.payout ?? 0,
    revenue_amount: o.revenue ?? 0,
    payout_percent_bp: o.payoutPercentBp ?? null,
    revenue_percent_bp: o.revenuePercentBp ?? null,
    budget: o.budget ?? null,
    daily_cap: o.dailyCap ?? null,
    hold_days: o.holdDays ?? 0,
  });
}
