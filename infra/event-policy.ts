import type { LiveEvent, LiveEventType } from './events.ts';

/**
 * Who a live event is being delivered to: an SSE stream's principal or a webhook endpoint's owner.
 * Roles as in `users.role`.
 */
export interface EventRecipient {
  /** Analysts get no live events (their reads are the analytics SQL, scoped per query). */
  role: 'admin' | 'advertiser' | 'affiliate' | 'analyst';
  user_id: number;
}

/** Data fields a role may see for one event type; `null`: the role never receives the type. */
type Fields = readonly string[] | null;

interface Audience {
  advertiser: Fields;
  affiliate: Fields;
}

/*
 * The per-type field policy, mirroring the REST views (admin-api/routes/conversions.ts, reports.ts):
 * affiliates never see revenue, profit/margin, the advertiser's order id (`event_id`), the sale `amount`,
 * fraud scores, advertiser ids or balances; advertisers never see affiliates' payout wallets or withdrawals.
 * Allow-lists, not deny-lists: a field a publisher adds later reaches admins only until it is listed here.
 * Admins get every event whole.
 */
/**
 * Fields of the `conversion.*` events, as GET /conversions shows them per role (affiliates: no revenue,
 * advertiser_id, event_id, amount, fraud_score). `by` is `user:<id>` of whoever approved (advertiser or admin).
 */
const CONVERSION_AFFILIATE = [
  'conversion_id',
  'campaign_id',
  'affiliate_id',
  'goal',
  'status',
  'reject_reason',
  'reason',
  'payout',
  'currency',
  'test',
] as const;
const CONVERSION_ADVERTISER = [...CONVERSION_AFFILIATE, 'event_id', 'click_id', 'amount', 'revenue', 'by'] as const;
const CONVERSION = { advertiser: CONVERSION_ADVERTISER, affiliate: CONVERSION_AFFILIATE };
const LEAD_AFFILIATE = [
  'id',
  'state',
  'customer_since',
  'cancelled_at',
  'plan_name',
  'suspicion',
  'created_at',
  'promoter',
  'promotion',
  'conversion_id',
  'campaign_id',
  'affiliate_id',
] as const;

const REWARD = [
  'id',
  'status',
  'amount',
  'unit',
  'currency',
  'tier_level',
  'conversion_id',
  'campaign_id',
  'created_at',
  'promoter',
] as const;
const FULFILMENT = [
  'id',
  'status',
  'amount',
  'unit',
  'date_paid',
  'created_at',
  'conversion_id',
  'campaign_id',
  'reward',
  'promoter',
] as const;

const POLICY: Record<LiveEventType, Audience> = {
  'conversion.created': CONVERSION,
  'conversion.approved': CONVERSION,
  'conversion.rejected': CONVERSION,
  'partnership.created': {
    advertiser: ['campaign_id', 'affiliate_id', 'status'],
    affiliate: ['campaign_id', 'affiliate_id', 'status'],
  },
  'website.approved': { advertiser: ['website_id', 'name'], affiliate: null },
  'website.rejected': { advertiser: ['website_id', 'name', 'reason'], affiliate: null },
  // `reason` (e.g. budget_exhausted) describes the advertiser's money; affiliates see the status change only.
  'campaign.status_changed': {
    advertiser: ['campaign_id', 'from', 'to', 'reason'],
    affiliate: ['campaign_id', 'from', 'to'],
  },
  'wallet.updated': {
    advertiser: [
      'reason',
      'conversion_id',
      'campaign_id',
      'revenue',
      'payout',
      'amount',
      'currency',
      'status',
      'posting_id',
    ],
    // `amount` is added for affiliates only where it is their own money (see AFFILIATE_AMOUNT_REASONS).
    affiliate: [
      'reason',
      'conversion_id',
      'campaign_id',
      'payout',
      'currency',
      'withdrawal_id',
      'wallet_id',
      'network',
      'usable_at',
      'posting_id',
    ],
  },
  'payout.paid': { advertiser: null, affiliate: ['withdrawal_id', 'amount', 'currency', 'wallet_id'] },
  'fraud.alert': {
    advertiser: [
      'campaign_id',
      'affiliate_id',
      'click_id',
      'conversion_id',
      'score',
      'fraud_score',
      'reason',
      'reasons',
    ],
    affiliate: null,
  },
  'pipeline.batch_parked': { advertiser: null, affiliate: null },
  'delivery.endpoint_disabled': {
    advertiser: ['kind', 'endpoint_id', 'reason'],
    affiliate: ['kind', 'endpoint_id', 'reason'],
  },
  'delivery.queue_alert': { advertiser: null, affiliate: null },
  'tracker.spool_near_cap': { advertiser: null, affiliate: null },
  // A cap of the campaign (affiliate_id null: every approved affiliate of it is told) or of one affiliate on it.
  'cap.threshold_reached': {
    advertiser: ['campaign_id', 'affiliate_id', 'metric', 'period', 'day', 'threshold_percent', 'cap', 'count'],
    affiliate: ['campaign_id', 'affiliate_id', 'metric', 'period', 'day', 'threshold_percent', 'cap', 'count'],
  },
  // A lead (README "Leads and recurring commissions"), FirstPromoter's shape. The customer reference (`uid`), the click
  // and the advertiser's event_id are the advertiser's; the affiliate sees its lead, campaign and time.
  lead_signup: {
    advertiser: [...LEAD_AFFILIATE, 'uid', 'email', 'event_id', 'click_id'],
    affiliate: LEAD_AFFILIATE,
  },
  // Rewards (README "Tiers, rewards and balances"): the reward's affiliate and the campaign's advertiser see it
  // whole; a recruiter's tier-2/3 reward names the conversion, never the recruit's payout or the revenue.
  promoter_signed_up: { advertiser: null, affiliate: ['promoter'] },
  reward_created: { advertiser: REWARD, affiliate: REWARD },
  fulfilment_pending: { advertiser: FULFILMENT, affiliate: FULFILMENT },
  'force-logout': { advertiser: ['session_id', 'reason'], affiliate: ['session_id', 'reason'] },
};

/**
 * `wallet.updated` reasons whose `amount` is the affiliate's own money (a payout released, a withdrawal);
 * elsewhere `amount` is the advertiser's (deposits, reservations).
 */
const AFFILIATE_AMOUNT_REASONS: ReadonlySet<unknown> = new Set([
  'conversion_approved',
  'withdrawal_requested',
  'withdrawal_paid',
]);

function fieldsFor(event: LiveEvent, role: EventRecipient['role']): readonly string[] | null {
  if (role !== 'advertiser' && role !== 'affiliate') return null;
  const fields = POLICY[event.type]?.[role];
  if (!fields) return null;
  if (event.type === 'wallet.updated' && role === 'affiliate' && AFFILIATE_AMOUNT_REASONS.has(event.data.reason)) {
    return [...fields, 'amount'];
  }
  return fields;
}

/**
 * The event as `recipient` may see it, or `null` when it must not receive it at all. Admins get the event
 * unchanged (they see every event). Anyone else gets it only when listed in `event.user_ids`, with `data`
 * cut to the fields the per-type policy allows their role (absent fields stay absent) and `user_ids` cut to
 * themselves (the list names the other party, e.g. the advertiser, whom the REST views hide from affiliates).
 * Used by every delivery of the live-event bus (the admin API's SSE stream, webhooks), so both say the same.
 */
export function eventFor(event: LiveEvent, recipient: EventRecipient): LiveEvent | null {
  if (recipient.role === 'admin') return event;
  if (!event.user_ids.includes(recipient.user_id)) return null;
  const fields = fieldsFor(event, recipient.role);
  if (!fields) return null;
  const data: Record<string, unknown> = {};
  for (const k of fields) if (Object.hasOwn(event.data, k)) data[k] = event.data[k];
  return { ...event, user_ids: [recipient.user_id], data };
}
