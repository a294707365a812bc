/**
 * What postback and webhook endpoints share: pieces of their input schemas, the destination check of a URL,
 * the owner-scoped reads and the status part of a PATCH.
 */
import { z } from 'zod';
import { AppError, type Sql } from '../../infra/index.ts';
import { checkUrl, DestinationRefusedError } from './ssrf.ts';
import type { Ctx } from './store.ts';
import { type Actor, fieldError, type Page, type PageQuery, pageQuerySchema, parseInput } from './types.ts';

/** The state fields every endpoint has: ISO strings in the API shape, `Date`s in a row (`T = Date`). */
export interface EndpointState<T = string> {
  status: 'active' | 'disabled';
  disabled_reason: string | null;
  created_at: T;
  updated_at: T;
}

/** An endpoint's URL (or URL template) as the API accepts it. */
export const endpointUrl = z.string().trim().min(10).max(2048);

/** The `events` field: a non-empty list of `names`, duplicates dropped. */
export function eventList<const T extends readonly [string, ...string[]]>(names: T) {
  return z
    .array(z.enum(names))
    .min(1)
    .max(names.length)
    .transform((xs) => [...new Set(xs)]);
}

/** @throws AppError VALIDATION_ERROR on `url` when the SSRF rules refuse the destination of `u`. */
export function checkDestination(ctx: Ctx, u: URL): void {
  try {
    checkUrl(u, ctx.allow);
  } catch (err) {
    if (err instanceof DestinationRefusedError) {
      throw fieldError('url', err.message);
    }
    throw err;
  }
}

const TABLES = {
  postback: { table: 'postback_endpoints', owner: 'affiliate_id' },
  webhook: { table: 'webhook_endpoints', owner: 'user_id' },
} as const;

/** One page of the endpoints of `kind` the actor owns (every one for admins), newest first. */
export async function listEndpoints<Row extends object>(
  ctx: Ctx,
  kind: 'postback' | 'webhook',
  actor: Actor,
  q: PageQuery,
): Promise<Page<Row>> {
  const { sql } = ctx;
  const p = parseInput(pageQuerySchema, q);
  const admin = actor.role === 'admin';
  const table = sql(TABLES[kind].table);
  const owner = sql(TABLES[kind].owner);
  const [c] = await sql<{ n: number }[]>`
    select count(*)::int8 as n from ${table}
    where status <> 'deleted' and (${admin} or ${owner} = ${actor.id})`;
  const rows = await sql<Row[]>`
    select * from ${table} where status <> 'deleted' and (${admin} or ${owner} = ${actor.id})
    order by id desc limit ${p.per_page} offset ${(p.page - 1) * p.per_page}`;
  return { items: [...rows], total: c?.n ?? 0, ...p };
}

/** Loads an endpoint the actor may see. @throws AppError NOT_FOUND (also for others' endpoints). */
export async function loadEndpoint<Row extends object>(
  ctx: Ctx,
  kind: 'postback' | 'webhook',
  actor: Actor,
  id: number,
): Promise<Row> {
  const { table, owner } = TABLES[kind];
  const [r] = await ctx.sql<Row[]>`
    select * from ${ctx.sql(table)}
    where id = ${id} and status <> 'deleted' and (${actor.role === 'admin'} or ${ctx.sql(owner)} = ${actor.id})`;
  if (!r) throw new AppError('NOT_FOUND', `${kind} not found`);
  return r;
}

/**
 * The `status`, `disabled_reason` and `failing_since` assignments of a PATCH: `active` re-enables a disabled
 * endpoint (clearing its reason and failure streak), `disabled` records that the user disabled it.
 */
export function statusAssignments(
  sql: Sql,
  status: 'active' | 'disabled' | undefined,
  cur: { status: 'active' | 'disabled'; disabled_reason: string | null },
) {
  const reenable = status === 'active' && cur.status !== 'active';
  return sql`status = ${status ?? cur.status},
    disabled_reason = ${reenable ? null : status === 'disabled' ? 'disabled by user' : cur.disabled_reason},
    failing_since = case when ${reenable} then null else failing_since end`;
}

/**
 * Runs `insert` (one endpoint for `ownerId`) in a transaction unless the owner already has
 * DELIVERY_ENDPOINTS_PER_OWNER endpoints of `kind` that are not deleted. Concurrent creates of one owner are
 * serialised on the owner's users row (FOR NO KEY UPDATE), so parallel requests cannot pass the count together.
 * @throws AppError ENDPOINT_LIMIT_REACHED (409), and nothing is written
 */
export async function insertWithinCap<Row>(
  ctx: Ctx,
  kind: 'postback' | 'webhook',
  ownerId: number,
  insert: (tx: Sql) => Promise<Row>,
): Promise<Row> {
  const { table, owner } = TABLES[kind];
  const cap = ctx.config.DELIVERY_ENDPOINTS_PER_OWNER;
  return (await ctx.sql.begin(async (tx) => {
    await tx`select 1 from users where id = ${ownerId} for no key update`;
    const [c] = await tx<{ n: number }[]>`
      select count(*)::int4 as n from ${tx(table)} where ${tx(owner)} = ${ownerId} and status <> 'deleted'`;
    if ((c?.n ?? 0) >= cap)
      throw new AppError('ENDPOINT_LIMIT_REACHED', `at most ${cap} ${kind} endpoints per owner; delete one first`, {
        limit: cap,
      });
    return insert(tx as unknown as Sql);
  })) as Row;
}
