/**
 * Steps of the click stream: decode → gather fraud features (Redis) → score (worker pool) →
 * store click records for attribution (Redis) → rows for ClickHouse.
 */
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
 * not carry takes the link's default (`links.sub1..5`), else ''.
 */
export function subIds(query: string, defaults?: LinkDefaults): [string, string, string, string, string] {
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(query);
  } catch {
    params = new URLSearchParams();
  }
  const get = (i: number) => (params.get(`sub${i + 1}`) || defaults?.[i] || '').slice(0, MAX_SUB_LENGTH);
  return [get(0), get(1), get(2), get(3), get(4)];
}

function utcDay(ms: number): number {
  return Math.floor(ms / 86_400_000);
}

/** Extra life of fraud keys beyond their window: tolerates clicks arriving that late (event time). */
const LATENESS_MS = 3_600_000;

/**
 * Records the batch's clicks in the shared fraud state and reads each click's features, in one
 * pipelined round trip. Idempotent under retries: sorted-set members are click ids (ZADD of the
 * same click twice changes nothing) scored by event time, and every count is over an event-time
 * window ending at the click's own ts. @throws RetriableError when Redis fails.
 */
export async function gatherFeatures(redis: Redis, keys: RedisKeys, clicks: ClickEvent[]): Promise<ClickFeatures[]> {
  const L = FRAUD_LIMITS;
  const p = redis.pipeline();
  const expiry = new Map<string, { maxTs: number; windowMs: number }>();
  const touch = (key: string, ts: number, windowMs: number) => {
    const e = expiry.get(key);
    if (!e) expiry.set(key, { maxTs: ts, windowMs });
    else if (ts > e.maxTs) e.maxTs = ts;
  };
  const keyOf = clicks.map((c) => {
    if (c.ip === '') return null;
    const k = {
      ip: keys.key('fraud', 'ip', c.ip),
      ipc: keys.key('fraud', 'ipc', c.campaign_id, c.ip),
      ipl: keys.key('fraud', 'ipl', c.link_code, c.ip),
      ua: keys.key('fraud', 'ipua', c.ip, utcDay(c.ts_ms)),
    };
    p.zadd(k.ip, c.ts_ms, c.click_id);
    p.zadd(k.ipc, c.ts_ms, c.click_id);
    p.zadd(k.ipl, c.ts_ms, c.click_id);
    if (c.user_agent !== '') p.pfadd(k.ua, c.user_agent);
    touch(k.ip, c.ts_ms, L.ipDailyWindowMs);
    touch(k.ipc, c.ts_ms, L.ipCampaignWindowMs);
    touch(k.ipl, c.ts_ms, L.duplicateWindowMs);
    touch(k.ua, c.ts_ms, 86_400_000);
    return k;
  });
  const firstRead = p.length;
  for (let i = 0; i < clicks.length; i++) {
    const k = keyOf[i];
    if (!k) continue;
    const ts = clicks[i]!.ts_ms;
    p.zcount(k.ip, `(${ts - L.ipVelocityWindowMs}`, ts);
    p.zcount(k.ip, `(${ts - L.ipDailyWindowMs}`, ts);
    p.zcount(k.ipc, `(${ts - L.ipCampaignWindowMs}`, ts);
    p.zcount(k.ipl, ts - L.duplicateWindowMs, ts);
    p.pfcount(k.ua);
  }
  for (const [key, e] of expiry) {
    if (!key.includes(':ipua:')) p.zremrangebyscore(key, '-inf', `(${e.maxTs - e.windowMs - LATENESS_MS}`);
    p.pexpire(key, e.windowMs + LATENESS_MS);
  }
  let res: Array<[Error | null, unknown]>;
  try {
    res = (await p.exec()) ?? [];
  } catch (err) {
    throw new RetriableError(`fraud state: ${(err as Error).message}`);
  }
  const failed = res.find(([e]) => e);
  if (failed) throw new RetriableError(`fraud state: ${failed[0]!.message}`);
  let r = firstRead;
  return clicks.map((_, i) => {
    if (!keyOf[i]) {
      return { ip_clicks_1m: 0, ip_clicks_24h: 0, ip_campaign_clicks_1h: 0, ip_link_earlier: 0, ip_user_agents_day: 0 };
    }
    const n = () => Number(res[r++]![1]);
    return {
      ip_clicks_1m: n(),
      ip_clicks_24h: n(),
      ip_campaign_clicks_1h: n(),
      ip_link_earlier: Math.max(0, n() - 1),
      ip_user_agents_day: n(),
    };
  });
}

/** Scores a batch in the pool (one task for the whole batch). */
export async function scoreFraud(pool: FraudPool, clicks: ClickEvent[], features: ClickFeatures[]) {
  return pool.scoreBatch(
    clicks.map((c, i) => ({ method: c.method, user_agent: c.user_agent, purpose: c.purpose, features: features[i]! })),
  );
}

/** What the click store keeps per click for attribution (`keys.key('click', click_id)`, JSON). */
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

/** Key of a click in the attribution store. */
export function clickKey(keys: RedisKeys, clickId: string): string {
  return keys.key('click', clickId.toLowerCase());
}

/** One ClickHouse row of the `clicks` table. */
export type ClickRow = Record<string, string | number | string[]>;

/** 'YYYY-MM-DD HH:MM:SS.mmm' in UTC, the DateTime64(3, 'UTC') text form. */
export function chTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
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

/**
 * Writes the attribution records (SET with PX). TTL: the campaign's attribution window (at least
 * `defaultWindowDays`) plus one day, counted from now, so a click lives as long as any conversion
 * could still be attributed to it. @throws RetriableError
 */
export async function storeClicks(
  redis: Redis,
  keys: RedisKeys,
  clicks: ClickEvent[],
  stored: StoredClick[],
  campaigns: Map<number, CampaignTerms>,
  defaultWindowDays: number,
): Promise<void> {
  if (clicks.length === 0) return;
  const p = redis.pipeline();
  for (let i = 0; i < clicks.length; i++) {
    const days = Math.max(campaigns.get(clicks[i]!.campaign_id)?.attribution_window_days ?? 0, defaultWindowDays);
    p.set(clickKey(keys, clicks[i]!.click_id), JSON.stringify(stored[i]), 'PX', (days + 1) * 86_400_000);
  }
  let res: Array<[Error | null, unknown]>;
  try {
    res = (await p.exec()) ?? [];
  } catch (err) {
    throw new RetriableError(`click store: ${(err as Error).message}`);
  }
  const failed = res.find(([e]) => e);
  if (failed) throw new RetriableError(`click store: ${failed[0]!.message}`);
}

/** ClickHouse settings of every pipeline insert: deduplicate by token, also in the MVs' targets. */
export function dedupSettings(token: string) {
  return {
    insert_deduplicate: 1,
    insert_deduplication_token: token,
    deduplicate_blocks_in_dependent_materialized_views: 1,
  } as const;
}

/** Inserts rows idempotently: a retry with the same token adds nothing. */
export async function insertRows(ch: ClickHouseClient, table: string, rows: ClickRow[], token: string): Promise<void> {
  if (rows.length === 0) return;
  await ch.insert({ table, values: rows, format: 'JSONEachRow', clickhouse_settings: dedupSettings(token) });
}
