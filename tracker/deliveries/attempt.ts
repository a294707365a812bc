import { Webhook } from 'standardwebhooks';
import { isRetriable } from '../../infra/index.ts';
import { sendRequest } from './http.ts';
import { type OutcomeDeps, recordAttempt } from './outcome.ts';
import type { Ctx, DeliveryRow } from './store.ts';
import { signingSecrets } from './webhooks.ts';

/**
 * The headers of one attempt: webhooks signed per Standard Webhooks (`webhook-id`, `webhook-timestamp` in
 * seconds of `nowMs`, `webhook-signature` with every current signing secret). `ok: false` with the endpoint's
 * status when it is no longer active (or deleted). @throws when a secret does not decrypt, or Postgres fails.
 */
export async function buildRequest(ctx: Ctx, row: DeliveryRow, nowMs: number) {
  const { sql } = ctx;
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

/**
 * One HTTP attempt of a leased row (SSRF-checked, bounded by DELIVERY_TIMEOUT_MS), then its outcome recorded.
 * A row whose endpoint is no longer active fails without a request.
 * @throws only retriable (Postgres) errors: the row's lease then brings it back.
 */
export async function runAttempt(d: OutcomeDeps, row: DeliveryRow): Promise<void> {
  const { ctx } = d;
  const { sql, config, logger } = ctx;
  const startedMs = ctx.clock();
  let req: Awaited<ReturnType<typeof buildRequest>>;
  try {
    req = await buildRequest(ctx, row, startedMs);
  } catch (err) {
    if (isRetriable(err)) throw err; // Postgres away: the lease brings the row back
    // E.g. a secret that no longer decrypts (DELIVERY_SECRET_KEY changed): a logged, scheduled failure.
    logger.error({ err, delivery_id: row.id }, 'could not prepare delivery');
    const error = 'could not prepare the request (signing secret unreadable?)';
    await recordAttempt(d, row, { status: 0, headers: {}, body: '', latency_ms: 0, error }, startedMs);
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
  await recordAttempt(d, row, res, startedMs);
}
