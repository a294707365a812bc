import { z } from 'zod';
import { REPORT_GROUP_BY } from '../../tracker/index.ts';
import { scopeReportQuery } from '../domain/reports/scope-report-query.ts';
import { paged, type Route, route } from '../http.ts';
import type { ClickLogQuery, ReportQuery, ReportRow } from '../types.ts';

const isoDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD')
  .refine(
    (s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) && new Date(`${s}T00:00:00Z`).toISOString().startsWith(s),
    'not a calendar date',
  );

function validTz(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Longest report range, days. */
export const MAX_REPORT_DAYS = 366;

const rangeQuery = {
  from: isoDate,
  to: isoDate,
  tz: z.string().max(64).refine(validTz, 'must be an IANA time zone').default('UTC'),
  campaign_id: z.coerce.number().int().min(1).optional(),
  affiliate_id: z.coerce.number().int().min(1).optional(),
  page: z.coerce.number().int().min(1).max(1_000_000).default(1),
  per_page: z.coerce.number().int().min(1).max(1000).default(100),
};

function checkRange(q: { from: string; to: string }, ctx: z.RefinementCtx): void {
  const days = (Date.parse(q.to) - Date.parse(q.from)) / 86_400_000;
  if (days < 0) ctx.addIssue({ code: 'custom', path: ['to'], message: 'must not be before from' });
  else if (days >= MAX_REPORT_DAYS)
    ctx.addIssue({ code: 'custom', path: ['to'], message: `range is limited to ${MAX_REPORT_DAYS} days` });
}

/** Query of the raw click log: a report range without grouping. */
export const clickLogQuery = z.object(rangeQuery).superRefine(checkRange);

export const reportQuery = z
  .object({
    group_by: z.enum(REPORT_GROUP_BY),
    ...rangeQuery,
  })
  .superRefine(checkRange);

const COLUMNS = [
  'key',
  'currency',
  'clicks',
  'unique_clicks',
  'invalid_clicks',
  'bot_clicks',
  'conversions',
  'cr',
  'revenue',
  'payout',
  'profit',
  'epc',
] as const;

/** One RFC 4180 CSV cell: quoted when needed; a leading =, +, -, @, tab or CR of a non-number is defused with `'`. */
export function csvCell(v: unknown): string {
  const s = v === undefined || v === null ? '' : String(v);
  // Quote, and defuse spreadsheet formulas in user-controlled values (sub ids).
  const safe = /^[=+\-@\t\r]/.test(s) && Number.isNaN(Number(s)) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function reportRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/reports',
      summary:
        'Aggregated stats from ClickHouse, grouped and scoped by role (JSON, or CSV with Accept: text/csv): clicks and ' +
        'unique_clicks are valid clicks only, invalid_clicks the others (bot_clicks of them: previewers, scanners, ' +
        'prefetches, bots), and CR and EPC are over valid clicks',
      tag: 'reports',
      auth: ['admin', 'advertiser', 'affiliate', 'analyst'],
      scope: 'reports:read',
      query: reportQuery,
      produces: ['text/csv'],
      async handler({ ctx, deps, user, query }) {
        const { reports, q } = await scopeReportQuery<ReportQuery>(deps, user, query);
        const { rows, total } = await reports.report(q);
        const hide = user.role === 'affiliate';
        const cols = hide ? COLUMNS.filter((c) => c !== 'revenue' && c !== 'profit') : COLUMNS;
        const shaped = rows.map((r: ReportRow) => Object.fromEntries(cols.map((c) => [c, r[c]])));
        const pageInfo = paged(shaped, total, query);
        if (
          ctx.accepts('application/json', 'text/csv') === 'text/csv' &&
          !ctx.get('accept').includes('application/json')
        ) {
          ctx.set('X-Total-Count', String(total));
          ctx.set(
            'Content-Disposition',
            `attachment; filename="report-${query.group_by}-${query.from}-${query.to}.csv"`,
          );
          ctx.type = 'text/csv; charset=utf-8';
          ctx.body =
            [cols.join(','), ...shaped.map((r) => cols.map((c) => csvCell(r[c])).join(','))].join('\r\n') + '\r\n';
          return undefined;
        }
        return pageInfo;
      },
    }),
    route({
      method: 'get',
      path: '/reports/clicks',
      summary:
        'The raw click log (event time order) with fraud scores and reasons, bot_reason and valid, scoped by role',
      tag: 'reports',
      auth: ['admin', 'advertiser', 'affiliate', 'analyst'],
      scope: 'reports:read',
      query: clickLogQuery,
      async handler({ deps, user, query }) {
        const { reports, q } = await scopeReportQuery<ClickLogQuery>(deps, user, query);
        const { rows, total } = await reports.clickLog(q);
        return paged(rows, total, query);
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
