/**
 * Streaming exports of raw clicks and conversions (`/exports/clicks`, `/exports/conversions`), NDJSON or CSV, over
 * the caller's report scope. The body is a stream of keyset pages ({@link EXPORT_PAGE_ROWS} rows each, see
 * tracker/reports/exports.ts): the next page is read only when the client has taken the previous one, so memory
 * stays bounded by a page however long the export. The first page is read before the response starts, so bad
 * input and query limits still answer in the API envelope.
 */
import { Readable } from 'node:stream';
import { z } from 'zod';
import {
  CONVERSION_EXPORT_COLUMNS,
  decodeExportCursor,
  type ExportCursor,
  type ExportKind,
  type ExportPageQuery,
  encodeExportCursor,
} from '../../tracker/index.ts';
import { scopeReportQuery } from '../domain/reports/scope-report-query.ts';
import { type Route, route } from '../http.ts';
import type { Principal } from '../types.ts';
import { csvCell } from './reports.ts';

/** Longest range of one export, days. */
export const MAX_EXPORT_DAYS = 92;
/** Most rows of one response (`limit`'s maximum and default); past it, resume with `next_cursor`. */
export const MAX_EXPORT_ROWS = 1_000_000;
/** Rows per ClickHouse query of an export. */
export const EXPORT_PAGE_ROWS = 5_000;

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;

/** An instant: ms since the epoch, a date (its 00:00 UTC) or an ISO 8601 date-time with Z or an offset. */
const instant = z
  .string()
  .max(40)
  .transform((s, ctx) => {
    const ms = /^\d{1,15}$/.test(s)
      ? Number(s)
      : DATE.test(s) || INSTANT.test(s)
        ? Date.parse(DATE.test(s) ? `${s}T00:00:00Z` : s)
        : Number.NaN;
    if (Number.isNaN(ms) || (DATE.test(s) && new Date(ms).toISOString().slice(0, 10) !== s)) {
      ctx.addIssue({
        code: 'custom',
        message: 'must be ms since the epoch, YYYY-MM-DD or an ISO 8601 date-time with Z',
      });
      return z.NEVER;
    }
    return ms;
  });

export const exportQuery = z
  .object({
    from: instant,
    to: instant,
    format: z.enum(['ndjson', 'csv']).optional(),
    cursor: z.string().max(200).optional(),
    limit: z.coerce.number().int().min(1).max(MAX_EXPORT_ROWS).default(MAX_EXPORT_ROWS),
    campaign_id: z.coerce.number().int().min(1).optional(),
    affiliate_id: z.coerce.number().int().min(1).optional(),
  })
  .superRefine((q, ctx) => {
    if (q.to <= q.from) ctx.addIssue({ code: 'custom', path: ['to'], message: 'must be after from' });
    else if (q.to - q.from > MAX_EXPORT_DAYS * 86_400_000)
      ctx.addIssue({ code: 'custom', path: ['to'], message: `an export covers at most ${MAX_EXPORT_DAYS} days` });
  });

const CLICK_COLUMNS = [
  'click_id',
  'ts',
  'campaign_id',
  'affiliate_id',
  'sub1',
  'sub2',
  'sub3',
  'sub4',
  'sub5',
  'country',
  'device',
  'is_invalid',
  'invalid_reason',
  'bot_reason',
  'fraud_score',
  'ip',
  'landing_id',
];
const CONVERSION_COLUMNS = ['conversion_id', 'event_time', ...CONVERSION_EXPORT_COLUMNS, 'version'];
/** What affiliates do not see: of clicks the raw IP; of conversions what `GET /conversions` hides from them. */
const AFFILIATE_HIDDEN: Record<ExportKind, Set<string>> = {
  clicks: new Set(['ip']),
  conversions: new Set(['revenue', 'advertiser_id', 'event_id', 'amount', 'fraud_score']),
};

/** The columns of an export for a caller, in order. */
export function exportColumns(kind: ExportKind, user: Principal): string[] {
  const all = kind === 'clicks' ? CLICK_COLUMNS : CONVERSION_COLUMNS;
  return user.role === 'affiliate' ? all.filter((c) => !AFFILIATE_HIDDEN[kind].has(c)) : all;
}

function exportRoute(kind: ExportKind, what: string): Route<never, never> {
  const r = route({
    method: 'get',
    path: `/exports/${kind}`,
    summary: `Streams ${what} of a time range as NDJSON (last line {"next_cursor","rows"}) or CSV, scoped by role; resumable by cursor`,
    tag: 'reports',
    auth: ['admin', 'advertiser', 'affiliate', 'analyst'],
    scope: 'reports:read',
    query: exportQuery,
    produces: ['application/x-ndjson', 'text/csv'],
    async handler({ ctx, deps, user, query }) {
      const after = query.cursor === undefined ? undefined : decodeExportCursor(query.cursor);
      const { reports, q } = await scopeReportQuery(deps, user, {
        campaign_id: query.campaign_id,
        affiliate_id: query.affiliate_id,
      });
      const base: ExportPageQuery = { ...q, kind, from_ms: query.from, to_ms: query.to, limit: 1 };
      const pageRows = (sent: number) => Math.min(EXPORT_PAGE_ROWS, query.limit - sent);
      const first = await reports.exportPage({ ...base, after, limit: pageRows(0) });
      const csv =
        query.format === 'csv' ||
        (query.format === undefined && ctx.accepts('application/x-ndjson', 'text/csv') === 'text/csv');
      const cols = exportColumns(kind, user);
      const line = csv
        ? (r: Record<string, unknown>) => `${cols.map((c) => csvCell(r[c])).join(',')}\r\n`
        : (r: Record<string, unknown>) => `${JSON.stringify(Object.fromEntries(cols.map((c) => [c, r[c]])))}\n`;

      async function* body(): AsyncGenerator<string> {
        if (csv) yield `${cols.join(',')}\r\n`;
        let page = first;
        let asked = pageRows(0);
        let sent = 0;
        let cursor: ExportCursor | undefined = after;
        for (;;) {
          if (page.rows.length > 0) yield page.rows.map((r) => line(r as unknown as Record<string, unknown>)).join('');
          sent += page.rows.length;
          cursor = page.last ?? cursor;
          if (page.rows.length < asked || sent >= query.limit) break;
          asked = pageRows(sent);
          page = await reports.exportPage({ ...base, after: cursor, limit: asked });
        }
        // Stopped by `limit`: more rows may follow the cursor; otherwise the range is exhausted.
        const next = sent >= query.limit && cursor ? encodeExportCursor(cursor) : null;
        if (!csv) yield `${JSON.stringify({ next_cursor: next, rows: sent })}\n`;
      }

      const ext = csv ? 'csv' : 'ndjson';
      ctx.type = csv ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8';
      ctx.set('Content-Disposition', `attachment; filename="${kind}-${query.from}-${query.to}.${ext}"`);
      ctx.set('Cache-Control', 'no-store');
      // highWaterMark 1 byte: one page in flight at most; the next query waits until the socket took this one.
      ctx.body = Readable.from(body(), { objectMode: false, highWaterMark: 1 });
      return undefined;
    },
  });
  return r as unknown as Route<never, never>;
}

/** `GET /exports/clicks` and `GET /exports/conversions`. */
export function exportRoutes(): Route<never, never>[] {
  return [exportRoute('clicks', 'raw clicks'), exportRoute('conversions', 'conversions (current version)')];
}
