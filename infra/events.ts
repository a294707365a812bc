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
  | 'delivery.endpoint_disabled'
  | 'delivery.queue_alert'
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

/** Publishes an event on the Redis pub/sub channel `keys.events` (fan-out to every API process). */
export async function publishEvent(redis: Redis, keys: RedisKeys, event: LiveEvent): Promise<void> {
  await redis.publish(keys.events, JSON.stringify(event));
}
