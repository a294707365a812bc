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
  | 'cap.threshold_reached'
  | 'lead_signup'
  | 'promoter_signed_up'
  | 'reward_created'
  | 'fulfilment_pending'
  | 'force-logout';

/**
 * The data of a `cap.threshold_reached` event (README "Caps"): a click or conversion cap of a campaign (`affiliate_id`
 * null) or of one affiliate on it reached `threshold_percent` (80 or 100) of `cap`; `count` is the global count when
 * it was learned (the click counters' flush, the ledger's commit). `day` is the campaign-local YYYY-MM-DD of a daily
 * cap, null for a total. Published once per (cap, period, threshold).
 */
export interface CapThresholdData {
  campaign_id: number;
  affiliate_id: number | null;
  metric: 'clicks' | 'conversions';
  period: 'daily' | 'total';
  day: string | null;
  threshold_percent: 80 | 100;
  cap: number;
  count: number;
}

/** The thresholds of a cap that raise `cap.threshold_reached`, percent. */
export const CAP_THRESHOLDS = [80, 100] as const;

/** The count at which `pct` percent of `cap` is reached: ⌈cap × pct / 100⌉ in integers (no float rounding). */
export function capThreshold(cap: number, pct: number): number {
  return Math.ceil((cap * pct) / 100);
}

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
