import type { Config, Logger, Sql } from '../../infra/index.ts';
import type { HostAllowlist } from './ssrf.ts';
import type { AttemptView, DeliveryStatus, DeliveryView, Page } from './types.ts';

/** What the repositories and the engine share. */
export interface Ctx {
  sql: Sql;
  config: Config;
  /** AES-256 key for webhook secrets. */
  secretKey: Buffer;
  allow: HostAllowlist;
  /** Current time, epoch ms (injectable for tests). */
  clock: () => number;
  /** In [0, 1), for jitter (injectable for tests). */
  random: () => number;
  logger: Logger;
  /** Tells the local workers that something became due. */
  wake: () => void;
}

/** What a delivery sends, and to whom it belongs: the columns a queued row and a stored one share. */
interface DeliveryRequest {
  kind: 'postback' | 'webhook';
  owner_id: number;
  event_id: string;
  event_type: string;
  method: 'GET' | 'POST';
  url: string;
  destination: string;
  body: string | null;
}

/** A row to enqueue. */
export interface NewDelivery extends DeliveryRequest {
  endpoint_id: number;
}

/** A `deliveries` row as the engine reads it. */
export interface DeliveryRow extends DeliveryRequest {
  id: number;
  postback_id: number | null;
  webhook_id: number | null;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: Date;
  window_started_at: Date;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  completed_at: Date | null;
}

/**
 * Inserts deliveries, skipping those already queued for the same (endpoint, event): enqueueing
 * one event twice (a redelivered live event, a retried pipeline batch) sends it once.
 * @returns ids of the rows actually inserted.
 */
export async function insertDeliveries(ctx: Ctx, rows: NewDelivery[]): Promise<number[]> {
  if (rows.length === 0) return [];
  const now = new Date(ctx.clock());
  const ids: number[] = [];
  for (const kind of ['postback', 'webhook'] as const) {
    const mine = rows.filter((r) => r.kind === kind);
    if (mine.length === 0) continue;
    const values = mine.map((r) => ({
      kind: r.kind,
      postback_id: kind === 'postback' ? r.endpoint_id : null,
      webhook_id: kind === 'webhook' ? r.endpoint_id : null,
      owner_id: r.owner_id,
      event_id: r.event_id,
      event_type: r.event_type,
      method: r.method,
      url: r.url,
      destination: r.destination,
      body: r.body,
      next_attempt_at: now,
      window_started_at: now,
      created_at: now,
      updated_at: now,
    }));
    const col = kind === 'postback' ? 'postback_id' : 'webhook_id';
    const inserted = await ctx.sql<{ id: number }[]>`
      insert into deliveries ${ctx.sql(values)}
      on conflict (${ctx.sql(col)}, event_type, event_id) where ${ctx.sql(col)} is not null do nothing
      returning id`;
    ids.push(...inserted.map((r) => r.id));
  }
  if (ids.length > 0) ctx.wake();
  return ids;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/**
 * Soft-deletes a postback or webhook endpoint (its delivery log stays) and fails its pending deliveries, in one
 * transaction. The caller has checked ownership.
 */
export async function softDeleteEndpoint(ctx: Ctx, kind: 'postback' | 'webhook', id: number): Promise<void> {
  const table = kind === 'postback' ? 'postback_endpoints' : 'webhook_endpoints';
  const column = kind === 'postback' ? 'postback_id' : 'webhook_id';
  const now = new Date(ctx.clock());
  await ctx.sql.begin(async (tx) => {
    await tx`update ${tx(table)} set status = 'deleted', updated_at = ${now} where id = ${id}`;
    await tx`update deliveries set status = 'failed', last_error = 'endpoint deleted', completed_at = ${now},
               updated_at = ${now}
             where ${tx(column)} = ${id} and status = 'pending'`;
  });
}

/**
 * Deliveries of one endpoint, newest first, each with its attempt log.
 * The caller has checked that the actor owns the endpoint.
 */
export async function listEndpointDeliveries(
  ctx: Ctx,
  kind: 'postback' | 'webhook',
  endpointId: number,
  page: { page: number; per_page: number },
  status?: DeliveryStatus,
): Promise<Page<DeliveryView>> {
  const { sql } = ctx;
  const col = sql(kind === 'postback' ? 'postback_id' : 'webhook_id');
  const statusFilter = status ? sql`and status = ${status}` : sql``;
  const [{ total }] = (await sql<{ total: number }[]>`
    select count(*)::int8 as total from deliveries where ${col} = ${endpointId} ${statusFilter}`) as unknown as [
    { total: number },
  ];
  const rows = await sql<DeliveryRow[]>`
    select * from deliveries where ${col} = ${endpointId} ${statusFilter}
    order by id desc limit ${page.per_page} offset ${(page.page - 1) * page.per_page}`;
  const items = await withAttempts(ctx, rows);
  return { items, total, ...page };
}

/** Attaches the attempt log to delivery rows. */
export async function withAttempts(ctx: Ctx, rows: DeliveryRow[]): Promise<DeliveryView[]> {
  const ids = rows.map((r) => r.id);
  const attempts =
    ids.length === 0
      ? []
      : await ctx.sql<(AttemptView & { delivery_id: number; started_at: Date })[]>`
          select delivery_id, attempt, started_at, request_method, request_url, request_body_sha256, status_code,
                 response_body, latency_ms, error, success
          from delivery_attempts where delivery_id = any(${ids}::int8[]) order by id`;
  const byDelivery = new Map<number, AttemptView[]>();
  for (const a of attempts) {
    const { delivery_id, started_at, ...rest } = a;
    const list = byDelivery.get(delivery_id) ?? [];
    list.push({ ...rest, started_at: started_at.toISOString() });
    byDelivery.set(delivery_id, list);
  }
  return rows.map((r) => toView(r, byDelivery.get(r.id) ?? []));
}

/** The API shape of a delivery row. */
export function toView(r: DeliveryRow, attempt_log: AttemptView[] = []): DeliveryView {
  return {
    id: r.id,
    kind: r.kind,
    endpoint_id: (r.kind === 'postback' ? r.postback_id : r.webhook_id)!,
    event_id: r.event_id,
    event_type: r.event_type,
    status: r.status,
    attempts: r.attempts,
    next_attempt_at: r.status === 'pending' ? iso(r.next_attempt_at) : null,
    last_status_code: r.last_status_code,
    last_error: r.last_error,
    created_at: r.created_at.toISOString(),
    completed_at: iso(r.completed_at),
    attempt_log,
  };
}
