/**
 * The audit log of state-changing API calls: one append-only `audit_log` row (migration 00015) per POST, PUT, PATCH
 * or DELETE that reached a route, failed ones included: who (user, API key), the action (method + route pattern),
 * the object (from the route's params, or the id a create answered), the client IP, the HTTP status, the request
 * id and the time. It never reads the request body nor any header but the client IP's, and takes nothing from the
 * answer but its status, error code and a created object's id, so passwords, tokens, API keys, TOTP codes and
 * secrets cannot reach it.
 *
 * A failed write does not fail the call: the row is written once the answer's status is known, when the change
 * (if any) is already committed, so a 5xx would tell the client that a change which happened did not and invite a
 * retry. The row then goes to the error log whole (`audit.write_failed`, the fallback record) and is counted in
 * `api_audit_write_failures_total`.
 */
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import type { Context, Next } from 'koa';
import { counterOn, type Logger, type Registry, type Sql } from '../infra/index.ts';
import type { Principal } from './types.ts';

/** Methods whose calls are audited. */
const AUDITED = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** One audit row as written. */
export interface AuditRow {
  user_id: number | null;
  api_key_id: number | null;
  action: string;
  object_type: string | null;
  object_id: string | null;
  ip: string | null;
  status: number;
  request_id: string;
  detail: Record<string, unknown>;
}

/**
 * Names the acting user of a public route (login, 2FA login, refresh) once the handler knows who it is, so the
 * row is theirs (and shows in their `/me/audit-log`) even though the call carried no token.
 */
export function auditActor(ctx: Context, userId: number): void {
  ctx.state.auditUserId = userId;
}

/** The object a call acted on: the route's last param and the path segment before it; else a create's new id. */
function objectOf(pattern: string, params: Record<string, string>, ctx: Context): [string | null, string | null] {
  const parts = pattern.split('/');
  for (let i = parts.length - 1; i > 0; i--) {
    const p = parts[i]!;
    if (p.startsWith(':')) return [parts[i - 1] ?? null, params[p.slice(1)] ?? null];
  }
  const id = (ctx.body as { data?: { id?: unknown } } | undefined)?.data?.id;
  if (ctx.status === 201 && (typeof id === 'number' || typeof id === 'string'))
    return [parts[parts.length - 1] ?? null, String(id)];
  return [null, null];
}

/** The row of one answered call; null when it is not audited (a read, no route matched, a route opted out). */
export function auditRowOf(ctx: Context, skip: ReadonlySet<string>): AuditRow | null {
  if (!AUDITED.has(ctx.method)) return null;
  const pattern = (ctx as Context & { _matchedRoute?: unknown })._matchedRoute;
  // No route: an unknown path, or refused before routing (the rate limit), which must not turn floods into rows.
  if (typeof pattern !== 'string') return null;
  const action = `${ctx.method} ${pattern}`;
  if (skip.has(action)) return null;
  const params = ((ctx as Context & { params?: Record<string, string> }).params ?? {}) as Record<string, string>;
  const [object_type, object_id] = objectOf(pattern, params, ctx);
  const user = ctx.state.user as Principal | undefined;
  const ip = String(ctx.state.clientIp ?? '');
  const detail: Record<string, unknown> = {};
  if (Object.keys(params).length > 1) detail.params = params;
  const code = (ctx.body as { error?: { code?: unknown } } | undefined)?.error?.code;
  if (ctx.status >= 400 && typeof code === 'string') detail.error = code;
  return {
    user_id: user?.user_id ?? (ctx.state.auditUserId as number | undefined) ?? null,
    api_key_id: user?.api_key_id ?? null,
    action,
    object_type,
    object_id: object_id === null ? null : object_id.slice(0, 200),
    ip: isIP(ip) ? ip : null,
    status: ctx.status,
    request_id: String(ctx.state.requestId),
    detail,
  };
}

/**
 * The middleware: gives every request an id (`ctx.state.requestId`, answered as `X-Request-Id`), lets the rest of
 * the app answer (it must sit outside the error middleware, so the status is final), then writes the call's row.
 * `skip` holds `"<METHOD> <pattern>"` of routes that change nothing though they are POSTs (`/analytics/query`,
 * which writes a row of its own).
 */
export function auditMiddleware(
  sql: Sql,
  logger: Logger,
  registry: Registry,
  skip: ReadonlySet<string>,
): (ctx: Context, next: Next) => Promise<void> {
  const failures = counterOn(registry, {
    name: 'api_audit_write_failures_total',
    help: 'Audit log rows that could not be written (each is logged whole as audit.write_failed)',
  });
  return async (ctx, next) => {
    const requestId = randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    await next();
    const row = auditRowOf(ctx, skip);
    if (!row) return;
    try {
      await sql`insert into audit_log (user_id, api_key_id, action, object_type, object_id, ip, status, request_id, detail)
        values (${row.user_id}, ${row.api_key_id}, ${row.action}, ${row.object_type}, ${row.object_id}, ${row.ip},
                ${row.status}, ${row.request_id}, ${sql.json(row.detail as never)})`;
    } catch (err) {
      failures.inc();
      logger.error({ err, audit: row }, 'audit.write_failed');
    }
  };
}
