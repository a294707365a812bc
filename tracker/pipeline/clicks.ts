/**
 * Steps of the click stream: decode → gather fraud features (Redis) → score (worker pool) →
 * store click records for attribution (Redis) → rows for ClickHouse.
 */
import { Readable } from 'node:stream';
import type { ClickHouseClient, Redis, RedisKeys } from '../../infra/index.ts';
import { RetriableError, UUID_RE } from '../../infra/index.ts';
import { type ClickEvent, decodeClick, idTag, MalformedEventError } from '../events.ts';
import type { EngineVerdict } from '../fraud/engine-pool.ts';
import { FRAUD_THRESHOLD } from '../fraud/rules.ts';
import type { GeoIp } from '../geo/geoip.ts';
import type { CampaignTerms, LinkDefaults } from './campaigns.ts';

/** Latest event time ClickHouse DateTime64(3) holds comfortably (2200-01-01), ms. */
const MAX_TS_MS = 7_258_118_400_000;
const MAX_SUB_LENGTH = 255;

/** Checks the values ClickHouse would refuse, so one bad click cannot block a batch. @throws MalformedEventError */
export function validateClick(c: ClickEvent): ClickEvent {
  if (!UUID_RE.test(c.click_id)) throw new MalformedEventError('click_id is not a UUID');
  if (c.ts_ms < 0 || c.ts_ms > MAX_TS_MS) throw new MalformedEventError('ts_ms out of range');
  if (c.received_ms < 0 || c.received_ms > MAX_TS_MS) throw new MalformedEventError('received_ms out of range');
  if (c.campaign_id < 0 || c.affiliate_id < 0 || c.advertiser_id < 0 || c.landing_id < 0)
    throw new MalformedEventError('negative id');
  return c;
}

/** Decodes and validates one click line. @throws MalformedEventError */
export function parseClick(line: string): ClickEvent {
  return validateClick(decodeClick(line));
}

/**
 * sub1..sub5 of a click's raw query string, each cut to 255 characters; a sub-id the click does
 * not carry takes the link's default (`links.sub1..5`), else ''. Values are decoded as
 * URLSearchParams decodes them (first occurrence wins).
 */
export function subIds(query: string, defaults?: LinkDefaults): [string, string, string, string, string] {
  const got: [string, string, string, string, string] = ['', '', '', '', ''];
  if (PLAIN_QUERY.test(query) && query.charCodeAt(0) !== 63) {
    // Nothing to decode: read the pairs directly instead of building a URLSearchParams per click.
    let seen = 0;
    for (let at = 0; at < query.length && seen !== 0b11111; ) {
      let end = query.indexOf('&', at);
      if (end < 0) end = query.length;
      // A name `subN` (N in 1..5) followed by '=' or the end of the pair.
      const n = query.charCodeAt(at + 3) - 49;
      if (
        n >= 0 &&
        n < 5 &&
        (at + 4 === end || query.charCodeAt(at + 4) === 61) &&
        query.startsWith('sub', at) &&
        (seen & (1 << n)) === 0
      ) {
        seen |= 1 << n;
        got[n] = at + 4 === end ? '' : query.slice(at + 5, end);
      }
      at = end + 1;
    }
  } else {
    let params: URLSearchParams;
    try {
      params = new URLSearchParams(query);
    } catch {
      params = new URLSearchParams();
    }
    for (let i = 0; i < 5; i++) got[i] = params.get(`sub${i + 1}`) ?? '';
  }
  for (let i = 0; i < 5; i++) got[i] = (got[i] || defaults?.[i] || '').slice(0, MAX_SUB_LENGTH);
  return got;
}

/**
 * A query string whose values URLSearchParams would not change: no percent-escapes, no '+' (space), no
 * surrogates (lone ones become U+FFFD); a leading '?', which it drops, is checked apart.
 */
const PLAIN_QUERY = /^[^%+\uD800-\uDFFF]*$/;

/** Where a click came from and how it scored: what the click store and the click log (../reports) both show. */
export interface ClickQuality {
  ip: string;
  country: string;
  device: string;
  /** Why the ingest recorded the click as invalid ('' when valid). */
  invalid_reason: string;
  /** 0..1, see tracker/fraud/rules.ts. */
  fraud_score: number;
  fraud_reasons: string[];
}

/**
 * What the click store keeps per click for attribution (`keys.key('click', click_id)`), written by
 * {@link encodeStoredClick} and read by {@link decodeStoredClick}.
 */
export interface StoredClick extends ClickQuality {
  campaign_id: number;
  affiliate_id: number;
  advertiser_id: number;
  link_code: string;
  ts_ms: number;
  sub: [string, string, string, string, string];
  /** The click's hashed model features (from its verdict), copied into its conversion's label; '' when unknown. */
  features: string;
  /** The stream entry the click was processed from: tells a spooled copy of the click from the click itself. */
  entry: string;
  /** The landing page it was sent to (0: the campaign's destination_url); its conversion carries it. */
  landing_id: number;
}

export { idTag };

/**
 * A click record as stored: a JSON array of {@link StoredClick}'s fields in the order below. Without the field
 * names it is ≈40 % smaller than the object (Redis holds every click for its attribution window) and
 * cheaper to write.
 */
export function encodeStoredClick(c: StoredClick): string {
  return JSON.stringify([
    c.campaign_id,
    c.affiliate_id,
    c.advertiser_id,
    c.link_code,
    c.ts_ms,
    c.sub,
    c.ip,
    c.country,
    c.device,
    c.invalid_reason,
    c.fraud_score,
    c.fraud_reasons,
    c.features,
    c.entry,
    c.landing_id,
  ]);
}

/**
 * Reads a stored click record: the array of {@link encodeStoredClick}, or the JSON object earlier versions
 * wrote (such records live for the attribution window).
 * @throws SyntaxError when `value` is not JSON.
 */
export function decodeStoredClick(value: string): StoredClick {
  const v = JSON.parse(value) as unknown;
  if (!Array.isArray(v))
    return { features: '', entry: '', landing_id: 0, ...(v as Omit<StoredClick, 'features' | 'entry' | 'landing_id'>) };
  return {
    campaign_id: v[0],
    affiliate_id: v[1],
    advertiser_id: v[2],
    link_code: v[3],
    ts_ms: v[4],
    sub: v[5],
    ip: v[6],
    country: v[7],
    device: v[8],
    invalid_reason: v[9],
    fraud_score: v[10],
    fraud_reasons: v[11],
    features: v[12] ?? '',
    entry: v[13] ?? '',
    landing_id: v[14] ?? 0,
  };
}

/**
 * Key of a click in the attribution store: `click:{<tag>}:<click_id>`. The hash tag is the click_id's tag
 * ({@link idTag}, the click's partition), so a partition's click records share a Redis Cluster slot with its
 * stream and one script call can write a batch's records.
 */
export function clickKey(keys: RedisKeys, clickId: string): string {
  return keys.key('click', `{${idTag(clickId)}}`, clickId.toLowerCase());
}

/** One ClickHouse row of the `clicks` table. */
export type ClickRow = Record<string, string | number | string[]>;

let chDay = Number.NaN;
let chDayText = '';
const pad2 = (n: number) => (n < 10 ? `0${n}` : `${n}`);

/**
 * 'YYYY-MM-DD HH:MM:SS.mmm' in UTC, the DateTime64(3, 'UTC') text form, for `ms` in years 1970..9999
 * (what validation lets through). The date part is cached: a batch's clicks mostly share a day.
 */
export function chTime(ms: number): string {
  const day = Math.floor(ms / 86_400_000);
  if (day !== chDay) {
    chDay = day;
    chDayText = new Date(day * 86_400_000).toISOString().slice(0, 10);
  }
  let rest = ms - day * 86_400_000;
  const milli = rest % 1000;
  rest = (rest - milli) / 1000;
  const sec = rest % 60;
  rest = (rest - sec) / 60;
  const min = rest % 60;
  const hour = (rest - min) / 60;
  const m3 = milli < 10 ? `00${milli}` : milli < 100 ? `0${milli}` : `${milli}`;
  return `${chDayText} ${pad2(hour)}:${pad2(min)}:${pad2(sec)}.${m3}`;
}

/** Columns of a click batch's insert, in the order of {@link buildClicks}' TabSeparated lines. */
export const CLICK_COLUMNS = [
  'click_id',
  'ts',
  'received',
  'link_code',
  'campaign_id',
  'affiliate_id',
  'advertiser_id',
  'currency',
  'ip',
  'method',
  'sub1',
  'sub2',
  'sub3',
  'sub4',
  'sub5',
  'user_agent',
  'referer',
  'country',
  'device',
  'os',
  'browser',
  'invalid_reason',
  'fraud_score',
  'fraud_reasons',
  'fraud_model_version',
  'bot_reason',
  'is_invalid',
  'landing_id',
] as const;

/** A scored click batch, ready for ClickHouse and the click store. */
export interface BuiltClicks {
  /** TabSeparated body of the insert, one line per click, columns {@link CLICK_COLUMNS}. */
  tsv: string;
  /** Per click: its attribution record as stored ({@link encodeStoredClick}'s form). */
  stored: string[];
  /** Per click: 1 when it counts as invalid (ingest-invalid, a previewer, scanner, prefetch or bot, or fraud-flagged). */
  invalid: Uint8Array;
}

/** TabSeparated text of a reasons array, per array: verdicts share one array per combination of reasons. */
const reasonsTsv = new WeakMap<readonly string[], string>();

/**
 * Builds the ClickHouse body and the attribution records of a scored batch, straight from the clicks and
 * their verdicts: no row or record object per click (those objects, and walking them by column name, were a
 * large share of the pipeline's allocation and garbage collection). `geo` gives each click's country (from its
 * IP; ≈1 µs a click); without it the country is ''.
 */
export function buildClicks(
  clicks: readonly ClickEvent[],
  scored: readonly EngineVerdict[],
  campaigns: Map<number, CampaignTerms>,
  links: Map<string, LinkDefaults> = new Map(),
  entries: readonly string[] = [],
  geo?: Pick<GeoIp, 'country'>,
): BuiltClicks {
  const lines = new Array<string>(clicks.length);
  const stored = new Array<string>(clicks.length);
  const invalid = new Uint8Array(clicks.length);
  const rec: StoredClick = {
    campaign_id: 0,
    affiliate_id: 0,
    advertiser_id: 0,
    link_code: '',
    ts_ms: 0,
    sub: ['', '', '', '', ''],
    ip: '',
    country: '',
    device: '',
    invalid_reason: '',
    fraud_score: 0,
    fraud_reasons: [],
    features: '',
    entry: '',
    landing_id: 0,
  };
  for (let i = 0; i < clicks.length; i++) {
    const c = clicks[i]!;
    const s = scored[i]!;
    const sub = subIds(c.query, links.get(c.link_code));
    const flagged = c.invalid_reason !== '' || s.bot_reason !== '' || s.fraud_score >= FRAUD_THRESHOLD;
    const country = geo ? geo.country(c.ip) : '';
    invalid[i] = flagged ? 1 : 0;
    let reasons = reasonsTsv.get(s.fraud_reasons);
    if (reasons === undefined) {
      reasons = tsvValue(s.fraud_reasons, 'fraud_reasons');
      reasonsTsv.set(s.fraud_reasons, reasons);
    }
    lines[i] =
      `${c.click_id}\t${chTime(c.ts_ms)}\t${chTime(c.received_ms)}\t${tsvString(c.link_code)}\t${c.campaign_id}\t` +
      `${c.affiliate_id}\t${c.advertiser_id}\t${campaigns.get(c.campaign_id)?.currency ?? ''}\t${tsvString(c.ip)}\t` +
      `${tsvString(c.method)}\t${tsvString(sub[0])}\t${tsvString(sub[1])}\t${tsvString(sub[2])}\t${tsvString(sub[3])}\t` +
      `${tsvString(sub[4])}\t${tsvString(c.user_agent)}\t${tsvString(c.referer)}\t${country}\t${tsvString(s.device)}\t` +
      `${tsvString(s.os)}\t${tsvString(s.browser)}\t${c.invalid_reason}\t${s.fraud_score}\t${reasons}\t` +
      `${s.model_version}\t${s.bot_reason}\t${invalid[i]}\t${c.landing_id}`;
    // One scratch record, refilled per click: encodeStoredClick stays the only place that knows the field order.
    rec.campaign_id = c.campaign_id;
    rec.affiliate_id = c.affiliate_id;
    rec.advertiser_id = c.advertiser_id;
    rec.link_code = c.link_code;
    rec.ts_ms = c.ts_ms;
    rec.sub = sub;
    rec.ip = c.ip;
    rec.country = country;
    rec.device = s.device;
    rec.invalid_reason = c.invalid_reason;
    rec.fraud_score = s.fraud_score;
    rec.fraud_reasons = s.fraud_reasons;
    rec.features = s.features;
    rec.entry = entries[i] ?? '';
    rec.landing_id = c.landing_id;
    stored[i] = encodeStoredClick(rec);
  }
  return { tsv: lines.length > 0 ? `${lines.join('\n')}\n` : '', stored, invalid };
}

/** Server side of {@link storeClicks}: KEYS are the click keys (one hash tag), ARGV the record and TTL (ms) of each. */
const STORE_LUA = `
local call = redis.call
for i = 1, #KEYS do call('SET', KEYS[i], ARGV[2 * i - 1], 'PX', ARGV[2 * i]) end
return 0
`;

/** Records per store script call, so one call never holds Redis for long. */
const STORE_CHUNK = 1_000;

/**
 * Writes the attribution records (`stored`: encoded, one per click; SET with PX, one script call per 1000 records of one hash tag rather than
 * a command each: the client's cost per pipelined command was most of this step). Every key is declared,
 * and the keys of one call share the tag of their clicks' partition, so this works on Redis Cluster.
 * TTL: the campaign's attribution window (at least `defaultWindowDays`) plus one day, counted from now, so
 * a click lives as long as any conversion could still be attributed to it. Idempotent (a retry overwrites
 * the same keys). @throws RetriableError
 */
export async function storeClicks(
  redis: Redis,
  keys: RedisKeys,
  clicks: readonly ClickEvent[],
  stored: readonly string[],
  campaigns: Map<number, CampaignTerms>,
  defaultWindowDays: number,
): Promise<void> {
  const byTag = new Map<number, number[]>();
  for (let i = 0; i < clicks.length; i++) {
    const tag = idTag(clicks[i]!.click_id);
    let list = byTag.get(tag);
    if (!list) {
      list = [];
      byTag.set(tag, list);
    }
    list.push(i);
  }
  const calls: Array<Promise<unknown>> = [];
  for (const list of byTag.values()) {
    for (let start = 0; start < list.length; start += STORE_CHUNK) {
      const chunk = list.slice(start, start + STORE_CHUNK);
      const ks: string[] = [];
      const args: Array<string | number> = [];
      for (const i of chunk) {
        const days = Math.max(campaigns.get(clicks[i]!.campaign_id)?.attribution_window_days ?? 0, defaultWindowDays);
        ks.push(clickKey(keys, clicks[i]!.click_id));
        args.push(stored[i]!, (days + 1) * 86_400_000);
      }
      calls.push(redis.eval(STORE_LUA, ks.length, ...ks, ...args));
    }
  }
  try {
    await Promise.all(calls);
  } catch (err) {
    throw new RetriableError(`click store: ${(err as Error).message}`);
  }
}

/**
 * Reads stored click records by click_id, one GET each (sent together; on Redis Cluster each goes to its
 * slot's node). null where none is stored. @throws RetriableError
 */
export async function loadStoredClicks(
  redis: Redis,
  keys: RedisKeys,
  clickIds: readonly string[],
): Promise<Array<StoredClick | null>> {
  if (clickIds.length === 0) return [];
  let values: Array<string | null>;
  try {
    values = await Promise.all(clickIds.map((id) => redis.get(clickKey(keys, id))));
  } catch (err) {
    throw new RetriableError(`click store: ${(err as Error).message}`);
  }
  return values.map((v) => (typeof v === 'string' ? decodeStoredClick(v) : null));
}

/** ClickHouse settings of every pipeline insert: deduplicate by token, also in the MVs' targets. */
export function dedupSettings(token: string) {
  return {
    insert_deduplicate: 1,
    insert_deduplication_token: token,
    deduplicate_blocks_in_dependent_materialized_views: 1,
  } as const;
}

const TSV_SPECIAL = /[\\\t\n\r]/;
const TSV_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', "'": "\\'" };

/** A string as one TabSeparated field (backslash escapes for \\, tab, LF, CR). */
function tsvString(v: string): string {
  return TSV_SPECIAL.test(v) ? v.replace(/[\\\t\n\r]/g, (ch) => TSV_ESCAPES[ch]!) : v;
}

/** One value as a TabSeparated field: numbers as decimals, strings escaped, arrays as ['a','b']. */
function tsvValue(v: string | number | string[] | undefined, column: string): string {
  if (typeof v === 'string') return tsvString(v);
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      out += `${i > 0 ? ',' : ''}'${v[i]!.replace(/[\\\t\n\r']/g, (ch) => TSV_ESCAPES[ch]!)}'`;
    }
    return `${out}]`;
  }
  throw new TypeError(`insert row without column ${column}`);
}

/**
 * Rows as a TabSeparated body for `columns` (one line per row). Cheaper to build than JSONEachRow and
 * cheaper for ClickHouse to parse; plain text, so it works over HTTP and through chDB alike.
 * @throws TypeError when a row lacks one of the columns (every row of an insert has the same shape).
 */
export function tsvRows(rows: readonly ClickRow[], columns: readonly string[]): string {
  const lines = new Array<string>(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    let line = tsvValue(row[columns[0]!], columns[0]!);
    for (let c = 1; c < columns.length; c++) line += `\t${tsvValue(row[columns[c]!], columns[c]!)}`;
    lines[r] = line;
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Inserts a prepared TabSeparated body (columns in its order) idempotently: a retry with the same token adds
 * nothing.
 */
export async function insertTsv(
  ch: ClickHouseClient,
  table: string,
  columns: readonly string[],
  tsv: string,
  token: string,
): Promise<void> {
  if (tsv === '') return;
  await ch.insert({
    table,
    columns: [...columns] as [string, ...string[]],
    values: Readable.from([tsv], { objectMode: false }),
    format: 'TabSeparated',
    clickhouse_settings: dedupSettings(token),
  });
}

/**
 * Inserts rows idempotently: a retry with the same token adds nothing. The columns are the first row's
 * keys (the others take their defaults), so every row must carry the same keys.
 */
export async function insertRows(ch: ClickHouseClient, table: string, rows: ClickRow[], token: string): Promise<void> {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!);
  await ch.insert({
    table,
    columns: columns as [string, ...string[]],
    values: Readable.from([tsvRows(rows, columns)], { objectMode: false }),
    format: 'TabSeparated',
    clickhouse_settings: dedupSettings(token),
  });
}
