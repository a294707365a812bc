import { createHash, randomUUID } from 'node:crypto';
import type { Counter } from 'prom-client';
import {
  type LiveEvent,
  type LiveEventType,
  type Logger,
  publishEvent,
  type Redis,
  type RedisKeys,
} from '../../infra/index.ts';
import type { OutboundResult } from './http.ts';
import { redactUrl } from './macros.ts';
import { nextDelayMs, parseRetryAfter } from './schedule.ts';
import type { Ctx, DeliveryRow } from './store.ts';

const RESPONSE_LOG_CHARS = 1024;

/** Publishes a live event to `userIds` (`[]`: admins only); failures are logged, never thrown. */
export type Notify = (type: LiveEventType, userIds: number[], data: Record<string, unknown>) => Promise<void>;

/** A {@link Notify} over the live-event bus, stamped with the injected clock. */
export function liveNotifier(redis: Redis, keys: RedisKeys, clock: () => number, logger: Logger): Notify {
  return async (type, userIds, data) => {
    const event: LiveEvent = {
      id: randomUUID(),
      type,
      created_at: new Date(clock()).toISOString(),
      user_ids: userIds,
      data,
    };
    await publishEvent(redis, keys, event).catch((err) => logger.error({ err, type }, 'could not publish event'));
  };
}

/** What {@link recordAttempt} needs besides the row. */
export interface OutcomeDeps {
  ctx: Ctx;
  attemptsCounter: Counter<'kind' | 'outcome'>;
  notify: Notify;
}

/**
 * Logs one attempt (`delivery_attempts`, URL redacted, body hashed, response cut to 1 KiB) and settles the row:
 * 2xx → succeeded (endpoint no longer failing); 410 or an SSRF refusal → failed for good; otherwise retried on the
 * schedule (Retry-After honoured) until the retry window ends → failed. An endpoint answering 410, or failing for
 * DELIVERY_DISABLE_AFTER_S, is disabled and its owner gets `delivery.endpoint_disabled`.
 * `startedMs`: epoch ms of the attempt's start (injected clock).
 */
export async function recordAttempt(
  d: OutcomeDeps,
  row: DeliveryRow,
  res: OutboundResult,
  startedMs: number,
): Promise<void> {
  const { sql, config, clock, logger } = d.ctx;
  const nowMs = clock();
  const now = new Date(nowMs);
  const n = row.attempts + 1;
  const success = res.status >= 200 && res.status < 300;
  const gone = res.status === 410;
  const error = res.error ?? (success ? null : `HTTP ${res.status}`);
  const outcome = success ? 'success' : gone ? 'gone' : res.refused ? 'refused' : 'failure';
  d.attemptsCounter.inc({ kind: row.kind, outcome });
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
      random: d.ctx.random,
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
    await d.notify('delivery.endpoint_disabled', [row.owner_id], {
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
