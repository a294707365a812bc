/**
 * Shared fixtures of the ingest tests: tracker configs, seeded links, stream readers, sample click events, and
 * the tracker the route tests (click, postback, request, server) share: `useTracker()`. Not part of the product.
 */
import { createHash, randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { type Config, createLogger, loadConfig, type Redis, type RedisKeys, type Sql } from '../../infra/index.ts';
import { createTestEnv, makeCampaign, makeUser, type TestEnv } from '../../infra/testing/index.ts';
import { type ClickEvent, type ConversionEvent, decodeClick, decodeConversion, entryLines } from '../events.ts';
import { startTracker, type Tracker } from './server.ts';

/** A test tracker's config: an ephemeral port, `partitions` stream partitions, `extra` on top. */
export function trackerConfig(
  dataDir: string,
  prefix: string,
  partitions: number,
  extra: Record<string, string> = {},
): Config {
  return loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: dataDir,
    REDIS_PREFIX: prefix,
    TRACKER_PORT: '0',
    STREAM_PARTITIONS: String(partitions),
    ...extra,
  });
}

/**
 * Seeds advertiser `A` (id 1 in a fresh database), affiliate `F` (id 2), an active CPC campaign in EUR (id 1)
 * redirecting to `https://dest.example/?c={click_id}`, the link `code`, and the advertiser's postback `token`.
 */
export async function seedLink(sql: Sql, code: string, token: string): Promise<void> {
  const advertiser = await makeUser(sql, 'advertiser', { name: 'A', email: 'a@x.io' });
  const affiliate = await makeUser(sql, 'affiliate', { name: 'F', email: 'f@x.io' });
  const campaign = await makeCampaign(sql, advertiser, {
    name: 'C',
    destination_url: 'https://dest.example/?c={click_id}',
    payout_model: 'CPC',
    currency: 'EUR',
    status: 'active',
  });
  await sql`insert into links (code, campaign_id, affiliate_id) values (${code}, ${campaign}, ${affiliate})`;
  await sql`insert into postback_tokens (advertiser_id, token_hash, prefix)
            values (${advertiser}, ${createHash('sha256').update(token).digest('hex')}, 'tok')`;
}

/** Every line of every entry of `stream(p)` for p < partitions, decoded, in stream order per partition. */
export async function readStream<T>(
  redis: Redis,
  stream: (p: number) => string,
  partitions: number,
  decode: (line: string) => T,
): Promise<T[]> {
  const out: T[] = [];
  for (let p = 0; p < partitions; p++) {
    const entries = (await redis.xrange(stream(p), '-', '+')) as Array<[string, string[]]>;
    for (const [, fields] of entries) for (const line of entryLines(fields)) out.push(decode(line));
  }
  return out;
}

/** A valid click of the link seeded by {@link seedLink} (campaign 1, affiliate 2, advertiser 1) from 127.0.0.1. */
export function sampleClick(c: Pick<ClickEvent, 'click_id' | 'link_code' | 'query'> & Partial<ClickEvent>): ClickEvent {
  return {
    ts_ms: 1_700_000_000_000,
    received_ms: 1_700_000_000_000,
    campaign_id: 1,
    affiliate_id: 2,
    advertiser_id: 1,
    ip: '127.0.0.1',
    method: 'GET',
    user_agent: '',
    referer: '',
    accept_language: '',
    purpose: '',
    invalid_reason: '',
    landing_id: 0,
    ...c,
  };
}

// --- the route tests' tracker (see useTracker) ---

/** A UUIDv7 in its canonical lower-case form. */
export const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** What {@link useTracker} seeds. */
export interface Seed {
  advertiser: number;
  affiliate: number;
  campaign: number;
  token: string;
}

/**
 * Seeds an advertiser and an affiliate, the active campaign `Shoes` (destination with macros) with the links
 * `good-1`, `dflt_1` (default sub1/sub5) and `off-1` (disabled), paused campaigns without (`paused-1`) and with
 * a fallback (`pausedfb-1`), and a postback token of the advertiser.
 */
async function seed(sql: Sql): Promise<Seed> {
  const adv = await makeUser(sql, 'advertiser', { name: 'Adv', email: 'adv@example.com' });
  const aff = await makeUser(sql, 'affiliate', { name: 'Aff', email: 'aff@example.com' });
  const camp = await makeCampaign(sql, adv, {
    name: 'Shoes',
    destination_url:
      'https://shop.example/l?cid={click_id}&c={campaign_id}&a={affiliate_id}&s1={sub1}&s2={sub2}&s5={sub5}',
    status: 'active',
  });
  await sql`insert into links (code, campaign_id, affiliate_id) values ('good-1', ${camp}, ${aff})`;
  await sql`insert into links (code, campaign_id, affiliate_id, sub1, sub5)
            values ('dflt_1', ${camp}, ${aff}, 'def one', 'def5')`;
  await sql`insert into links (code, campaign_id, affiliate_id, status) values ('off-1', ${camp}, ${aff}, 'disabled')`;
  const paused = await makeCampaign(sql, adv, {
    name: 'Paused',
    destination_url: 'https://paused.example/',
    status: 'paused',
  });
  const pausedFb = await makeCampaign(sql, adv, {
    name: 'PausedFb',
    destination_url: 'https://paused.example/',
    fallback_url: 'https://fallback.example/?c={click_id}',
    status: 'paused',
  });
  await sql`insert into links (code, campaign_id, affiliate_id) values ('paused-1', ${paused}, ${aff})`;
  await sql`insert into links (code, campaign_id, affiliate_id) values ('pausedfb-1', ${pausedFb}, ${aff})`;
  const token = randomBytes(32).toString('base64url');
  await sql`insert into postback_tokens (advertiser_id, token_hash, prefix)
            values (${adv}, ${createHash('sha256').update(token).digest('hex')}, ${token.slice(0, 6)})`;
  return { advertiser: adv, affiliate: aff, campaign: camp, token };
}

// Set by the hooks of useTracker(); ES module bindings, so importers see the values once `before` has run.
export let env: TestEnv;
export let keys: RedisKeys;
export let s: Seed;
export let tracker: Tracker;
export const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'silent' });

/**
 * Registers `before`/`after` hooks in the calling test file: a test environment, the {@link seed} rows and a
 * tracker on 2 partitions of the environment's Redis prefix (see {@link env}, {@link s}, {@link tracker}).
 */
export function useTracker(): void {
  before(async () => {
    env = await createTestEnv();
    keys = env.keys;
    s = await seed(env.sql);
    tracker = await startTracker({ config: cfg(), logger, sql: env.sql, redisUrl: env.config.REDIS_URL! });
  });
  after(async () => {
    await tracker.close();
    await env.close();
  });
}

/** The config of the shared tracker, `extra` on top (for a second tracker on the same streams). */
export function cfg(extra: Record<string, string> = {}): Config {
  return trackerConfig(env.dir, env.config.REDIS_PREFIX, 2, extra);
}

/** Every click recorded on the shared streams. */
export const clicks = () => readStream<ClickEvent>(env.redis, keys.clicks, 2, decodeClick);
/** Every conversion recorded on the shared streams. */
export const conversions = () => readStream<ConversionEvent>(env.redis, keys.conversions, 2, decodeConversion);
/** The newest click (highest click_id). */
export async function lastClick(): Promise<ClickEvent> {
  const all = await clicks();
  all.sort((a, b) => (a.click_id < b.click_id ? -1 : 1));
  return all[all.length - 1]!;
}
/** A request to the shared tracker, redirects not followed. */
export const get = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
  fetch(tracker.url + path, { redirect: 'manual', headers, method });
/** A POST of `body` to the conversion route of the shared tracker. */
export const post = (body: string, contentType: string, headers: Record<string, string> = {}, qs = '') =>
  fetch(`${tracker.url}/api/v1/track/conversion${qs}`, {
    method: 'POST',
    headers: { 'content-type': contentType, ...headers },
    body,
  });
