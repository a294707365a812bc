/**
 * Steps of the click stream: decode → gather fraud features (Redis) → score (worker pool) →
 * store click records for attribution (Redis) → rows for ClickHouse.
 */
import { Readable } from 'node:stream';
import type { ClickHouseClient, Redis, RedisKeys } from '../../infra/index.ts';
import { RetriableError } from '../../infra/index.ts';
import { type ClickEvent, decodeClick, MalformedEventError } from '../events.ts';
import type { FraudPool } from '../fraud/pool.ts';
import { type ClickFeatures, FRAUD_LIMITS, FRAUD_THRESHOLD } from '../fraud/rules.ts';
import type { ScoredClick } from '../fraud/worker.ts';
import type { CampaignTerms, LinkDefaults } from './campaigns.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Latest event time ClickHouse DateTime64(3) holds comfortably (2200-01-01), ms. */
const MAX_TS_MS = 7_258_118_400_000;
const MAX_SUB_LENGTH = 255;

/** Checks the values ClickHouse would refuse, so one bad click cannot block a batch. @throws MalformedEventError */
export function validateClick(c: ClickEvent): ClickEvent {
  if (!UUID.test(c.click_id)) throw new MalformedEventError('click_id is not a UUID');
  if (c.ts_ms < 0 || c.ts_ms > MAX_TS_MS) throw new MalformedEventError('ts_ms out of range');
  if (c.received_ms < 0 || c.received_ms > MAX_TS_MS) throw new MalformedEventError('received_ms out of range');
  if (c.campaign_id < 0 || c.affiliate_id < 0 || c.advertiser_id < 0) throw new MalformedEventError('negative id');
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

function utcDay(ms: number): number {
  return Math.floor(ms / 86_400_000);
}

/** Extra life of fraud keys beyond their window: tolerates clicks arriving that late (event time). */
const LATENESS_MS = 3_600_000;

/** Clicks per script call, so one call never holds Redis for long. */
const FEATURE_CHUNK = 1_000;

/**
 * Server-side half of {@link gatherFeatures}: records a chunk of clicks in the fraud state, then
 * reads every click's counts, then expires (and now and then trims) each touched key once. One round
 * trip and no per-command client overhead. ARGV: n, windows (1 min, 24 h, 1 h, duplicate), lateness,
 * then per click: ip key, ip+campaign key, ip+link key, user-agent key, ts_ms, click_id, user agent
 * (ip key '' = no IP). Returns 5 integers per click.
 *
 * Cost is per Redis call (≈1.4 µs each inside the script), so the script makes as few as the features
 * need: 9 per click plus one PEXPIRE per touched sorted set. A user-agent key (one UTC day of one IP) gets
 * its TTL (a day plus lateness) when PFADD changes it, i.e. on creation and on each new user agent, not on
 * every click: it only has to outlive its own day by the lateness. Trimming only bounds memory (every count is over
 * an explicit score range), so a key is trimmed in about one chunk in 8 (when the newest ts_ms it got
 * is ≡ 0 mod 8: deterministic, spread evenly), which keeps at most a few chunks' worth of entries older
 * than window + lateness; its TTL is refreshed every time, so idle keys still disappear.
 * Score bounds are Lua numbers, formatted exactly ("%.14g": integers below 10^14 ms, year 5138).
 * Not Redis Cluster safe (keys are not declared): the fraud state of one IP spans slots.
 */
const FEATURES_LUA = `
local n = tonumber(ARGV[1])
local w1m, w24h, w1h, wdup, late = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ttlUa = 86400000 + late
local call = redis.call
local maxts, window = {}, {}
for b = 6, 6 + (n - 1) * 7, 7 do
  local ip = ARGV[b + 1]
  if ip ~= '' then
    local ts, id = tonumber(ARGV[b + 5]), ARGV[b + 6]
    local kc, kl = ARGV[b + 2], ARGV[b + 3]
    call('ZADD', ip, ts, id)
    call('ZADD', kc, ts, id)
    call('ZADD', kl, ts, id)
    local ua = ARGV[b + 7]
    if ua ~= '' and call('PFADD', ARGV[b + 4], ua) == 1 then call('PEXPIRE', ARGV[b + 4], ttlUa) end
    local m = maxts[ip]
    if m == nil or ts > m then maxts[ip] = ts; window[ip] = w24h end
    m = maxts[kc]
    if m == nil or ts > m then maxts[kc] = ts; window[kc] = w1h end
    m = maxts[kl]
    if m == nil or ts > m then maxts[kl] = ts; window[kl] = wdup end
  end
end
local out, o = {}, 0
for b = 6, 6 + (n - 1) * 7, 7 do
  local ip = ARGV[b + 1]
  if ip == '' then
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = 0, 0, 0, 0, 0
  else
    local ts = tonumber(ARGV[b + 5])
    out[o + 1] = call('ZCOUNT', ip, '(' .. (ts - w1m), ts)
    out[o + 2] = call('ZCOUNT', ip, '(' .. (ts - w24h), ts)
    out[o + 3] = call('ZCOUNT', ARGV[b + 2], '(' .. (ts - w1h), ts)
    out[o + 4] = call('ZCOUNT', ARGV[b + 3], ts - wdup, ts)
    out[o + 5] = call('PFCOUNT', ARGV[b + 4])
  end
  o = o + 5
end
for k, ts in pairs(maxts) do
  if ts % 8 == 0 then call('ZREMRANGEBYSCORE', k, '-inf', '(' .. (ts - window[k] - late)) end
  call('PEXPIRE', k, window[k] + late)
end
return out
`;

/**
 * Records the batch's clicks in the shared fraud state and reads each click's features (one
 * script call per 1000 clicks, all sent at once). Idempotent under retries: sorted-set members are click ids (ZADD
 * of the same click twice changes nothing) scored by event time, and every count is over an
 * event-time window ending at the click's own ts. @throws RetriableError when Redis fails.
 */
export async function gatherFeatures(redis: Redis, keys: RedisKeys, clicks: ClickEvent[]): Promise<ClickFeatures[]> {
  const L = FRAUD_LIMITS;
  const [ipKey, ipcKey, iplKey, ipuaKey] = ['ip', 'ipc', 'ipl', 'ipua'].map((k) => keys.key('fraud', k, ''));
  // All chunks are sent at once: Redis runs them in order on this connection (a chunk still sees the earlier
  // chunks' clicks, as when they were awaited one by one) without waiting for a round trip between them.
  const calls: Array<Promise<unknown>> = [];
  for (let start = 0; start < clicks.length; start += FEATURE_CHUNK) {
    const end = Math.min(clicks.length, start + FEATURE_CHUNK);
    const args: Array<string | number> = [
      end - start,
      L.ipVelocityWindowMs,
      L.ipDailyWindowMs,
      L.ipCampaignWindowMs,
      L.duplicateWindowMs,
      LATENESS_MS,
    ];
    for (let i = start; i < end; i++) {
      const c = clicks[i]!;
      if (c.ip === '') args.push('', '', '', '', c.ts_ms, c.click_id, '');
      else {
        // The same keys as keys.key('fraud', 'ip', ip), ('fraud', 'ipc', campaign, ip), ('fraud', 'ipl', link,
        // ip) and ('fraud', 'ipua', ip, day), with the constant part built once per batch.
        args.push(
          ipKey + c.ip,
          `${ipcKey}${c.campaign_id}:${c.ip}`,
          `${iplKey}${c.link_code}:${c.ip}`,
          `${ipuaKey}${c.ip}:${utcDay(c.ts_ms)}`,
          c.ts_ms,
          c.click_id,
          c.user_agent,
        );
      }
    }
    calls.push(redis.eval(FEATURES_LUA, 0, ...args));
  }
  let replies: number[][];
  try {
    replies = (await Promise.all(calls)) as number[][];
  } catch (err) {
    throw new RetriableError(`fraud state: ${(err as Error).message}`);
  }
  const out: ClickFeatures[] = [];
  for (const res of replies) {
    for (let r = 0; r < res.length; r += 5) {
      out.push({
        ip_clicks_1m: res[r]!,
        ip_clicks_24h: res[r + 1]!,
        ip_campaign_clicks_1h: res[r + 2]!,
        ip_link_earlier: Math.max(0, res[r + 3]! - 1),
        ip_user_agents_day: res[r + 4]!,
      });
    }
  }
  return out;
}

/** Scores a batch in the pool (one task for the whole batch). */
export async function scoreFraud(pool: FraudPool, clicks: ClickEvent[], features: ClickFeatures[]) {
  return pool.scoreBatch(
    clicks.map((c, i) => ({ method: c.method, user_agent: c.user_agent, purpose: c.purpose, features: features[i]! })),
  );
}

/**
 * What the click store keeps per click for attribution (`keys.key('click', click_id)`), written by
 * {@link encodeStoredClick} and read by {@link decodeStoredClick}.
 */
export interface StoredClick {
  campaign_id: number;
  affiliate_id: number;
  advertiser_id: number;
  link_code: string;
  ts_ms: number;
  sub: [string, string, string, string, string];
  ip: string;
  country: string;
  device: string;
  invalid_reason: string;
  fraud_score: number;
  fraud_reasons: string[];
}

/**
 * A click record as stored: a JSON array in the order of {@link StoredClick}'s fields. Without the field
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
  ]);
}

/**
 * Reads a stored click record: the array of {@link encodeStoredClick}, or the JSON object earlier versions
 * wrote (such records live for the attribution window).
 * @throws SyntaxError when `value` is not JSON.
 */
export function decodeStoredClick(value: string): StoredClick {
  const v = JSON.parse(value) as unknown;
  if (!Array.isArray(v)) return v as StoredClick;
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
  };
}

/** Key of a click in the attribution store. */
export function clickKey(keys: RedisKeys, clickId: string): string {
  return keys.key('click', clickId.toLowerCase());
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

/** Builds the ClickHouse rows and the attribution records of a scored batch. */
export function buildClicks(
  clicks: ClickEvent[],
  scored: ScoredClick[],
  campaigns: Map<number, CampaignTerms>,
  links: Map<string, LinkDefaults> = new Map(),
): { rows: ClickRow[]; stored: StoredClick[] } {
  const rows: ClickRow[] = [];
  const stored: StoredClick[] = [];
  for (let i = 0; i < clicks.length; i++) {
    const c = clicks[i]!;
    const s = scored[i]!;
    const sub = subIds(c.query, links.get(c.link_code));
    const country = '';
    const flagged = c.invalid_reason !== '' || s.fraud_score >= FRAUD_THRESHOLD;
    rows.push({
      click_id: c.click_id,
      ts: chTime(c.ts_ms),
      received: chTime(c.received_ms),
      link_code: c.link_code,
      campaign_id: c.campaign_id,
      affiliate_id: c.affiliate_id,
      advertiser_id: c.advertiser_id,
      currency: campaigns.get(c.campaign_id)?.currency ?? '',
      ip: c.ip,
      method: c.method,
      sub1: sub[0],
      sub2: sub[1],
      sub3: sub[2],
      sub4: sub[3],
      sub5: sub[4],
      user_agent: c.user_agent,
      referer: c.referer,
      country,
      device: s.device,
      os: s.os,
      browser: s.browser,
      invalid_reason: c.invalid_reason,
      fraud_score: s.fraud_score,
      fraud_reasons: s.fraud_reasons,
      is_invalid: flagged ? 1 : 0,
    });
    stored.push({
      campaign_id: c.campaign_id,
      affiliate_id: c.affiliate_id,
      advertiser_id: c.advertiser_id,
      link_code: c.link_code,
      ts_ms: c.ts_ms,
      sub,
      ip: c.ip,
      country,
      device: s.device,
      invalid_reason: c.invalid_reason,
      fraud_score: s.fraud_score,
      fraud_reasons: s.fraud_reasons,
    });
  }
  return { rows, stored };
}

/** Server side of {@link storeClicks}: ARGV is key, JSON record, TTL (ms) per click; SET … PX for each. */
const STORE_LUA = `
local call = redis.call
for i = 1, #ARGV, 3 do call('SET', ARGV[i], ARGV[i + 1], 'PX', ARGV[i + 2]) end
return 0
`;

/** Records per store script call, so one call never holds Redis for long. */
const STORE_CHUNK = 1_000;

/**
 * Writes the attribution records (SET with PX, one script call per 1000 records rather than a command
 * each: the client's cost per pipelined command was most of this step). TTL: the campaign's attribution
 * window (at least `defaultWindowDays`) plus one day, counted from now, so a click lives as long as any
 * conversion could still be attributed to it. Idempotent (a retry overwrites the same keys). @throws RetriableError
 */
export async function storeClicks(
  redis: Redis,
  keys: RedisKeys,
  clicks: ClickEvent[],
  stored: StoredClick[],
  campaigns: Map<number, CampaignTerms>,
  defaultWindowDays: number,
): Promise<void> {
  const calls: Array<Promise<unknown>> = [];
  for (let start = 0; start < clicks.length; start += STORE_CHUNK) {
    const end = Math.min(clicks.length, start + STORE_CHUNK);
    const args: Array<string | number> = [];
    for (let i = start; i < end; i++) {
      const days = Math.max(campaigns.get(clicks[i]!.campaign_id)?.attribution_window_days ?? 0, defaultWindowDays);
      args.push(clickKey(keys, clicks[i]!.click_id), encodeStoredClick(stored[i]!), (days + 1) * 86_400_000);
    }
    calls.push(redis.eval(STORE_LUA, 0, ...args));
  }
  try {
    await Promise.all(calls);
  } catch (err) {
    throw new RetriableError(`click store: ${(err as Error).message}`);
  }
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
