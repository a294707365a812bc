import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Counter, Gauge, Registry } from 'prom-client';
import { Webhook } from 'standardwebhooks';
import {
  type Config,
  eventLogKey,
  isRetriable,
  type LiveEvent,
  type LiveEventType,
  type Logger,
  publishEvent,
  type Redis,
  type RedisKeys,
  type Sql,
} from '../../infra/index.ts';
import { type OutboundResult, sendRequest } from './http.ts';
import { redactUrl } from './macros.ts';
import { firePostbacks, postbackRepository } from './postbacks.ts';
import { nextDelayMs, parseRetryAfter } from './schedule.ts';
import { loadDeliverySecretKey } from './secrets.ts';
import { HostAllowlist } from './ssrf.ts';
import type { Ctx, DeliveryRow } from './store.ts';
import { POSTBACK_EVENTS, type PostbackEvent } from './types.ts';
import { enqueueWebhookEvent, signingSecrets, webhookRepository } from './webhooks.ts';

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

const RESPONSE_LOG_CHARS = 1024;
/** Consumer group of the delivery engines on the durable event log. */
const EVENT_GROUP = 'deliveries';

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
  let wakeUp: (() => void) | undefined;
  const ctx: Ctx = {
    sql,
    config,
    secretKey: opts.secretKey ?? loadDeliverySecretKey(config),
    allow: new HostAllowlist(config.DELIVERY_ALLOWED_HOSTS),
    clock,
    random: opts.random ?? Math.random,
    logger,
    wake: () => wakeUp?.(),
  };
  const leaseMs = config.DELIVERY_TIMEOUT_MS + 30_000;
  const claimIdleMs = opts.eventClaimIdleMs ?? 30_000;

  const depthGauge = new Gauge({
    name: 'delivery_queue_depth',
    help: 'Outbound deliveries waiting to be sent (pending, due or scheduled for retry)',
    registers: [registry],
  });
  const oldestGauge = new Gauge({
    name: 'delivery_oldest_pending_age_seconds',
    help: 'Age of the oldest pending outbound delivery, seconds (0 when none)',
    registers: [registry],
  });
  const attemptsCounter = new Counter({
    name: 'delivery_attempts_total',
    help: 'Outbound delivery attempts by kind and outcome',
    labelNames: ['kind', 'outcome'],
    registers: [registry],
  });

  const notify = async (type: LiveEventType, userIds: number[], data: Record<string, unknown>) => {
    const event: LiveEvent = {
      id: randomUUID(),
      type,
      created_at: new Date(clock()).toISOString(),
      user_ids: userIds,
      data,
    };
    await publishEvent(redis, keys, event).catch((err) => logger.error({ err, type }, 'could not publish event'));
  };

  /** Fan-out of one live event: webhooks for subscribers, postbacks for `conversion.*`. */
  async function handleEvent(event: LiveEvent): Promise<{ webhooks: number; postbacks: number }> {
    const webhooks = await enqueueWebhookEvent(ctx, event);
    let postbacks = 0;
    if ((POSTBACK_EVENTS as readonly string[]).includes(event.type)) {
      const id = event.data.conversion_id ?? event.data.id;
      if (typeof id === 'string' && /^[0-9a-f-]{36}$/i.test(id) && event.data.test !== true) {
        postbacks = await firePostbacks(ctx, id, event.type as PostbackEvent);
      }
    }
    return { webhooks, postbacks };
  }

  // ---- workers ----

  const inflight = new Set<Promise<void>>();
  const perDest = new Map<string, number>();
  let running = false;
  /** Finished attempts so far: a claim that raced with a completion must look again. */
  let completions = 0;
  let loopDone: Promise<void> | undefined;
  let reader: Redis | undefined;
  let eventsDone: Promise<void> | undefined;
  const logKey = eventLogKey(keys);
  const consumer = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  let claimCursor = '0-0';
  let lastClaimMs = 0;

  function parseEvent(fields: string[] | null): LiveEvent | null {
    if (!fields) return null;
    const i = fields.indexOf('e');
    try {
      const event = JSON.parse(fields[i + 1] ?? '') as LiveEvent;
      if (typeof event?.id !== 'string' || typeof event.type !== 'string' || !Array.isArray(event.user_ids)) {
        return null;
      }
      event.data ??= {};
      return event;
    } catch {
      return null;
    }
  }

  /** Enqueues deliveries for log entries; acknowledges those handled (or not worth handling). */
  async function consumeEntries(entries: Array<[string, string[] | null]>): Promise<void> {
    const ack: string[] = [];
    // Stream ids are Redis-server ms: compare with the wall clock, not the injectable one.
    const oldestMs = Date.now() - config.DELIVERY_RETRY_WINDOW_S * 1000;
    for (const [id, fields] of entries) {
      const event = parseEvent(fields);
      if (!event) {
        if (fields) logger.warn({ entry: id }, 'ignoring malformed live event');
        ack.push(id);
        continue;
      }
      if (Number(id.split('-')[0]) < oldestMs) {
        ack.push(id);
        continue;
      }
      try {
        await handleEvent(event);
        ack.push(id);
      } catch (err) {
        // Left pending: taken over again after claimIdleMs.
        logger.error({ err, event_id: event.id, type: event.type }, 'could not enqueue deliveries for event');
      }
    }
    if (ack.length > 0) await redis.xack(logKey, EVENT_GROUP, ...ack);
  }

  async function eventLoop(conn: Redis): Promise<void> {
    while (running) {
      try {
        if (Date.now() - lastClaimMs >= claimIdleMs / 2) {
          lastClaimMs = Date.now();
          const [next, claimed] = (await redis.xautoclaim(
            logKey,
            EVENT_GROUP,
            consumer,
            claimIdleMs,
            claimCursor,
            'COUNT',
            100,
          )) as [string, Array<[string, string[] | null]>];
          claimCursor = next;
          if (claimed.length > 0) await consumeEntries(claimed);
        }
        const res = (await conn.xreadgroup(
          'GROUP',
          EVENT_GROUP,
          consumer,
          'COUNT',
          100,
          'BLOCK',
          1000,
          'STREAMS',
          logKey,
          '>',
        )) as Array<[string, Array<[string, string[] | null]>]> | null;
        for (const [, entries] of res ?? []) await consumeEntries(entries);
      } catch (err) {
        if (!running) return;
        logger.error({ err }, 'could not read the event log; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
  let statsTimer: NodeJS.Timeout | undefined;

  /**
   * Leases up to `limit` due rows, at most DELIVERY_PER_DESTINATION in flight per destination
   * across every process (a live lease = an attempt in flight; two processes claiming at the same
   * instant may overshoot briefly). Candidates are locked with SKIP LOCKED so no two workers lease
   * the same row; those not picked are released when the statement ends.
   */
  async function claim(limit: number): Promise<DeliveryRow[]> {
    const now = new Date(clock());
    return sql<DeliveryRow[]>`
      with cand as (
        select id, destination, next_attempt_at from deliveries
        where status = 'pending' and next_attempt_at <= ${now}
          and (locked_until is null or locked_until <= ${now})
        order by next_attempt_at, id
        limit ${limit * 10}
        for update skip locked
      ), busy as (
        select destination, count(*)::int4 as used from deliveries
        where locked_until > ${now} and status = 'pending'
        group by destination
      ), ranked as (
        select c.id, c.next_attempt_at,
               row_number() over (partition by c.destination order by c.next_attempt_at, c.id) as rn,
               coalesce(b.used, 0) as used
        from cand c left join busy b on b.destination = c.destination
      ), pick as (
        select id from ranked where rn <= ${config.DELIVERY_PER_DESTINATION} - used
        order by next_attempt_at, id
        limit ${limit}
      )
      update deliveries d set locked_until = ${new Date(now.getTime() + leaseMs)}
      from pick
      where d.id = pick.id
      returning d.*`;
  }

  /** Claims due rows into free slots; returns how many were started. */
  async function fill(): Promise<number> {
    const free = config.DELIVERY_WORKERS - inflight.size;
    if (free <= 0) return 0;
    const rows = await claim(free);
    let started = 0;
    for (const row of rows) {
      const n = perDest.get(row.destination) ?? 0;
      if (n >= config.DELIVERY_PER_DESTINATION) {
        // Not expected (claim() respects the limit); hand it back rather than exceed the limit.
        await sql`update deliveries set locked_until = null where id = ${row.id}`;
        continue;
      }
      perDest.set(row.destination, n + 1);
      const p: Promise<void> = attempt(row)
        .catch((err) => logger.error({ err, delivery_id: row.id }, 'delivery attempt crashed; lease will expire'))
        .finally(() => {
          completions++;
          inflight.delete(p);
          const left = (perDest.get(row.destination) ?? 1) - 1;
          if (left <= 0) perDest.delete(row.destination);
          else perDest.set(row.destination, left);
          ctx.wake();
        });
      inflight.add(p);
      started++;
    }
    return started;
  }

  async function buildRequest(row: DeliveryRow, nowMs: number) {
    const headers: Record<string, string> = {};
    if (row.kind === 'webhook') {
      const [w] = await sql<
        {
          status: string;
          secret_enc: string;
          previous_secret_enc: string | null;
          previous_secret_expires_at: Date | null;
        }[]
      >`select status, secret_enc, previous_secret_enc, previous_secret_expires_at
        from webhook_endpoints where id = ${row.webhook_id}`;
      if (w?.status !== 'active') return { ok: false, endpointStatus: w?.status ?? 'deleted' } as const;
      const body = row.body ?? '';
      const ts = new Date(nowMs);
      // Standard Webhooks: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated when several.
      const signatures = signingSecrets(ctx, w, nowMs).map((s) => new Webhook(s).sign(row.event_id, ts, body));
      headers['content-type'] = 'application/json';
      headers['webhook-id'] = row.event_id;
      headers['webhook-timestamp'] = String(Math.floor(nowMs / 1000));
      headers['webhook-signature'] = signatures.join(' ');
      return { ok: true, headers } as const;
    }
    const [p] = await sql<{ status: string }[]>`select status from postback_endpoints where id = ${row.postback_id}`;
    if (p?.status !== 'active') return { ok: false, endpointStatus: p?.status ?? 'deleted' } as const;
    if (row.body !== null) headers['content-type'] = 'application/json';
    return { ok: true, headers } as const;
  }

  async function attempt(row: DeliveryRow): Promise<void> {
    const startedMs = clock();
    let req: Awaited<ReturnType<typeof buildRequest>>;
    try {
      req = await buildRequest(row, startedMs);
    } catch (err) {
      if (isRetriable(err)) throw err; // Postgres away: the lease brings the row back
      // E.g. a secret that no longer decrypts (DELIVERY_SECRET_KEY changed): a logged, scheduled failure.
      logger.error({ err, delivery_id: row.id }, 'could not prepare delivery');
      const error = 'could not prepare the request (signing secret unreadable?)';
      await record(row, { status: 0, headers: {}, body: '', latency_ms: 0, error }, startedMs);
      return;
    }
    if (!req.ok) {
      const now = new Date(startedMs);
      await sql`update deliveries set status = 'failed', last_error = ${`endpoint ${req.endpointStatus}`},
                  completed_at = ${now}, updated_at = ${now}, locked_until = null
                where id = ${row.id}`;
      return;
    }
    const res = await sendRequest(
      { method: row.method, url: row.url, headers: req.headers, body: row.body ?? undefined },
      { timeoutMs: config.DELIVERY_TIMEOUT_MS, allow: ctx.allow },
    );
    await record(row, res, startedMs);
  }

  async function record(row: DeliveryRow, res: OutboundResult, startedMs: number): Promise<void> {
    const nowMs = clock();
    const now = new Date(nowMs);
    const n = row.attempts + 1;
    const success = res.status >= 200 && res.status < 300;
    const gone = res.status === 410;
    const error = res.error ?? (success ? null : `HTTP ${res.status}`);
    const outcome = success ? 'success' : gone ? 'gone' : res.refused ? 'refused' : 'failure';
    attemptsCounter.inc({ kind: row.kind, outcome });
    const endpointTable = row.kind === 'webhook' ? sql('webhook_endpoints') : sql('postback_endpoints');
    const endpointId = row.kind === 'webhook' ? row.webhook_id : row.postback_id;
    let delay: number | null = null;
    if (!success && !gone && !res.refused) {
      delay = nextDelayMs({
        attempts: n,
        scheduleS: config.DELIVERY_RETRY_SCHEDULE_S,
        windowStartedMs: row.window_started_at.getTime(),
        nowMs,
        windowS: config.DELIVERY_RETRY_WINDOW_S,
        random: ctx.random,
        retryAfterMs: parseRetryAfter(res.headers['retry-after'], nowMs),
      });
    }
    let disabledReason: string | null = null;
    await sql.begin(async (tx) => {
      await tx`
        insert into delivery_attempts (delivery_id, attempt, started_at, request_method, request_url,
          request_body_sha256, status_code, response_body, latency_ms, error, success)
        values (${row.id}, ${n}, ${new Date(startedMs)}, ${row.method}, ${redactUrl(row.url)},
          ${row.body === null ? null : createHash('sha256').update(row.body).digest('hex')},
          ${res.status || null}, ${res.body ? res.body.slice(0, RESPONSE_LOG_CHARS) : null}, ${res.latency_ms},
          ${error}, ${success})`;
      if (success) {
        await tx`update deliveries set status = 'succeeded', attempts = ${n}, last_status_code = ${res.status},
                   last_error = null, completed_at = ${now}, updated_at = ${now}, locked_until = null
                 where id = ${row.id}`;
        await tx`update ${endpointTable} set failing_since = null where id = ${endpointId} and failing_since is not null`;
        return;
      }
      const final = delay === null;
      await tx`update deliveries set attempts = ${n}, last_status_code = ${res.status || null}, last_error = ${error},
                 status = ${final ? 'failed' : 'pending'},
                 next_attempt_at = ${final ? row.next_attempt_at : new Date(nowMs + delay!)},
                 completed_at = ${final ? now : null}, updated_at = ${now}, locked_until = null
               where id = ${row.id}`;
      if (res.refused) return; // our rule, not the receiver's fault
      const [ep] = await tx<{ failing_since: Date; status: string }[]>`
        update ${endpointTable} set failing_since = coalesce(failing_since, ${now})
        where id = ${endpointId} returning failing_since, status`;
      if (ep?.status !== 'active') return;
      if (gone) disabledReason = 'receiver answered 410 Gone';
      else if (nowMs - ep.failing_since.getTime() >= config.DELIVERY_DISABLE_AFTER_S * 1000) {
        disabledReason = `failing since ${ep.failing_since.toISOString()}`;
      }
      if (disabledReason) {
        await tx`update ${endpointTable} set status = 'disabled', disabled_reason = ${disabledReason},
                   updated_at = ${now}
                 where id = ${endpointId}`;
      }
    });
    if (disabledReason) {
      logger.warn({ kind: row.kind, endpoint_id: endpointId, reason: disabledReason }, 'delivery endpoint disabled');
      await notify('delivery.endpoint_disabled', [row.owner_id], {
        kind: row.kind,
        endpoint_id: endpointId,
        reason: disabledReason,
      });
    } else if (!success) {
      logger.info(
        { delivery_id: row.id, attempt: n, status: res.status, error, retry_in_ms: delay },
        delay === null ? 'delivery failed for good' : 'delivery attempt failed; will retry',
      );
    }
  }

  /** Queue depth and oldest pending age; updates the gauges and raises the alert event. */
  async function refreshStats(): Promise<{ depth: number; oldest_pending_age_s: number }> {
    const [s] = await sql<{ depth: number; oldest: Date | null }[]>`
      select count(*)::int8 as depth, min(created_at) as oldest from deliveries where status = 'pending'`;
    const depth = s?.depth ?? 0;
    const oldest = s?.oldest ? Math.max(0, (clock() - s.oldest.getTime()) / 1000) : 0;
    depthGauge.set(depth);
    oldestGauge.set(oldest);
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

  async function loop(): Promise<void> {
    while (running) {
      let started = 0;
      const seen = completions;
      try {
        started = await fill();
      } catch (err) {
        logger.error({ err }, 'could not claim deliveries');
      }
      if (started > 0 || !running || completions !== seen) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, config.DELIVERY_POLL_MS);
        function done() {
          clearTimeout(t);
          wakeUp = undefined;
          resolve();
        }
        wakeUp = done;
      });
    }
  }

  return {
    postbacks: postbackRepository(ctx),
    webhooks: webhookRepository(ctx),
    /** prom-client registry holding `delivery_queue_depth`, `delivery_oldest_pending_age_seconds`, `delivery_attempts_total`. */
    registry,
    /** Fan-out of one live event (what the event-log consumer does per entry). Idempotent by event id. */
    handleEvent,
    /**
     * Queues the postbacks of one conversion event (the pipeline may call this directly after
     * storing the conversion; the `conversion.*` live events do the same). Idempotent.
     */
    firePostbacks: (conversionId: string, type: PostbackEvent) => firePostbacks(ctx, conversionId, type),
    refreshStats,
    /**
     * A `ConversionSink` (infra/contracts.ts §4) that queues the `conversion.created` postbacks of each
     * accepted conversion: a durable trigger (the pipeline retries its batch when this throws),
     * unlike pub/sub. Compose it with the ledger's sink. Idempotent by conversion id.
     */
    conversionSink: {
      async conversionRecorded(c: { id: string }): Promise<void> {
        await firePostbacks(ctx, c.id, 'conversion.created');
      },
    },

    /**
     * Sends every delivery due now (by the injected clock) and waits for the attempts to be
     * recorded; deliveries rescheduled into the future are left. For tests and one-shot tools.
     */
    async drain(): Promise<void> {
      for (;;) {
        const seen = completions;
        const started = await fill();
        if (started > 0) continue;
        if (inflight.size > 0) await Promise.race(inflight);
        else if (completions === seen) return;
      }
    },

    /**
     * Starts consuming the durable event log (consumer group `deliveries`; entries older than the
     * retry window are skipped, unacknowledged ones of a dead process are taken over) and the workers.
     */
    async start(): Promise<void> {
      if (running) return;
      running = true;
      try {
        await redis.xgroup('CREATE', logKey, EVENT_GROUP, '0', 'MKSTREAM');
      } catch (err) {
        if (!String((err as Error).message).includes('BUSYGROUP')) {
          running = false;
          throw err;
        }
      }
      reader = redis.duplicate();
      eventsDone = eventLoop(reader);
      loopDone = loop();
      statsTimer = setInterval(() => {
        refreshStats().catch((err) => logger.error({ err }, 'could not read delivery queue stats'));
      }, STATS_EVERY_MS);
      statsTimer.unref();
    },

    /** Stops taking work and events, waits for in-flight attempts (each bounded by the timeout). */
    async stop(): Promise<void> {
      if (!running) return;
      running = false;
      if (statsTimer) clearInterval(statsTimer);
      wakeUp?.();
      // Interrupts the blocking XREADGROUP; what it had not acknowledged stays pending for the group.
      reader?.disconnect();
      await eventsDone;
      await loopDone;
      await Promise.allSettled([...inflight]);
      reader = undefined;
    },
  };
}

/** The delivery system built by {@link createDeliveries}. */
export type Deliveries = ReturnType<typeof createDeliveries>;
