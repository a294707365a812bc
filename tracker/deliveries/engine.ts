import { Registry } from 'prom-client';
import type { Config, Logger, Redis, RedisKeys, Sql } from '../../infra/index.ts';
import { runAttempt } from './attempt.ts';
import { conversionSink, createEventConsumer, handleEvent } from './consumer.ts';
import { createDeliveryMetrics, refreshStats } from './metrics.ts';
import { liveNotifier } from './outcome.ts';
import { firePostbacks, postbackRepository } from './postbacks.ts';
import { createWorkers } from './queue.ts';
import { loadDeliverySecretKey } from './secrets.ts';
import { HostAllowlist } from './ssrf.ts';
import type { Ctx } from './store.ts';
import type { PostbackEvent } from './types.ts';
import { webhookRepository } from './webhooks.ts';

/** Dependencies of {@link createDeliveries}. */
export interface DeliveriesOptions {
  sql: Sql;
  redis: Redis;
  keys: RedisKeys;
  config: Config;
  logger: Logger;
  /** Current time, epoch ms; tests inject a controllable clock. */
  clock?: () => number;
  /** In [0, 1), for retry jitter; tests inject `() => 0.5` (no jitter). */
  random?: () => number;
  /** Where the queue metrics are registered (default: a registry of its own, see `registry`). */
  registry?: Registry;
  /** Overrides the at-rest key (else DELIVERY_SECRET_KEY / the development key file). */
  secretKey?: Buffer;
  /** Event-log entries a dead consumer left unacknowledged this long are taken over, ms (default 30 s). */
  eventClaimIdleMs?: number;
}

const STATS_EVERY_MS = 5_000;

/**
 * The outbound delivery system: repositories for postbacks and webhooks, the event fan-out and
 * the durable queue's workers.
 *
 * Input: the durable live-event log (see `eventLogKey` in infra), read with the consumer group
 * `deliveries`, so events published while no engine runs are not lost; `handleEvent`,
 * `firePostbacks` and `conversionSink` enqueue directly.
 * Queue: Postgres table `deliveries` (survives restarts; several processes can run workers —
 * rows are leased with `FOR UPDATE SKIP LOCKED` and a lease that outlives the request timeout,
 * so a crashed worker's rows are retried after it expires). The per-destination limit holds per
 * process.
 */
export function createDeliveries(opts: DeliveriesOptions) {
  const { sql, redis, keys, config } = opts;
  const logger = opts.logger.child({ module: 'deliveries' });
  const clock = opts.clock ?? Date.now;
  const registry = opts.registry ?? new Registry();
  const ctx: Ctx = {
    sql,
    config,
    secretKey: opts.secretKey ?? loadDeliverySecretKey(config),
    allow: new HostAllowlist(config.DELIVERY_ALLOWED_HOSTS),
    clock,
    random: opts.random ?? Math.random,
    logger,
    wake: () => workers.wake(),
  };
  const metrics = createDeliveryMetrics(registry);
  const notify = liveNotifier(redis, keys, clock, logger);
  const outcome = { ctx, attemptsCounter: metrics.attemptsCounter, notify };
  const workers = createWorkers(ctx, {
    leaseMs: config.DELIVERY_TIMEOUT_MS + 30_000,
    attempt: (row) => runAttempt(outcome, row),
  });
  const events = createEventConsumer(ctx, { redis, keys, claimIdleMs: opts.eventClaimIdleMs ?? 30_000 });
  let running = false;
  let statsTimer: NodeJS.Timeout | undefined;
  const stats = () => refreshStats(ctx, { redis, keys, metrics, notify });

  return {
    postbacks: postbackRepository(ctx),
    webhooks: webhookRepository(ctx),
    /** prom-client registry holding `delivery_queue_depth`, `delivery_oldest_pending_age_seconds`, `delivery_attempts_total`. */
    registry,
    /** Fan-out of one live event (what the event-log consumer does per entry). Idempotent by event id. */
    handleEvent: (event: Parameters<typeof handleEvent>[1]) => handleEvent(ctx, event),
    /**
     * Queues the postbacks of one conversion event (the pipeline may call this directly after
     * storing the conversion; the `conversion.*` live events do the same). Idempotent.
     */
    firePostbacks: (conversionId: string, type: PostbackEvent) => firePostbacks(ctx, conversionId, type),
    /** Queue depth and oldest pending age (s); updates the gauges and raises the alert event. */
    refreshStats: stats,
    /** See {@link conversionSink}: queues the `conversion.created` postbacks of each accepted conversion. */
    conversionSink: conversionSink(ctx),

    /**
     * Sends every delivery due now (by the injected clock) and waits for the attempts to be
     * recorded; deliveries rescheduled into the future are left. For tests and one-shot tools.
     */
    drain: () => workers.drain(),

    /**
     * Starts consuming the durable event log (consumer group `deliveries`; entries older than the
     * retry window are skipped, unacknowledged ones of a dead process are taken over) and the workers.
     */
    async start(): Promise<void> {
      if (running) return;
      running = true;
      try {
        await events.start();
      } catch (err) {
        running = false;
        throw err;
      }
      workers.start();
      statsTimer = setInterval(() => {
        stats().catch((err) => logger.error({ err }, 'could not read delivery queue stats'));
      }, STATS_EVERY_MS);
      statsTimer.unref();
    },

    /** Stops taking work and events, waits for in-flight attempts (each bounded by the timeout). */
    async stop(): Promise<void> {
      if (!running) return;
      running = false;
      if (statsTimer) clearInterval(statsTimer);
      const workersDone = workers.stop();
      await events.stop();
      await workersDone;
    },
  };
}

/** The delivery system built by {@link createDeliveries}. */
export type Deliveries = ReturnType<typeof createDeliveries>;
