import { z } from 'zod';
import { AppError, type Sql } from '../../infra/index.ts';
import type { AuditRow } from '../audit.ts';
import { idParam, type Route, route } from '../http.ts';
import { ROLES } from '../types.ts';

/** ISO 8601 date-time with `Z` or an offset, or `YYYY-MM-DD` (00:00 UTC). */
const instant = z.union([z.iso.datetime({ offset: true }), z.iso.date()]).transform((s) => new Date(s));

/** Filters both audit routes take; `cursor` continues strictly after the last row of the previous page. */
const ownQuery = z.object({
  action: z.string().max(300).optional(),
  object_type: z.string().max(100).optional(),
  object_id: z.string().max(200).optional(),
  from: instant.optional(),
  to: instant.optional(),
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().max(40).optional(),
});
type OwnQuery = z.infer<typeof ownQuery>;
const adminQuery = ownQuery.extend({ user_id: idParam.optional() });

/** A page cursor: base64url of the last row's id (rows are newest first, by id). */
function decodeCursor(c: string): number {
  const id = Number(Buffer.from(c, 'base64url').toString('utf8'));
  if (!Number.isSafeInteger(id) || id < 1)
    throw new AppError('VALIDATION_ERROR', 'invalid cursor', {
      cursor: ['must be a next_cursor from a previous page'],
    });
  return id;
}

/** An audit row as read (rows older than the audit log's migration have no status or request_id). */
type AuditView = Omit<AuditRow, 'status' | 'request_id'> & {
  id: number;
  created_at: Date;
  status: number | null;
  request_id: string | null;
};

/**
 * One keyset page of audit rows, newest first: `id < cursor`, so pages never shift while rows are appended and a
 * deep page costs what the first does (a log grows without bound; an OFFSET and a `total` would not).
 */
async function auditPage(sql: Sql, q: OwnQuery & { user_id?: number }) {
  const before = q.cursor === undefined ? null : decodeCursor(q.cursor);
  const w = [sql`true`];
  if (q.user_id !== undefined) w.push(sql`user_id = ${q.user_id}`);
  if (q.action !== undefined) w.push(sql`action = ${q.action}`);
  if (q.object_type !== undefined) w.push(sql`object_type = ${q.object_type}`);
  if (q.object_id !== undefined) w.push(sql`object_id = ${q.object_id}`);
  if (q.from !== undefined) w.push(sql`created_at >= ${q.from}`);
  if (q.to !== undefined) w.push(sql`created_at < ${q.to}`);
  if (before !== null) w.push(sql`id < ${before}`);
  const where = w.reduce((a, b) => sql`${a} and ${b}`);
  const rows = await sql<AuditView[]>`
    select id, created_at, user_id, api_key_id, action, object_type, object_id, host(ip) as ip, status, request_id, detail
    from audit_log where ${where} order by id desc limit ${q.limit}`;
  const last = rows[rows.length - 1];
  const next = rows.length === q.limit && last ? Buffer.from(String(last.id)).toString('base64url') : null;
  return { data: rows, meta: { limit: q.limit, next_cursor: next } };
}

/** Reading the audit log (admin-api/audit.ts writes it): everyone's for admins, one's own for every user. */
export function auditRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/audit-log',
      summary:
        'Audit log of state-changing calls, newest first (filter by user_id, action, object, [from, to); cursor paging)',
      tag: 'audit',
      auth: ['admin'],
      query: adminQuery,
      async handler({ deps: { sql }, query }) {
        return auditPage(sql, query);
      },
    }),
    route({
      method: 'get',
      path: '/me/audit-log',
      summary: 'Your own audited calls, newest first (same filters as /audit-log but user_id)',
      tag: 'audit',
      auth: ROLES,
      query: ownQuery,
      async handler({ deps: { sql }, user, query }) {
        return auditPage(sql, { ...query, user_id: user.user_id });
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
