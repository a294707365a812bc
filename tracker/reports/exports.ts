/**
 * Keyset pages of raw clicks and conversions for the admin API's streaming exports (`/exports/clicks`,
 * `/exports/conversions`). Every page is one bounded ClickHouse query (`LIMIT` rows after a cursor, in
 * (time, id) order), never an OFFSET: the caller streams page after page, so neither ClickHouse's result nor the
 * Node process ever holds more than one page, whether the client buffers results (chDB, in-process, does) or
 * streams them (a server).
 *
 * Conversions are exported in their current version: per conversion id the sign-1 row of the largest version
 * (see ../pipeline/versions.ts), whatever its status; its `status` tells whether the reports count it (pending,
 * approved) or not.
 */
import { validationError } from '../../infra/index.ts';

/** What reports' `filters` narrow by: the scope and filter fields of a report or export query. */
export interface ScopeFilters {
  campaign_id?: number;
  affiliate_id?: number;
  /** Scope: set for advertisers (only their campaigns). */
  advertiser_id?: number;
  /** Scope: campaigns left out (for live callers: the test-mode ones). */
  exclude_campaign_ids?: number[];
  /** Scope: only these campaigns (for test-mode callers: the test-mode ones; empty: none). */
  only_campaign_ids?: number[];
}

/** What an export reads. */
export type ExportKind = 'clicks' | 'conversions';

/** The position after one row: its event time and id. */
export interface ExportCursor {
  /** Event time of the row (clicks `ts`, conversions `event_time`), ms since the epoch (UTC). */
  ts_ms: number;
  /** click_id / conversion_id (UUID, lower case). */
  id: string;
}

/** One page's query. */
export interface ExportPageQuery extends ScopeFilters {
  kind: ExportKind;
  /** Inclusive, ms since the epoch (UTC). */
  from_ms: number;
  /** Exclusive, ms since the epoch (UTC). */
  to_ms: number;
  /** Rows strictly after this position; none: from the start of the range. */
  after?: ExportCursor;
  /** Rows of the page, 1..{@link MAX_EXPORT_PAGE_ROWS}. */
  limit: number;
}

/** The conversion columns an export reads from each conversion's current version (besides id, time, version). */
export const CONVERSION_EXPORT_COLUMNS = [
  'click_id',
  'event_id',
  'advertiser_id',
  'campaign_id',
  'affiliate_id',
  'goal',
  'status',
  'reject_reason',
  'currency',
  'amount',
  'payout',
  'revenue',
  'sub1',
  'sub2',
  'sub3',
  'sub4',
  'sub5',
  'country',
  'device',
  'fraud_score',
  'landing_id',
  'source',
] as const;

/** One exported click. `is_invalid` 0/1; `fraud_score` 0..1 (4 decimals); `ip` as recorded. */
export interface ExportClickRow {
  click_id: string;
  /** ISO 8601 UTC. */
  ts: string;
  campaign_id: number;
  affiliate_id: number;
  sub1: string;
  sub2: string;
  sub3: string;
  sub4: string;
  sub5: string;
  country: string;
  device: string;
  is_invalid: number;
  invalid_reason: string;
  /** 'previewer', 'scanner', 'prefetch', 'bot' or '' (README "What counts as a click"). */
  bot_reason: string;
  fraud_score: number;
  ip: string;
  /** The landing page served (0: the campaign's destination_url). */
  landing_id: number;
}

/** One exported conversion (its current version). Money in minor units of `currency`; `amount` −1 when none. */
export interface ExportConversionRow {
  conversion_id: string;
  /** ISO 8601 UTC. */
  event_time: string;
  click_id: string;
  event_id: string;
  advertiser_id: number;
  campaign_id: number;
  affiliate_id: number;
  goal: string;
  status: string;
  reject_reason: string;
  currency: string;
  amount: number;
  payout: number;
  revenue: number;
  sub1: string;
  sub2: string;
  sub3: string;
  sub4: string;
  sub5: string;
  country: string;
  device: string;
  fraud_score: number;
  /** The landing page of the converting click (0: the campaign's destination_url). */
  landing_id: number;
  /** Where it came from: 's2s', 'browser' or 'pixel'. */
  source: string;
  version: number;
}

/** A page: its rows in (time, id) order and the cursor after its last row (undefined when empty). */
export interface ExportPage<R> {
  rows: R[];
  last?: ExportCursor;
}

/** Largest page one query may ask for. */
export const MAX_EXPORT_PAGE_ROWS = 50_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The opaque cursor of a position: base64url of `<ts_ms>:<id>`. Documented (README) so that a client whose
 * stream broke can build it from the last row it received.
 */
export function encodeExportCursor(c: ExportCursor): string {
  return Buffer.from(`${c.ts_ms}:${c.id}`).toString('base64url');
}

/** Parses a cursor of {@link encodeExportCursor}. @throws AppError VALIDATION_ERROR (field `cursor`) when malformed. */
export function decodeExportCursor(s: string): ExportCursor {
  const m = /^(\d{1,15}):(.+)$/.exec(Buffer.from(s, 'base64url').toString('utf8'));
  const id = m?.[2]?.toLowerCase() ?? '';
  if (!m || !UUID.test(id) || !Number.isSafeInteger(Number(m[1]))) {
    throw validationError({ cursor: 'is not a cursor of this API' });
  }
  return { ts_ms: Number(m[1]), id };
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000;

/** SQL of one page (exported for tests); every value is a query parameter, `f` the scope's ` AND …` filters. */
export function exportPageSql(q: ExportPageQuery, f: string, settings: string): string {
  const t = q.kind === 'clicks' ? 'ts' : 'event_time';
  const id = q.kind === 'clicks' ? 'click_id' : 'conversion_id';
  // (t, id) > (after): the first part keeps the primary-key range on time usable.
  // Ids order as their lower-case text (what clients see), not as ClickHouse orders UUIDs. The `>=` on time alone
  // keeps the time range usable for pruning.
  const after = q.after
    ? ` AND ${t} >= {after_t:DateTime64(3, 'UTC')} AND (${t}, toString(${id})) > ({after_t:DateTime64(3, 'UTC')}, {after_id:String})`
    : '';
  const where = `${t} >= {from_t:DateTime64(3, 'UTC')} AND ${t} < {to_t:DateTime64(3, 'UTC')}${after}${f}`;
  if (q.kind === 'clicks') {
    return `SELECT toString(click_id) AS id, toUnixTimestamp64Milli(ts) AS ts_ms, campaign_id, affiliate_id,
        sub1, sub2, sub3, sub4, sub5, country, device, is_invalid, invalid_reason, bot_reason, fraud_score, ip, landing_id
      FROM clicks WHERE ${where}
      ORDER BY ts, id
      LIMIT {limit:UInt32}
      ${settings}`;
  }
  const cols = CONVERSION_EXPORT_COLUMNS;
  // The inner WHERE reads the columns, the outer aggregates rename them: no alias shadows a filtered column.
  return `SELECT toString(conversion_id) AS id, toUnixTimestamp64Milli(event_time) AS ts_ms,
      ${cols.map((c) => `argMax(${c}, v) AS ${c}`).join(', ')}, max(v) AS version
    FROM (SELECT *, version AS v FROM conversions WHERE sign = 1 AND ${where})
    GROUP BY conversion_id, event_time
    ORDER BY event_time, id
    LIMIT {limit:UInt32}
    ${settings}`;
}

/** Query parameters of {@link exportPageSql}. */
export function exportPageParams(q: ExportPageQuery): Record<string, unknown> {
  const chTime = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
  return {
    from_t: chTime(q.from_ms),
    to_t: chTime(q.to_ms),
    after_t: q.after ? chTime(q.after.ts_ms) : undefined,
    after_id: q.after?.id,
    campaign_id: q.campaign_id,
    affiliate_id: q.affiliate_id,
    advertiser_id: q.advertiser_id,
    exclude_campaign_ids: q.exclude_campaign_ids?.length ? q.exclude_campaign_ids : undefined,
    only_campaign_ids: q.only_campaign_ids,
    limit: q.limit,
  };
}

/** Shapes a ClickHouse row of {@link exportPageSql} (numbers unquoted). */
export function exportRow(kind: ExportKind, r: Record<string, unknown>): ExportClickRow | ExportConversionRow {
  const iso = new Date(Number(r.ts_ms)).toISOString();
  const s = (k: string) => String(r[k]);
  const n = (k: string) => Number(r[k]);
  if (kind === 'clicks') {
    return {
      click_id: s('id'),
      ts: iso,
      campaign_id: n('campaign_id'),
      affiliate_id: n('affiliate_id'),
      sub1: s('sub1'),
      sub2: s('sub2'),
      sub3: s('sub3'),
      sub4: s('sub4'),
      sub5: s('sub5'),
      country: s('country'),
      device: s('device'),
      is_invalid: n('is_invalid'),
      invalid_reason: s('invalid_reason'),
      bot_reason: s('bot_reason'),
      fraud_score: round4(n('fraud_score')),
      ip: s('ip'),
      landing_id: n('landing_id'),
    };
  }
  return {
    conversion_id: s('id'),
    event_time: iso,
    click_id: s('click_id'),
    event_id: s('event_id'),
    advertiser_id: n('advertiser_id'),
    campaign_id: n('campaign_id'),
    affiliate_id: n('affiliate_id'),
    goal: s('goal'),
    status: s('status'),
    reject_reason: s('reject_reason'),
    currency: s('currency'),
    amount: n('amount'),
    payout: n('payout'),
    revenue: n('revenue'),
    sub1: s('sub1'),
    sub2: s('sub2'),
    sub3: s('sub3'),
    sub4: s('sub4'),
    sub5: s('sub5'),
    country: s('country'),
    device: s('device'),
    fraud_score: round4(n('fraud_score')),
    landing_id: n('landing_id'),
    source: s('source'),
    version: n('version'),
  };
}
