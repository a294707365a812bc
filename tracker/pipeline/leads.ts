/**
 * The `lead_signup` live event (README "Leads and recurring commissions"): published once per accepted lead, to the
 * advertiser and the affiliate (webhooks and SSE), with data shaped like FirstPromoter's `lead_signup` payload.
 */
import { type LiveEvent, publishEvent, type Redis, type RedisKeys } from '../../infra/index.ts';
import type { ConversionEvent } from '../events.ts';
import { FRAUD_THRESHOLD } from '../fraud/rules.ts';
import type { CampaignTerms } from './campaigns.ts';

/** The goal that marks a lead (a signup): besides it, the default goal ('') of a CPL campaign is one. */
export const LEAD_GOAL = 'lead_signup';

/** One accepted lead of a batch, as the record step saw it. */
export interface LeadSignup {
  conversion_id: string;
  event_id: string;
  advertiser_id: number;
  affiliate_id: number;
  campaign_id: number;
  click_id: string;
  /** The advertiser's customer reference, '' when none was posted. */
  customer_id: string;
  event_time_ms: number;
  fraud_score: number;
}

/** Whether conversion `c` of `campaign` is a lead. */
export function isLead(c: Pick<ConversionEvent, 'goal'>, campaign: Pick<CampaignTerms, 'payout_model'>): boolean {
  return c.goal === LEAD_GOAL || (c.goal === '' && campaign.payout_model === 'CPL');
}

/**
 * The event of a lead. `data` follows FirstPromoter's lead object (`id`, `state`, `email`, `uid`, `customer_since`,
 * `cancelled_at`, `plan_name`, `suspicion`, `created_at`, `promoter`, `promotion`), with this system's ids beside
 * it: `id` is the conversion id, `uid` the customer reference (null when none), `promoter.id` / `promotion.promoter_id`
 * the affiliate, `email` null (the tracker never receives one). The event id is `lead:<conversion_id>`, stable
 * across a replayed batch, so webhook receivers deduplicate on `webhook-id`.
 */
export function leadEvent(l: LeadSignup, now = new Date()): LiveEvent {
  const created = new Date(l.event_time_ms).toISOString();
  return {
    id: `lead:${l.conversion_id}`,
    type: 'lead_signup',
    created_at: now.toISOString(),
    user_ids: [l.advertiser_id, l.affiliate_id],
    data: {
      id: l.conversion_id,
      state: 'signup',
      email: null,
      uid: l.customer_id || null,
      customer_since: null,
      cancelled_at: null,
      plan_name: null,
      suspicion: l.fraud_score >= FRAUD_THRESHOLD ? 'suspicious' : 'no_suspicion',
      created_at: created,
      promoter: { id: l.affiliate_id },
      promotion: { campaign_id: l.campaign_id, promoter_id: l.affiliate_id },
      conversion_id: l.conversion_id,
      event_id: l.event_id,
      campaign_id: l.campaign_id,
      affiliate_id: l.affiliate_id,
      click_id: l.click_id,
    },
  };
}

/** Publishes each lead's event; a failure is returned to the caller to log (the data is already consistent). */
export async function publishLeads(redis: Redis, keys: RedisKeys, leads: readonly LeadSignup[]): Promise<void> {
  for (const l of leads) await publishEvent(redis, keys, leadEvent(l));
}
