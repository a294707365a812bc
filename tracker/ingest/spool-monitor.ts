import { randomUUID } from 'node:crypto';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type Logger, publishEvent, type Redis, type RedisKeys } from '../../infra/index.ts';
import type { Spool } from './spool.ts';

/** Share of SPOOL_MAX_BYTES from which the spool is reported near its cap. */
export const SPOOL_ALERT_RATIO = 0.8;
/** At most one `tracker.spool_near_cap` event per this long, across every process sharing Redis, s. */
const ALERT_EVERY_S = 300;

/** The spool's prom-client metrics, registered on `registry`. */
export interface SpoolMetrics {
  registry: Registry;
  bytesGauge: Gauge;
  maxBytesGauge: Gauge;
  droppedCounter: Counter;
}

/** Registers `tracker_spool_bytes`, `tracker_spool_max_bytes` and `tracker_spool_dropped_events_total`. */
export function createSpoolMetrics(registry: Registry): SpoolMetrics {
  return {
    registry,
    bytesGauge: new Gauge({
      name: 'tracker_spool_bytes',
      help: 'Bytes of spool files under DATA_DIR/spool (events waiting for Redis)',
      registers: [registry],
    }),
    maxBytesGauge: new Gauge({
      name: 'tracker_spool_max_bytes',
      help: 'The spool cap (SPOOL_MAX_BYTES), bytes',
      registers: [registry],
    }),
    droppedCounter: new Counter({
      name: 'tracker_spool_dropped_events_total',
      help: 'Events lost because Redis was unavailable and the spool was at its cap',
      registers: [registry],
    }),
  };
}

/** What {@link checkSpool} needs. */
export interface SpoolCheckDeps {
  spool: Spool;
  metrics: SpoolMetrics;
  redis: Redis;
  keys: RedisKeys;
  log: Logger;
}

/**
 * One look at the spool (run every second by the tracker): re-measures it, updates the gauges and, at
 * {@link SPOOL_ALERT_RATIO} of `spool.maxBytes` or more, logs a warning and publishes `tracker.spool_near_cap`
 * (admins only) at most once per 5 minutes across processes (a Redis `SET NX EX 300` key, as
 * `delivery.queue_alert` does). The spool fills while Redis is unreachable, so the event often cannot be
 * published at once: the warning is logged anyway, and the event is retried on the next look until it is out.
 * Never throws. @returns whether an event was published by this call.
 */
export async function checkSpool(d: SpoolCheckDeps, state: { loggedAtMs: number }): Promise<boolean> {
  const { spool, metrics, redis, keys, log } = d;
  const bytes = await spool.measure();
  metrics.bytesGauge.set(bytes);
  metrics.maxBytesGauge.set(Number.isFinite(spool.maxBytes) ? spool.maxBytes : 0);
  if (!(bytes >= spool.maxBytes * SPOOL_ALERT_RATIO)) return false;
  const data = { bytes, max_bytes: spool.maxBytes, dropped_events: spool.dropped, dir: spool.dir };
  const now = Date.now();
  if (now - state.loggedAtMs >= ALERT_EVERY_S * 1000) {
    state.loggedAtMs = now;
    log.warn(data, 'spool near its cap (SPOOL_MAX_BYTES)');
  }
  if (redis.status !== 'ready') return false;
  const key = keys.key('tracker', 'spool_near_cap');
  try {
    if ((await redis.set(key, '1', 'EX', ALERT_EVERY_S, 'NX')) !== 'OK') return false;
  } catch {
    return false;
  }
  try {
    await publishEvent(redis, keys, {
      id: randomUUID(),
      type: 'tracker.spool_near_cap',
      created_at: new Date().toISOString(),
      user_ids: [],
      data,
    });
    return true;
  } catch (err) {
    // Not out: give the slot back so the next look tries again.
    await redis.del(key).catch(() => {});
    log.warn({ err: (err as Error).message }, 'tracker.spool_near_cap not published, will retry');
    return false;
  }
}
