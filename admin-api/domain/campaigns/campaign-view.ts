import type { CampaignStatus, PayoutModel } from '../../../infra/index.ts';
import type { Principal } from '../../types.ts';

/** A row of `campaigns`. */
export interface CampaignRow {
  id: number;
  advertiser_id: number;
  website_id: number | null;
  name: string;
  destination_url: string;
  fallback_url: string | null;
  payout_model: PayoutModel;
  currency: string;
  payout_amount: number;
  revenue_amount: number;
  payout_percent_bp: number | null;
  revenue_percent_bp: number | null;
  goals: Array<{
    goal: string;
    payout_amount?: number;
    revenue_amount?: number;
    reward?: { unit: string; quantity: number };
  }>;
  budget: number | null;
  daily_cap: number | null;
  attribution_window_days: number;
  hold_days: number;
  allowed_countries: string[];
  allowed_devices: string[];
  /** OS families (infra/contracts.ts §8; migration 00012). */
  allowed_os: string[];
  /** Browser families (infra/contracts.ts §8; migration 00012). */
  allowed_browsers: string[];
  visibility: 'public' | 'private';
  status: CampaignStatus;
  /** IANA zone of the daily caps' day (migration 00013); caps null = none (00013, 00017). */
  time_zone: string;
  click_cap_daily: number | null;
  click_cap_total: number | null;
  conversion_cap_daily: number | null;
  conversion_cap_total: number | null;
  /** Recurring commissions (migration 00019): basis points of each renewal, null = none; months, null = for ever. */
  recurring_percent_bp: number | null;
  recurring_months: number | null;
  /** Tier shares, basis points of the tier-1 payout; null = the network's (README "Tiers, rewards and balances"). */
  tier2_share_bp: number | null;
  tier3_share_bp: number | null;
  /** `test`: created with a test-mode API key; visible only to test-mode keys, moves no live money. */
  mode: 'live' | 'test';
  created_at: Date;
  updated_at: Date;
}

/**
 * The API view of a campaign. `payout`/`revenue` are minor units, except for RevShare where they
 * are percents of the sale (from basis points). Affiliates do not see the advertiser's revenue.
 */
export function campaignView(c: CampaignRow, user: Principal, membership?: string | null) {
  const rev = c.payout_model === 'RevShare';
  const v: Record<string, unknown> = {
    id: c.id,
    advertiser_id: c.advertiser_id,
    website_id: c.website_id,
    name: c.name,
    destination_url: c.destination_url,
    fallback_url: c.fallback_url,
    payout_model: c.payout_model,
    payout: rev ? (c.payout_percent_bp ?? 0) / 100 : c.payout_amount,
    revenue: rev ? (c.revenue_percent_bp ?? 0) / 100 : c.revenue_amount,
    currency: c.currency,
    budget: c.budget,
    daily_cap: c.daily_cap,
    attribution_window_days: c.attribution_window_days,
    hold_days: c.hold_days,
    goals: c.goals.map((g) => ({
      goal: g.goal,
      payout: g.payout_amount,
      revenue: g.revenue_amount,
      reward: g.reward,
    })),
    allowed_countries: c.allowed_countries,
    allowed_devices: c.allowed_devices,
    allowed_os: c.allowed_os,
    allowed_browsers: c.allowed_browsers,
    visibility: c.visibility,
    time_zone: c.time_zone,
    click_cap_daily: c.click_cap_daily,
    click_cap_total: c.click_cap_total,
    conversion_cap_daily: c.conversion_cap_daily,
    conversion_cap_total: c.conversion_cap_total,
    recurring_percent_bp: c.recurring_percent_bp,
    recurring_months: c.recurring_months,
    tier2_share_bp: c.tier2_share_bp,
    tier3_share_bp: c.tier3_share_bp,
    status: c.status,
    mode: c.mode,
    created_at: c.created_at,
    updated_at: c.updated_at,
  };
  if (user.role === 'affiliate') {
    delete v.revenue;
    delete v.budget;
    v.goals = c.goals.map((g) => ({ goal: g.goal, payout: g.payout_amount, reward: g.reward }));
    v.membership = membership ?? null;
  }
  return v;
}
