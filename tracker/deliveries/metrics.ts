import {
  type Counter,
  counterOn,
  type Gauge,
  gaugeOn,
  type Redis,
  type RedisKeys,
  type Registry,
} from '../../infra/index.ts';
import type { Notify } from './outcome.ts';
import type { Ctx } from './store.ts';

/** The queue's prom-client metrics, registered on `registry`. */
export interface DeliveryMetrics {
  registry: Registry;
  depthGauge: Gauge;
  oldestGauge: Gauge;
  /** Labels `kind` (postback | webhook) and `outcome` (success | gone | refused | failure). */
  attemptsCounter: Counter<'kind' | 'outcome'>;
}

/**
 * Registers `delivery_queue_depth`, `delivery_oldest_pending_age_seconds` and `delivery_attempts_total` on `registry`
 * (the process's one registry under `npm start`; an engine created again on it shares them).
 */
export function createDeliveryMetrics(registry: Registry): DeliveryMetrics {
  const depthGauge = gaugeOn(registry, {
    name: 'delivery_queue_depth',
    help: 'Outbound deliveries waiting to be sent (pending, due or scheduled for retry)',
  });
  const oldestGauge = gaugeOn(registry, {
    name: 'delivery_oldest_pending_age_seconds',
    help: 'Age of the oldest pending outbound delivery, seconds (0 when none)',
  });
  const attemptsCounter = counterOn(registry, {
    name: 'delivery_attempts_total',
    help: 'Outbound delivery attempts by kind and outcome',
    labelNames: ['kind', 'outcome'],
  });
  return { registry, depthGauge, oldestGauge, attemptsCounter };
}

/**
 * Queue depth and oldest pending age (seconds); updates the gauges and, above
 * DELIVERY_QUEUE_ALERT_THRESHOLD, raises `delivery.queue_alert` at most once per 5 minutes across processes.
 */
export async function refreshStats(
  ctx: Ctx,
  d: { redis: Redis; keys: RedisKeys; metrics: DeliveryMetrics; notify: Notify },
): Promise<{ depth: number; oldest_pending_age_s: number }> {
  const { sql, config, clock, logger } = ctx;
  const { redis, keys, notify } = d;
  const [s] = await sql<{ depth: number; oldest: Date | null }[]>`
    select count(*)::int8 as depth, min(created_at) as oldest from deliveries where status = 'pending'`;
  const depth = s?.depth ?? 0;
  const oldest = s?.oldest ? Math.max(0, (clock() - s.oldest.getTime()) / 1000) : 0;
  d.metrics.depthGauge.set(depth);
  d.metrics.oldestGauge.set(oldest);
  if (depth > config.DELIVERY_QUEUE_ALERT_THRESHOLD) {
    // One alert per 5 minutes across every process sharing this Redis.
    const first = await redis.set(keys.key('deliveries', 'queue_alert'), '1', 'EX', 300, 'NX').catch(() => null);
    if (first === 'OK') {
      logger.warn({ depth, oldest_pending_age_s: oldest }, 'delivery queue above alert threshold');
      await notify('delivery.queue_alert', [], {
        depth,
        oldest_pending_age_s: Math.round(oldest),
        threshold: config.DELIVERY_QUEUE_ALERT_THRESHOLD,
      });
    }
  }
  return { depth, oldest_pending_age_s: oldest };
}
