import type { Redis, RedisKeys } from './redis.ts';

/**
 * Event types on the live-event bus. The admin API's SSE stream and the webhook deliveries
 * subscribe to it; every part of the system may publish.
 */
export type LiveEventType =
  | 'conversion.created'
  | 'conversion.approved'
  | 'conversion.rejected'
  | 'partnership.created'
  | 'website.approved'
  | 'website.rejected'
  | 'campaign.status_changed'
  | 'wallet.updated'
  | 'payout.paid'
  | 'fraud.alert'
  | 'pipeline.batch_parked'
  | 'delivery.endpoint_disabled'
  | 'delivery.queue_alert'
  | 'tracker.spool_near_cap'
  | 'force-logout';

/** One event: who may see it (`user_ids`, plus every admin), what happened, and its data. */
export interface LiveEvent {
  /** Unique id (UUIDv7 or similar); webhooks use it as `webhook-id`. */
  id: string;
  type: LiveEventType;
  /** ISO 8601, UTC. */
  created_at: string;
  /** Users this event concerns (advertiser and/or affiliate ids); admins see every event. */
  user_ids: number[];
  data: Record<string, unknown>;
}

/** Entries kept in the durable event log (approximate cap, `XADD MAXLEN ~`). */
export const EVENT_LOG_MAXLEN = 100_000;

/**
 * Name of the durable copy of the bus: a capped Redis stream that consumers which must not miss
 * an event (webhook deliveries) read with a consumer group; pub/sub alone is at-most-once.
 */
export function eventLogKey(keys: RedisKeys): string {
  return keys.key('events', 'log');
}

/**
 * Publishes an event on the Redis pub/sub channel `keys.events` (fan-out to every API process,
 * e.g. SSE) and appends it to the durable event log ({@link eventLogKey}, field `e` = the JSON).
 *
 * Cluster-safe as one MULTI: its only key is the event log (a PUBLISH channel is not a key and has no slot),
 * so the transaction goes to the node that owns the log's slot, and Redis Cluster forwards a PUBLISH on any
 * node to every node over the cluster bus, reaching subscribers wherever they are connected (Redis Cluster
 * spec, "Pub/Sub"). A second keyed command here would have to share the log's hash tag, or MULTI fails
 * with CROSSSLOT.
 */
export async function publishEvent(redis: Redis, keys: RedisKeys, event: LiveEvent): Promise<void> {
  const json = JSON.stringify(event);
  const results = await redis
    .multi()
    .publish(keys.events, json)
    .xadd(eventLogKey(keys), 'MAXLEN', '~', EVENT_LOG_MAXLEN, '*', 'e', json)
    .exec();
  const failed = results?.find(([err]) => err);
  if (failed) throw failed[0];
}

/** Who receives an event: its role decides which of the event's fields it gets ({@link eventFor}). */
export interface EventRecipient {
  role: 'admin' | 'advertiser' | 'affiliate' | (string & {});
  user_id: number;
}

/**
 * The fields of each event type's `data` an affiliate receives: an allow-list, so a field a publisher adds later
 * stays hidden until it is listed here. Mirrors what the REST views show affiliates (`/conversions` and `/reports`
 * hide revenue, the sale amount, the advertiser's order id `event_id`, the advertiser and fraud details). Types that
 * are never addressed to affiliates list nothing.
 */
const AFFILIATE_FIELDS: Record<LiveEventType, readonly string[]> = {
  'conversion.created': [
    'test',
    'conversion_id',
    'campaign_id',
    'affiliate_id',
    'status',
    'reject_reason',
    'goal',
    'payout',
    'currency',
  ],
  'conversion.approved': ['conversion_id', 'campaign_id', 'status', 'goal', 'payout', 'currency', 'by'],
  'conversion.rejected': ['conversion_id', 'campaign_id', 'status', 'reason', 'reject_reason', 'goal'],
  'partnership.created': ['campaign_id', 'affiliate_id', 'status'],
  'website.approved': [],
  'website.rejected': [],
  'campaign.status_changed': ['campaign_id', 'from', 'to'],
  // `amount` is the affiliate's own withdrawal amount; conversion and click-charge updates carry no `amount`.
  'wallet.updated': [
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
    'amount',
  ],
  'payout.paid': ['withdrawal_id', 'amount', 'currency', 'wallet_id'],
  'fraud.alert': [],
  'pipeline.batch_parked': [],
  'delivery.endpoint_disabled': ['endpoint_id', 'kind', 'reason', 'url', 'disabled_at'],
  'delivery.queue_alert': [],
  'tracker.spool_near_cap': [],
  'force-logout': ['session_id', 'reason'],
};

/** `wallet.updated` reasons whose `amount` is the affiliate's own (withdrawals, approved payout); elsewhere it is not. */
const AFFILIATE_AMOUNT_REASONS = new Set([
  'withdrawal_requested',
  'withdrawal_paid',
  'withdrawal_rejected',
  'conversion_approved',
]);

/**
 * `event` as `recipient` may see it, the one rule for every channel (SSE and webhooks): admins get it whole;
 * advertisers get all of `data` (every field of a conversion of their own campaign is theirs in `/conversions`);
 * an affiliate gets only the fields of {@link AFFILIATE_FIELDS} for its type. Non-admins see `user_ids` as
 * `[their own id]`. Who receives an event at all
 * (`user_ids`, plus admins) is the caller's check. Pure; never mutates `event`.
 */
export function eventFor(event: LiveEvent, recipient: EventRecipient): LiveEvent {
  if (recipient.role === 'admin') return event;
  // The other users an event concerns are not the recipient's to know (an affiliate never learns the advertiser id).
  if (recipient.role === 'advertiser') return { ...event, user_ids: [recipient.user_id] };
  const allowed = AFFILIATE_FIELDS[event.type] ?? [];
  const data: Record<string, unknown> = {};
  for (const k of allowed) {
    if (!(k in event.data)) continue;
    if (k === 'amount' && event.type === 'wallet.updated' && !AFFILIATE_AMOUNT_REASONS.has(String(event.data.reason)))
      continue;
    data[k] = event.data[k];
  }
  return { ...event, user_ids: [recipient.user_id], data };
}
