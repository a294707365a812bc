import { z } from 'zod';
import { validationError } from '../../infra/index.ts';
import { reconcileRowSchema } from '../../ledger/index.ts';
import { analystScope } from '../domain/analysts/analyst-scope.ts';
import { approveConversion, reconcileLive, reverseConversion } from '../domain/conversions/change-conversion.ts';
import { needLedger } from '../domain/wallet/need-ledger.ts';
import { pageQuery, type Route, route } from '../http.ts';
import { pagedQuery } from '../paging.ts';

/** Most rows of one `POST /conversions/batch`. */
export const MAX_BATCH_ROWS = 10_000;

const CSV_COLUMNS = ['event_id', 'click_id', 'status', 'amount'] as const;

/**
 * Parses the CSV body of `POST /conversions/batch` into `{ rows }`: a header line naming columns of
 * `event_id,click_id,status,amount` (any order, at least event_id or click_id), then one row per line. Empty
 * cells are omitted; `amount` digits become numbers (anything else is left for validation to refuse). Fields
 * may be double-quoted (RFC 4180, `""` inside quotes). @throws AppError VALIDATION_ERROR for a bad header,
 * a wrong cell count or more than MAX_BATCH_ROWS rows.
 */
export function parseBatchCsv(text: string): { rows: Record<string, unknown>[] } {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  const bad = (line: number, msg: string): never => {
    throw validationError({ [`line ${line}`]: msg }, 'invalid CSV');
  };
  const header = splitCsvLine(lines[0] ?? '', 1, bad).map((h) => h.trim().toLowerCase());
  for (const h of header)
    if (!(CSV_COLUMNS as readonly string[]).includes(h))
      bad(1, `unknown column "${h}"; expected a header of ${CSV_COLUMNS.join(',')}`);
  if (new Set(header).size !== header.length) bad(1, 'duplicate column');
  if (!header.includes('event_id') && !header.includes('click_id')) bad(1, 'event_id or click_id column required');
  if (lines.length - 1 > MAX_BATCH_ROWS) bad(MAX_BATCH_ROWS + 2, `at most ${MAX_BATCH_ROWS} rows`);
  const rows: Record<string, unknown>[] = [];
  for (let i = 1; i < lines.length; i++) {
    const cells = splitCsvLine(lines[i]!, i + 1, bad);
    if (cells.length !== header.length) bad(i + 1, `expected ${header.length} cells, got ${cells.length}`);
    const row: Record<string, unknown> = {};
    header.forEach((h, j) => {
      const v = cells[j]!.trim();
      if (v === '') return;
      row[h] = h === 'amount' && /^\d{1,16}$/.test(v) ? Number(v) : v;
    });
    rows.push(row);
  }
  return { rows };
}

function splitCsvLine(line: string, n: number, bad: (line: number, msg: string) => never): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let cell = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) bad(n, 'unterminated quoted field');
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            cell += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        cell += line[i++];
      }
      if (i < line.length && line[i] !== ',') bad(n, 'unexpected character after a quoted field');
    } else {
      const end = line.indexOf(',', i);
      cell = line.slice(i, end === -1 ? line.length : end);
      i = end === -1 ? line.length : end;
    }
    out.push(cell);
    if (i >= line.length) return out;
    i++; // the comma
  }
}

/**
 * A row of the batch: the ledger's own row schema (one definition for both), strict here so that the HTTP API
 * refuses unknown keys instead of dropping them.
 */
const batchRow = reconcileRowSchema.strict();

const reasonBody = z.object({ reason: z.string().trim().min(1).max(500) }).strict();

interface ConversionRow {
  id: string;
  advertiser_id: number;
  event_id: string;
  click_id: string | null;
  campaign_id: number | null;
  affiliate_id: number | null;
  link_code: string | null;
  goal: string;
  status: string;
  reject_reason: string | null;
  amount: number | null;
  currency: string | null;
  payout: number;
  revenue: number;
  event_time: Date;
  fraud_score: number;
  /** The advertiser's customer reference it was posted with (README "Leads and recurring commissions"). */
  customer_id: string | null;
  sub1: string | null;
  sub2: string | null;
  sub3: string | null;
  sub4: string | null;
  sub5: string | null;
  /** 's2s', 'browser' or 'pixel'. */
  source: string;
  created_at: Date;
}

/**
 * Conversions: the list, and status changes through the ledger (approve, reject, reverse, batch
 * reconciliation; `conversions:write` API keys, live mode only).
 */
export function conversionRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/conversions',
      summary:
        'Conversions (advertisers: on their campaigns; affiliates: their own, payout only; analysts: their scope; admins: all)',
      tag: 'conversions',
      auth: ['admin', 'advertiser', 'affiliate', 'analyst'],
      scope: 'conversions:read',
      query: pageQuery.extend({
        campaign_id: z.coerce.number().int().min(1).optional(),
        status: z.enum(['pending', 'approved', 'rejected', 'reversed']).optional(),
        source: z.enum(['s2s', 'browser', 'pixel']).optional(),
      }),
      async handler({ deps: { sql }, user, query }) {
        const reach = await analystScope(sql, user);
        const scope =
          user.role === 'admin' || (user.role === 'analyst' && !reach)
            ? sql`true`
            : user.role === 'analyst'
              ? sql`(advertiser_id = any(${reach!.advertiserIds}::int8[]) or campaign_id = any(${reach!.campaignIds}::int8[]))`
              : user.role === 'advertiser'
                ? sql`advertiser_id = ${user.user_id}`
                : sql`affiliate_id = ${user.user_id}`;
        const camp = query.campaign_id ? sql`campaign_id = ${query.campaign_id}` : sql`true`;
        const st = query.status ? sql`status = ${query.status}` : sql`true`;
        const src = query.source ? sql`source = ${query.source}` : sql`true`;
        // A conversion takes its campaign's mode (none: live); each principal sees its own mode's only.
        const mode = sql`coalesce((select c.mode from campaigns c where c.id = conversions.campaign_id), 'live') = ${user.mode}`;
        return pagedQuery<ConversionRow>(
          sql,
          query,
          {
            columns: sql`id, advertiser_id, event_id, click_id, campaign_id, affiliate_id, link_code, goal, status,
              reject_reason, amount, currency, payout, revenue, event_time, fraud_score, customer_id, sub1, sub2, sub3,
              sub4, sub5, source, created_at`,
            from: sql`conversions`,
            where: sql`${scope} and ${camp} and ${st} and ${src} and ${mode}`,
            orderBy: sql`created_at desc, id`,
          },
          (r) => {
            if (user.role !== 'affiliate') return r;
            const {
              revenue: _r,
              advertiser_id: _a,
              event_id: _e,
              amount: _m,
              fraud_score: _f,
              customer_id: _c,
              ...rest
            } = r;
            return rest;
          },
        );
      },
    }),
    route({
      method: 'post',
      path: '/conversions/:id/approve',
      summary:
        "Approve a pending conversion: the affiliate's payout becomes withdrawable (advertiser owning it, or admin)",
      tag: 'conversions',
      auth: ['admin', 'advertiser'],
      scope: 'conversions:write',
      uuidParams: ['id'],
      async handler(a) {
        return approveConversion(a);
      },
    }),
    route({
      method: 'post',
      path: '/conversions/:id/reject',
      summary: 'Reject a pending conversion (before approval; use /reverse afterwards): its money goes back',
      tag: 'conversions',
      auth: ['admin', 'advertiser'],
      scope: 'conversions:write',
      uuidParams: ['id'],
      body: reasonBody,
      example: { reason: 'duplicate order' },
      async handler(a) {
        return reverseConversion(a, 'rejected', a.body.reason);
      },
    }),
    route({
      method: 'post',
      path: '/conversions/:id/reverse',
      summary:
        'Reverse a conversion (refund/chargeback, also after approval): every posting is undone; a paid-out ' +
        "commission becomes a clawback on the affiliate's next payout",
      tag: 'conversions',
      auth: ['admin', 'advertiser'],
      scope: 'conversions:write',
      uuidParams: ['id'],
      body: reasonBody,
      example: { reason: 'chargeback' },
      async handler(a) {
        return reverseConversion(a, 'reversed', a.body.reason);
      },
    }),
    route({
      method: 'post',
      path: '/conversions/batch',
      summary:
        'Bulk reconciliation: JSON {rows:[{event_id|click_id, status?, amount?}]} or text/csv with header ' +
        'event_id,click_id,status,amount (max 10,000 rows / 1 MiB). Each row applies on its own (idempotent); ' +
        'data holds one result per row. Advertisers: their own conversions; admins: any (click_id or a unique event_id). ' +
        'A row whose payout would exceed its revenue fails (VALIDATION_ERROR) unless an admin gives ' +
        'margin_override_reason, recorded with its postings.',
      tag: 'conversions',
      auth: ['admin', 'advertiser'],
      scope: 'conversions:write',
      body: z
        .object({
          rows: z.array(batchRow).min(1).max(MAX_BATCH_ROWS),
          margin_override_reason: z.string().trim().min(1).max(500).optional(),
        })
        .strict(),
      csv: parseBatchCsv,
      example: {
        rows: [
          { event_id: 'order-1001', status: 'approved' },
          { click_id: '0193a5b0-7c1e-7000-8000-000000000001', status: 'reversed', reason: 'refund' },
          { event_id: 'order-1003', amount: 4200 },
        ],
      },
      async handler(a) {
        const ledger = needLedger(a);
        const reason = a.body.margin_override_reason;
        if (reason !== undefined && a.user.role !== 'admin')
          throw validationError({ margin_override_reason: 'only an admin may override the margin' });
        const results = await reconcileLive(a, ledger, a.user.role === 'admin' ? null : a.user.user_id, a.body.rows, {
          override: reason === undefined ? undefined : { by: a.user.user_id, reason },
        });
        const failed = results.filter((r) => !r.ok).length;
        return {
          data: results,
          meta: {
            rows: results.length,
            ok: results.length - failed,
            failed,
            changed: results.filter((r) => r.ok && r.changed).length,
          },
        };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
