/**
 * Reports over ClickHouse (the admin API's `/reports`): clicks, unique clicks, invalid clicks, bot clicks,
 * conversions, CR, revenue, payout, profit and EPC, grouped by one dimension, per currency.
 *
 * `clicks` and `unique_clicks` are valid clicks only (`is_invalid = 0`), and CR and EPC are over them:
 * `invalid_clicks` counts the others (ingest-invalid, previewers, scanners, prefetches, bots, fraud-flagged), so
 * every recorded click is in `clicks + invalid_clicks`; `bot_clicks` is the part of `invalid_clicks` with a
 * `bot_reason` (../fraud/traffic.ts). Conversions count whatever click they were attributed to.
 *
 * Groupings by day, hour, campaign or affiliate read the hourly aggregates (`stats_hourly`) when
 * the time zone's offset is a whole number of hours over the whole range (then every local day
 * is a union of UTC hours); everything else reads the raw `clicks` and `conversions` tables.
 * Clicks count on click time, conversions on conversion event time; only accepted conversions
 * (status pending or approved) count, sign-weighted: a later status or amount change of a conversion is a cancel
 * row (sign −1) plus its new state (sign 1), see ../pipeline/versions.ts. Unique clicks: distinct (IP, link) per local day, summed
 * over days (per hour when grouped by hour).
 */
import { AppError, type ClickHouseClient, validationError } from '../../infra/index.ts';
import type { ClickQuality } from '../pipeline/clicks.ts';
import {
  type ExportClickRow,
  type ExportConversionRow,
  type ExportPage,
  type ExportPageQuery,
  exportPageParams,
  exportPageSql,
  exportRow,
  MAX_EXPORT_PAGE_ROWS,
  type ScopeFilters,
} from './exports.ts';

export type ReportGroupBy =
  | 'day'
  | 'hour'
  | 'campaign'
  | 'affiliate'
  | 'sub1'
  | 'sub2'
  | 'sub3'
  | 'sub4'
  | 'sub5'
  | 'country'
  | 'device'
  | 'landing_id';

export const REPORT_GROUP_BY: readonly ReportGroupBy[] = [
  'day',
  'hour',
  'campaign',
  'affiliate',
  'sub1',
  'sub2',
  'sub3',
  'sub4',
  'sub5',
  'country',
  'device',
  'landing_id',
];

export interface ReportQuery {
  group_by: ReportGroupBy;
  /** 'YYYY-MM-DD', inclusive, in tz. */
  from: string;
  /** 'YYYY-MM-DD', inclusive, in tz. */
  to: string;
  /** IANA time zone, e.g. 'UTC', 'Asia/Shanghai'. */
  tz: string;
  campaign_id?: number;
  affiliate_id?: number;
  /** Scope: set for advertisers (only their campaigns). */
  advertiser_id?: number;
  /** Scope: campaigns left out (for live callers: the test-mode ones). */
  exclude_campaign_ids?: number[];
  /** Scope: only these campaigns (for test-mode callers: the test-mode ones; empty: none). */
  only_campaign_ids?: number[];
  /** 1-based. */
  page: number;
  /** At most 1000. */
  per_page: number;
}

export interface ReportRow {
  /** The group value ('2017-11-07', '2017-11-07 13:00', '42', 'ios', …). */
  key: string;
  /** Money metrics are per currency ('' when the row has no money). */
  currency: string;
  /** Valid clicks (`is_invalid = 0`). */
  clicks: number;
  /** Valid clicks, distinct (IP, link) per local day (per hour when grouped by hour). */
  unique_clicks: number;
  /** Clicks that are not valid: ingest-invalid, previewers, scanners, prefetches, bots, or fraud-flagged. */
  invalid_clicks: number;
  /** The part of `invalid_clicks` that are previewers, scanners, prefetches or bots (`bot_reason != ''`). */
  bot_clicks: number;
  conversions: number;
  /** conversions / clicks (valid), rounded to 6 decimals (0 without clicks). */
  cr: number;
  /** Minor units. */
  revenue: number;
  payout: number;
  profit: number;
  /** payout per valid click in minor units, rounded to 4 decimals (0 without clicks). */
  epc: number;
}

/** A click-log query: a report query without grouping. */
export type ClickLogQuery = Omit<ReportQuery, 'group_by'>;

/** One click of the raw click log (Everflow's "clicks" report, Voluum's "log"). */
export interface ClickLogRow extends ClickQuality {
  click_id: string;
  /** 'previewer', 'scanner', 'prefetch', 'bot', or '' for a visitor (../fraud/traffic.ts). */
  bot_reason: string;
  /** Whether the click counts in `clicks` (not ingest-invalid, not a bot, not fraud-flagged). */
  valid: boolean;
  /** Event time, ISO 8601 UTC. */
  ts: string;
  link_code: string;
  campaign_id: number;
  affiliate_id: number;
  /** The landing page the click was sent to (README "Landing pages and split tests"); 0: the campaign's destination_url. */
  landing_id: number;
  sub1: string;
  sub2: string;
  sub3: string;
  sub4: string;
  sub5: string;
}

export interface Reports {
  /** @throws AppError VALIDATION_ERROR for a bad query. */
  report(q: ReportQuery): Promise<{ rows: ReportRow[]; total: number }>;
  /** Raw clicks in event-time order, paginated. @throws AppError VALIDATION_ERROR for a bad query. */
  clickLog(q: ClickLogQuery): Promise<{ rows: ClickLogRow[]; total: number }>;
  /**
   * One keyset page of an export (./exports.ts): at most `q.limit` rows after `q.after`, in (time, id) order.
   * @throws AppError VALIDATION_ERROR for a bad limit or range, QUERY_LIMIT_EXCEEDED past a limit.
   */
  exportPage(q: ExportPageQuery): Promise<ExportPage<ExportClickRow | ExportConversionRow>>;
}

/** Longest range one report may cover, days. */
export const MAX_REPORT_DAYS = 3_660;

/**
 * Largest row offset ((page − 1) × per_page) a report or the click log may ask for. ClickHouse reads and sorts every
 * skipped row, so deep pages cost as much as exporting them; past this, narrow the range or filters instead.
 */
export const MAX_REPORT_OFFSET = 100_000;

/** ClickHouse limits of every report and click-log query (REPORT_MAX_EXECUTION_S, REPORT_MAX_MEMORY_BYTES). */
export interface ReportLimits {
  /** `max_execution_time`, seconds (integer >= 1). */
  maxExecutionS: number;
  /** `max_memory_usage`, bytes (integer >= 1). */
  maxMemoryBytes: number;
}

/** The config defaults of {@link ReportLimits}. */
export const DEFAULT_REPORT_LIMITS: ReportLimits = { maxExecutionS: 30, maxMemoryBytes: 2_000_000_000 };

const DATE = /^\d{4}-\d{2}-\d{2}$/;

function parseDay(s: string, field: string): number {
  const ms = DATE.test(s) ? Date.parse(`${s}T00:00:00Z`) : Number.NaN;
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== s) {
    bad(field, 'must be a date YYYY-MM-DD');
  }
  return ms;
}

/** Throws VALIDATION_ERROR with details `{ [field]: [problem] }`; the message defaults to `${field} ${problem}`. */
function bad(field: string, problem: string, message = `${field} ${problem}`): never {
  throw validationError({ [field]: problem }, message);
}

/** Offset of `tz` from UTC at an instant, minutes (e.g. 330 for Asia/Kolkata). */
function offsetMinutes(fmt: Intl.DateTimeFormat, ms: number): number {
  const name = fmt.formatToParts(new Date(ms)).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
  const m = /GMT([+-])(\d{2}):?(\d{2})?/.exec(name);
  if (!m) return 0;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3] ?? 0));
}

/** Whether every local day of the range is made of whole UTC hours in `tz`. */
function wholeHourOffsets(tz: string, fromMs: number, toMs: number): boolean {
  const fmt = new Intl.DateTimeFormat('en-US', { timeZone: tz, timeZoneName: 'longOffset' });
  for (let t = fromMs - 86_400_000; t <= toMs + 2 * 86_400_000; t += 43_200_000) {
    if (offsetMinutes(fmt, t) % 60 !== 0) return false;
  }
  return true;
}

/** Validates a query. @throws AppError VALIDATION_ERROR */
export function validateReportQuery(q: ReportQuery): { fromMs: number; toMs: number } {
  if (!REPORT_GROUP_BY.includes(q.group_by)) bad('group_by', `must be one of ${REPORT_GROUP_BY.join(', ')}`);
  const fromMs = parseDay(q.from, 'from');
  const toMs = parseDay(q.to, 'to');
  if (toMs < fromMs) bad('to', 'must not be before from');
  if ((toMs - fromMs) / 86_400_000 >= MAX_REPORT_DAYS)
    bad('to', `a report covers at most ${MAX_REPORT_DAYS} days`, `a report covers at most ${MAX_REPORT_DAYS} days`);
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: q.tz });
  } catch {
    bad('tz', 'must be an IANA time zone');
  }
  if (!Number.isSafeInteger(q.page) || q.page < 1) bad('page', 'must be an integer >= 1');
  if (!Number.isSafeInteger(q.per_page) || q.per_page < 1 || q.per_page > 1000) {
    bad('per_page', 'must be an integer between 1 and 1000');
  }
  if ((q.page - 1) * q.per_page > MAX_REPORT_OFFSET) {
    bad('page', `(page - 1) × per_page must be at most ${MAX_REPORT_OFFSET}; narrow the range or filters`);
  }
  for (const f of ['campaign_id', 'affiliate_id', 'advertiser_id'] as const) {
    const v = q[f];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) bad(f, 'must be a non-negative integer');
  }
  return { fromMs, toMs };
}

/** The group expression over a time column `t` (DateTime/DateTime64) of a table. */
function keyExpr(g: ReportGroupBy, t: string): string {
  switch (g) {
    case 'day':
      return `toString(toDate(${t}, {tz:String}))`;
    case 'hour':
      return `formatDateTime(toStartOfHour(${t}, {tz:String}), '%Y-%m-%d %H:00', {tz:String})`;
    case 'campaign':
      return 'toString(campaign_id)';
    case 'affiliate':
      return 'toString(affiliate_id)';
    case 'landing_id':
      // The landing page of a split test (0: the campaign's destination_url); conversions carry their click's.
      return 'toString(landing_id)';
    default:
      return g;
  }
}

/** ` AND …` conditions of the scope and filters, over the parameters of the same names. */
export function filters(q: ScopeFilters): string {
  const f: string[] = [];
  if (q.campaign_id !== undefined) f.push('campaign_id = {campaign_id:UInt64}');
  if (q.affiliate_id !== undefined) f.push('affiliate_id = {affiliate_id:UInt64}');
  if (q.advertiser_id !== undefined) f.push('advertiser_id = {advertiser_id:UInt64}');
  if (q.exclude_campaign_ids?.length) f.push('NOT has({exclude_campaign_ids:Array(UInt64)}, campaign_id)');
  if (q.only_campaign_ids) f.push('has({only_campaign_ids:Array(UInt64)}, campaign_id)');
  return f.map((x) => ` AND ${x}`).join('');
}

function range(t: string): string {
  return `${t} >= toDateTime64({from:String}, 3, {tz:String}) AND ${t} < toDateTime64({until:String}, 3, {tz:String})`;
}

/** Query parameters shared by reports and the click log: the local-day range [from, to + 1 day), filters, page. */
function rangeParams(q: ClickLogQuery, toMs: number): Record<string, unknown> {
  const until = new Date(toMs + 86_400_000).toISOString().slice(0, 10);
  return {
    tz: q.tz,
    from: `${q.from} 00:00:00`,
    until: `${until} 00:00:00`,
    campaign_id: q.campaign_id,
    affiliate_id: q.affiliate_id,
    advertiser_id: q.advertiser_id,
    exclude_campaign_ids: q.exclude_campaign_ids?.length ? q.exclude_campaign_ids : undefined,
    only_campaign_ids: q.only_campaign_ids,
    limit: q.per_page,
    offset: (q.page - 1) * q.per_page,
  };
}

/** Builds the SQL of a report (exported for tests); every value is a query parameter. */
export function reportSql(q: ReportQuery, useAggregates: boolean): string {
  const f = filters(q);
  const order =
    q.group_by === 'day' || q.group_by === 'hour' ? 'key, currency' : 'clicks DESC, conversions DESC, key, currency';
  const unique = q.group_by === 'hour' ? 'toStartOfHour(ts, {tz:String})' : 'toDate(ts, {tz:String})';
  const inner = useAggregates
    ? `SELECT key, currency, sum(c) AS clicks, sum(u) AS unique_clicks, sum(i) AS invalid_clicks, sum(b) AS bot_clicks,
         sum(v) AS conversions, sum(r) AS revenue, sum(p) AS payout
       FROM (
         SELECT ${keyExpr(q.group_by, 'hour')} AS key, currency,
           ${q.group_by === 'hour' ? 'hour' : 'toDate(hour, {tz:String})'} AS bucket,
           sum(clicks) AS c, uniqExactMerge(unique_state) AS u, sum(invalid_clicks) AS i, sum(bot_clicks) AS b,
           sum(conversions) AS v, sum(revenue) AS r, sum(payout) AS p
         FROM stats_hourly
         WHERE ${range('hour')}${f}
         GROUP BY key, currency, bucket)
       GROUP BY key, currency`
    : `SELECT key, currency, sum(c) AS clicks, sum(u) AS unique_clicks, sum(i) AS invalid_clicks, sum(b) AS bot_clicks,
         sum(v) AS conversions, sum(r) AS revenue, sum(p) AS payout
       FROM (
         SELECT ${keyExpr(q.group_by, 'ts')} AS key, currency, countIf(is_invalid = 0) AS c,
           uniqExactIf(ip, link_code, ${unique}, is_invalid = 0) AS u, countIf(is_invalid = 1) AS i,
           countIf(bot_reason != '') AS b, toInt64(0) AS v, toInt64(0) AS r, toInt64(0) AS p
         FROM clicks WHERE ${range('ts')}${f}
         GROUP BY key, currency
         UNION ALL
         SELECT ${keyExpr(q.group_by, 'event_time')} AS key, currency, toUInt64(0), toUInt64(0), toUInt64(0),
           toUInt64(0), toInt64(sum(sign)), toInt64(sum(revenue * sign)), toInt64(sum(payout * sign))
         FROM conversions WHERE status IN ('pending', 'approved') AND ${range('event_time')}${f}
         GROUP BY key, currency)
       GROUP BY key, currency`;
  return `SELECT key, currency, clicks, unique_clicks, invalid_clicks, bot_clicks, conversions, revenue, payout,
      count() OVER () AS total
    FROM (${inner})
    ORDER BY ${order}
    LIMIT {limit:UInt32} OFFSET {offset:UInt64}`;
}

const round = (x: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/**
 * The SETTINGS clause of a report query. A clause on the query, not `clickhouse_settings`: chDB applies those as
 * session-wide `SET`s, which would stay on for every later query of the process (pipeline inserts included).
 */
export function settingsClause(l: ReportLimits): string {
  for (const v of [l.maxExecutionS, l.maxMemoryBytes]) {
    // Inlined into SQL (SETTINGS takes no parameters): only positive integers.
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`report limit ${v} is not a positive integer`);
  }
  return `SETTINGS max_execution_time = ${l.maxExecutionS}, timeout_overflow_mode = 'throw', max_memory_usage = ${l.maxMemoryBytes}`;
}

const LIMIT_ERRORS: Record<string, string> = {
  TIMEOUT_EXCEEDED: 'max_execution_time',
  '159': 'max_execution_time',
  MEMORY_LIMIT_EXCEEDED: 'max_memory_usage',
  '241': 'max_memory_usage',
};

/**
 * Runs a query, turning ClickHouse's time and memory limit errors into QUERY_LIMIT_EXCEEDED.
 * @throws AppError QUERY_LIMIT_EXCEEDED (details `{ limit: 'max_execution_time' | 'max_memory_usage' }`)
 */
export async function limited<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    const e = err as { type?: unknown; code?: unknown };
    const limit = LIMIT_ERRORS[String(e.type)] ?? LIMIT_ERRORS[String(e.code)];
    if (!limit) throw err;
    throw new AppError(
      'QUERY_LIMIT_EXCEEDED',
      `the query went past its ${limit} limit; narrow the date range or add filters`,
      { limit },
    );
  }
}

/**
 * Creates the report functions over a ClickHouse client (server or chDB); every query runs under `limits`.
 * Both functions throw AppError VALIDATION_ERROR for a bad query and QUERY_LIMIT_EXCEEDED past a limit.
 */
export function createReports(ch: ClickHouseClient, limits: ReportLimits = DEFAULT_REPORT_LIMITS): Reports {
  const settings = settingsClause(limits);
  return {
    async report(q) {
      const { fromMs, toMs } = validateReportQuery(q);
      const timeGroup = ['day', 'hour', 'campaign', 'affiliate'].includes(q.group_by);
      const useAggregates = timeGroup && wholeHourOffsets(q.tz, fromMs, toMs);
      const raw = await limited(async () => {
        const rs = await ch.query({
          query: `${reportSql(q, useAggregates)}\n    ${settings}`,
          format: 'JSONEachRow',
          query_params: rangeParams(q, toMs),
          clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
        });
        return rs.json<Record<string, string | number>>();
      });
      let total = raw.length > 0 ? Number(raw[0]!.total) : 0;
      if (raw.length === 0 && q.page > 1) {
        // Past the last page: still report the total.
        const first = await this.report({ ...q, page: 1, per_page: 1 });
        total = first.total;
      }
      const rows = raw.map((r): ReportRow => {
        const clicks = Number(r.clicks);
        const conversions = Number(r.conversions);
        const revenue = Number(r.revenue);
        const payout = Number(r.payout);
        return {
          key: String(r.key),
          currency: String(r.currency),
          clicks,
          unique_clicks: Number(r.unique_clicks),
          invalid_clicks: Number(r.invalid_clicks),
          bot_clicks: Number(r.bot_clicks),
          conversions,
          cr: clicks > 0 ? round(conversions / clicks, 6) : 0,
          revenue,
          payout,
          profit: revenue - payout,
          epc: clicks > 0 ? round(payout / clicks, 4) : 0,
        };
      });
      return { rows, total };
    },

    async clickLog(q) {
      const { toMs } = validateReportQuery({ ...q, group_by: 'day' });
      const raw = await limited(async () => {
        const rs = await ch.query({
          query: `SELECT toString(click_id) AS click_id, toUnixTimestamp64Milli(ts) AS ts_ms, link_code, campaign_id,
              affiliate_id, sub1, sub2, sub3, sub4, sub5, ip, country, device, invalid_reason, fraud_score,
              fraud_reasons, bot_reason, is_invalid, landing_id, count() OVER () AS total
            FROM clicks WHERE ${range('ts')}${filters(q)}
            ORDER BY ts, click_id
            LIMIT {limit:UInt32} OFFSET {offset:UInt64}
            ${settings}`,
          format: 'JSONEachRow',
          query_params: rangeParams(q, toMs),
          clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
        });
        return rs.json<Record<string, unknown>>();
      });
      let total = raw.length > 0 ? Number(raw[0]!.total) : 0;
      if (raw.length === 0 && q.page > 1) total = (await this.clickLog({ ...q, page: 1, per_page: 1 })).total;
      const rows = raw.map(
        (r): ClickLogRow => ({
          click_id: String(r.click_id),
          ts: new Date(Number(r.ts_ms)).toISOString(),
          link_code: String(r.link_code),
          campaign_id: Number(r.campaign_id),
          affiliate_id: Number(r.affiliate_id),
          landing_id: Number(r.landing_id),
          sub1: String(r.sub1),
          sub2: String(r.sub2),
          sub3: String(r.sub3),
          sub4: String(r.sub4),
          sub5: String(r.sub5),
          ip: String(r.ip),
          country: String(r.country),
          device: String(r.device),
          invalid_reason: String(r.invalid_reason),
          fraud_score: round(Number(r.fraud_score), 4),
          fraud_reasons: (r.fraud_reasons as string[]) ?? [],
          bot_reason: String(r.bot_reason),
          valid: Number(r.is_invalid) === 0,
        }),
      );
      return { rows, total };
    },

    async exportPage(q) {
      if (!Number.isSafeInteger(q.limit) || q.limit < 1 || q.limit > MAX_EXPORT_PAGE_ROWS) {
        bad('limit', `must be an integer between 1 and ${MAX_EXPORT_PAGE_ROWS}`);
      }
      if (!Number.isSafeInteger(q.from_ms) || !Number.isSafeInteger(q.to_ms) || q.to_ms < q.from_ms) {
        bad('to', 'must not be before from');
      }
      const raw = await limited(async () => {
        const rs = await ch.query({
          query: exportPageSql(q, filters(q), settings),
          format: 'JSONEachRow',
          query_params: exportPageParams(q),
          clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
        });
        return rs.json<Record<string, unknown>>();
      });
      const rows = raw.map((r) => exportRow(q.kind, r));
      const end = raw.at(-1);
      const last = end ? { ts_ms: Number(end.ts_ms), id: String(end.id) } : undefined;
      return { rows, last };
    },
  };
}
