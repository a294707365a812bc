import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  createLogger,
  loadConfig,
  publishLinkInvalidation,
  type Redis,
  type RedisKeys,
  type Sql,
} from '../../infra/index.ts';
import { createTestEnv, makeCampaign, makeUser, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import {
  type ClickEvent,
  type ConversionEvent,
  decodeClick,
  decodeConversion,
  entryLines,
  startTracker,
  type Tracker,
} from '../index.ts';

const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function readStream<T>(redis: Redis, keys: (p: number) => string, partitions: number, decode: (l: string) => T) {
  const out: T[] = [];
  for (let p = 0; p < partitions; p++) {
    const entries = (await redis.xrange(keys(p), '-', '+')) as Array<[string, string[]]>;
    for (const [, fields] of entries) for (const line of entryLines(fields)) out.push(decode(line));
  }
  return out;
}

interface Seed {
  advertiser: number;
  affiliate: number;
  campaign: number;
  token: string;
}

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

let env: TestEnv;
let keys: RedisKeys;
let s: Seed;
let tracker: Tracker;
const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'silent' });

function cfg(extra: Record<string, string> = {}) {
  return loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: env.dir,
    REDIS_PREFIX: env.config.REDIS_PREFIX,
    TRACKER_PORT: '0',
    STREAM_PARTITIONS: '2',
    ...extra,
  });
}

const clicks = () => readStream<ClickEvent>(env.redis, keys.clicks, 2, decodeClick);
const conversions = () => readStream<ConversionEvent>(env.redis, keys.conversions, 2, decodeConversion);
async function lastClick(): Promise<ClickEvent> {
  const all = await clicks();
  all.sort((a, b) => (a.click_id < b.click_id ? -1 : 1));
  return all[all.length - 1]!;
}
const get = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
  fetch(tracker.url + path, { redirect: 'manual', headers, method });

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

describe('GET /c/:code', () => {
  it('redirects with macros filled and URL-encoded, and records the click', async () => {
    const res = await get('/c/good-1?sub1=a%20b%26c&sub2=%C3%A9%2F&x=1&sub5=', {
      'user-agent': 'UA/1.0',
      referer: 'https://pub.example/page',
      'accept-language': 'de-DE',
    });
    assert.equal(res.status, 302);
    const loc = res.headers.get('location')!;
    const m = /^https:\/\/shop\.example\/l\?cid=([^&]+)&c=(\d+)&a=(\d+)&s1=a%20b%26c&s2=%C3%A9%2F&s5=$/.exec(loc);
    assert.ok(m, loc);
    assert.match(m[1]!, UUID7);
    assert.equal(Number(m[2]), s.campaign);
    assert.equal(Number(m[3]), s.affiliate);
    const c = (await clicks()).find((x) => x.click_id === m[1]);
    assert.ok(c);
    assert.equal(c.link_code, 'good-1');
    assert.equal(c.campaign_id, s.campaign);
    assert.equal(c.affiliate_id, s.affiliate);
    assert.equal(c.advertiser_id, s.advertiser);
    assert.equal(c.query, 'sub1=a%20b%26c&sub2=%C3%A9%2F&x=1&sub5=');
    assert.equal(c.user_agent, 'UA/1.0');
    assert.equal(c.referer, 'https://pub.example/page');
    assert.equal(c.accept_language, 'de-DE');
    assert.equal(c.method, 'GET');
    assert.equal(c.ip, '127.0.0.1');
    assert.equal(c.invalid_reason, '');
    assert.equal(c.ts_ms, c.received_ms);
  });

  it('works on /api/v1/track/:code, and applies link default subs only when the click has none', async () => {
    const res = await get('/api/v1/track/dflt_1?sub2=mine&sub5=own');
    assert.equal(res.status, 302);
    assert.match(res.headers.get('location')!, /&s1=def%20one&s2=mine&s5=own$/);
    assert.equal((await lastClick()).query, 'sub2=mine&sub5=own&sub1=def%20one');
    const res2 = await get('/c/dflt_1');
    assert.match(res2.headers.get('location')!, /&s1=def%20one&s2=&s5=def5$/);
    // The recorded query carries the effective sub-ids (the pipeline reads them from it).
    assert.equal((await lastClick()).query, 'sub1=def%20one&sub5=def5');
  });

  it('records HEAD requests and prefetch purpose', async () => {
    const res = await get('/c/good-1', { 'sec-purpose': 'prefetch' }, 'HEAD');
    assert.equal(res.status, 302);
    const c = await lastClick();
    assert.equal(c.method, 'HEAD');
    assert.equal(c.purpose, 'prefetch');
  });

  it('answers 404 for an unknown link and records it as invalid', async () => {
    const res = await get('/c/nope-404?sub1=x');
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { success: false, error: { code: 'NOT_FOUND', message: 'link not found' } });
    const c = await lastClick();
    assert.equal(c.link_code, 'nope-404');
    assert.equal(c.campaign_id, 0);
    assert.equal(c.invalid_reason, 'unknown_link');
    // The negative cache answers the second time the same way.
    assert.equal((await get('/c/nope-404')).status, 404);
  });

  it('paused campaign without fallback: 404, recorded campaign_inactive; disabled link: link_disabled', async () => {
    const res = await get('/c/paused-1');
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { success: false, error: { code: 'NOT_FOUND', message: 'link not found' } });
    assert.equal((await lastClick()).invalid_reason, 'campaign_inactive');
    assert.equal((await get('/c/off-1')).status, 404);
    assert.equal((await lastClick()).invalid_reason, 'link_disabled');
  });

  it('paused campaign with fallback: 302 to the fallback, still recorded invalid', async () => {
    const res = await get('/c/pausedfb-1');
    assert.equal(res.status, 302);
    const c = await lastClick();
    assert.equal(res.headers.get('location'), `https://fallback.example/?c=${c.click_id}`);
    assert.equal(c.invalid_reason, 'campaign_inactive');
    assert.equal(c.link_code, 'pausedfb-1');
  });

  it('takes X-Forwarded-For and X-Event-Time from a trusted proxy (loopback by default)', async () => {
    const t = Date.now() - 3_600_000;
    const res = await get('/c/good-1', { 'x-forwarded-for': '198.51.100.7, 203.0.113.5', 'x-event-time': String(t) });
    assert.equal(res.status, 302);
    const c = await lastClick();
    assert.equal(c.ip, '203.0.113.5');
    assert.equal(c.ts_ms, t);
    assert.notEqual(c.received_ms, t);
  });

  it('ignores X-Forwarded-For and X-Event-Time from an untrusted peer', async () => {
    const other = await startTracker({
      config: cfg({ TRUSTED_PROXIES: '10.0.0.0/8' }),
      logger,
      sql: env.sql,
      redisUrl: env.config.REDIS_URL!,
    });
    try {
      const res = await fetch(`${other.url}/c/good-1`, {
        redirect: 'manual',
        headers: { 'x-forwarded-for': '203.0.113.5', 'x-event-time': '1000' },
      });
      assert.equal(res.status, 302);
      const c = await lastClick();
      assert.equal(c.ip, '127.0.0.1');
      assert.equal(c.ts_ms, c.received_ms);
    } finally {
      await other.close();
    }
  });

  it('is invalidated through pub/sub: a changed row is seen by the next click', async () => {
    assert.match((await get('/c/good-1')).headers.get('location')!, /^https:\/\/shop\.example\//);
    await env.sql`update campaigns set destination_url = 'https://new.example/?id={click_id}' where id = ${s.campaign}`;
    // Still cached: the change is not seen until it is announced.
    assert.match((await get('/c/good-1')).headers.get('location')!, /^https:\/\/shop\.example\//);
    await publishLinkInvalidation(env.redis, keys, { campaign_id: s.campaign });
    const loc = await waitFor('the new destination', async () => (await get('/c/good-1')).headers.get('location')!, {
      until: (l) => l.startsWith('https://new.example/'),
    });
    assert.match(loc, /^https:\/\/new\.example\/\?id=[0-9a-f-]{36}$/);
    // A link disabled then announced by code stops redirecting.
    await env.sql`update links set status = 'disabled' where code = 'dflt_1'`;
    await publishLinkInvalidation(env.redis, keys, { code: 'dflt_1' });
    const status = await waitFor('the disabled link', async () => (await get('/c/dflt_1')).status, {
      until: (st) => st !== 302,
    });
    assert.equal(status, 404);
    await env.sql`update links set status = 'active' where code = 'dflt_1'`;
    await env.sql`update campaigns set destination_url = 'https://shop.example/l?cid={click_id}&c={campaign_id}&a={affiliate_id}&s1={sub1}&s2={sub2}&s5={sub5}' where id = ${s.campaign}`;
    await publishLinkInvalidation(env.redis, keys, { all: true });
  });

  it('refuses bad input with a 4xx envelope', async () => {
    const cases: Array<[string, Record<string, string>, string, number, unknown, string?]> = [
      [
        '/c/a$',
        {},
        'GET',
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'invalid link code',
          details: { code: ['must match [A-Za-z0-9_-]{3,64}'] },
        },
      ],
      [
        `/c/${'x'.repeat(65)}`,
        {},
        'GET',
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'invalid link code',
          details: { code: ['must match [A-Za-z0-9_-]{3,64}'] },
        },
      ],
      [
        `/c/good-1?sub1=${'y'.repeat(256)}&sub3=%01`,
        {},
        'GET',
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'invalid sub-id',
          details: { sub1: ['must be at most 255 characters'], sub3: ['must not contain control characters'] },
        },
      ],
      [
        `/c/good-1?q=${'z'.repeat(5000)}`,
        {},
        'GET',
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'query string too long',
          details: { query: ['must be at most 4096 characters'] },
        },
      ],
      [
        '/c/good-1',
        { 'user-agent': 'u'.repeat(5000) },
        'GET',
        431,
        {
          code: 'HEADERS_TOO_LARGE',
          message: 'header too large',
          details: { 'user-agent': 'must be at most 4096 characters' },
        },
      ],
      [
        '/c/good-1',
        { 'x-event-time': 'yesterday' },
        'GET',
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'invalid X-Event-Time',
          details: { 'x-event-time': ['must be epoch milliseconds, from 2000-01-01 and not in the future'] },
        },
      ],
      [
        '/c/good-1',
        {},
        'POST',
        405,
        { code: 'METHOD_NOT_ALLOWED', message: 'method not allowed; use GET, HEAD' },
        'GET, HEAD',
      ],
      [
        '/api/v1/track/conversion',
        {},
        'DELETE',
        405,
        { code: 'METHOD_NOT_ALLOWED', message: 'method not allowed; use GET, POST' },
        'GET, POST',
      ],
      ['/nothing/here', {}, 'GET', 404, { code: 'NOT_FOUND', message: 'not found' }],
    ];
    const before = (await clicks()).length;
    for (const [path, headers, method, status, error, allow] of cases) {
      const res = await get(path, headers, method);
      assert.equal(res.status, status, `${method} ${path.slice(0, 40)}`);
      assert.deepEqual(await res.json(), { success: false, error }, `${method} ${path.slice(0, 40)}`);
      if (allow) assert.equal(res.headers.get('allow'), allow);
    }
    assert.equal((await clicks()).length, before, 'refused requests are not recorded');
  });
});

describe('GET|POST /api/v1/track/conversion', () => {
  const click_id = '0190f2c4-1111-7abc-8def-0123456789ab';
  const post = (body: string, contentType: string, headers: Record<string, string> = {}, qs = '') =>
    fetch(`${tracker.url}/api/v1/track/conversion${qs}`, {
      method: 'POST',
      headers: { 'content-type': contentType, ...headers },
      body,
    });

  it('accepts a GET postback with the token in the query and records it', async () => {
    const res = await get(
      `/api/v1/track/conversion?token=${s.token}&click_id=${click_id}&goal=sale&amount=12.34&currency=USD&status=approved`,
    );
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      success: true;
      data: { decision: string; conversion_id: string; event_id: string };
    };
    assert.equal(body.success, true);
    assert.equal(body.data.decision, 'accepted');
    assert.match(body.data.conversion_id, UUID7);
    assert.equal(body.data.event_id, `${click_id}:sale`);
    const c = (await conversions()).find((x) => x.conversion_id === body.data.conversion_id);
    assert.ok(c);
    assert.deepEqual(
      { ...c, received_ms: 0, event_time_ms: 0 },
      {
        conversion_id: body.data.conversion_id,
        event_id: `${click_id}:sale`,
        click_id,
        advertiser_id: s.advertiser,
        goal: 'sale',
        amount_minor: 1234,
        currency: 'USD',
        status: 'approved',
        event_time_ms: 0,
        received_ms: 0,
        ip: '127.0.0.1',
      },
    );
    assert.equal(c.event_time_ms, c.received_ms);
  });

  it('accepts JSON and form bodies with the token in X-Postback-Token; amounts in minor units per currency', async () => {
    const t = Date.now() - 86_400_000;
    const cases: Array<[string, string, number, string]> = [
      [
        JSON.stringify({ click_id, event_id: 'e-json', amount: '1500', currency: 'JPY', event_time: t }),
        'application/json',
        1500,
        'JPY',
      ],
      [
        JSON.stringify({ click_id, event_id: 'e-num', amount: 19.99, currency: 'USD' }),
        'application/json; charset=utf-8',
        1999,
        'USD',
      ],
      [
        `click_id=${click_id}&event_id=e-form&amount=1.234&currency=KWD`,
        'application/x-www-form-urlencoded',
        1234,
        'KWD',
      ],
    ];
    for (const [body, type, minor, currency] of cases) {
      const res = await post(body, type, { 'x-postback-token': s.token });
      assert.equal(res.status, 200, body);
      const { data } = (await res.json()) as { data: { conversion_id: string; event_id: string } };
      const c = (await conversions()).find((x) => x.conversion_id === data.conversion_id)!;
      assert.equal(c.amount_minor, minor);
      assert.equal(c.currency, currency);
      assert.equal(c.event_id, data.event_id);
      if (data.event_id === 'e-json') assert.equal(c.event_time_ms, t);
    }
  });

  it('refuses a missing or bad token', async () => {
    const unauthorized = {
      success: false,
      error: { code: 'UNAUTHORIZED', message: 'missing or invalid postback token' },
    };
    const r1 = await get(`/api/v1/track/conversion?click_id=${click_id}`);
    assert.equal(r1.status, 401);
    assert.deepEqual(await r1.json(), unauthorized);
    const r2 = await get(`/api/v1/track/conversion?click_id=${click_id}`, { 'x-postback-token': 'wrong' });
    assert.equal(r2.status, 401);
    assert.deepEqual(await r2.json(), unauthorized);
    const revokedToken = randomBytes(32).toString('base64url');
    await env.sql`insert into postback_tokens (advertiser_id, token_hash, prefix, revoked_at)
      values (${s.advertiser}, ${createHash('sha256').update(revokedToken).digest('hex')}, 'x', now())`;
    const r3 = await get(`/api/v1/track/conversion?click_id=${click_id}&token=${revokedToken}`);
    assert.equal(r3.status, 401);
    assert.deepEqual(await r3.json(), unauthorized);
  });

  it('refuses each malformed field with details', async () => {
    const now = Date.now();
    const cases: Array<[Record<string, string>, Record<string, string>]> = [
      [{}, { click_id: 'is required' }],
      [{ click_id: 'not-a-uuid' }, { click_id: 'must be a UUID' }],
      [{ click_id, status: 'done' }, { status: 'must be one of pending, approved, rejected' }],
      [
        { click_id, amount: '12.345', currency: 'USD' },
        { amount: 'must be a non-negative decimal with at most 2 decimals for USD' },
      ],
      [
        { click_id, amount: '10.5', currency: 'JPY' },
        { amount: 'must be a non-negative decimal with at most 0 decimals for JPY' },
      ],
      [
        { click_id, amount: '-1', currency: 'USD' },
        { amount: 'must be a non-negative decimal with at most 2 decimals for USD' },
      ],
      [{ click_id, amount: '10' }, { currency: 'is required with amount' }],
      [{ click_id, amount: '10', currency: 'usd' }, { currency: 'must be an ISO 4217 currency code' }],
      [{ click_id, currency: 'ABC' }, { currency: 'must be an ISO 4217 currency code' }],
      [{ click_id, goal: 'g'.repeat(256) }, { goal: 'must be at most 255 characters' }],
      [{ click_id, event_id: 'a\u0001b' }, { event_id: 'must not contain control characters' }],
      [{ click_id, event_time: 'soon' }, { event_time: 'must be epoch milliseconds or an ISO 8601 timestamp' }],
      [{ click_id, event_time: String(now + 3_600_000) }, { event_time: 'must not be in the future' }],
      [{ click_id, event_time: '1999-12-31T23:59:59Z' }, { event_time: 'must not be before 2000-01-01' }],
    ];
    for (const [fields, details] of cases) {
      const res = await get(`/api/v1/track/conversion?${new URLSearchParams(fields)}`, { 'x-postback-token': s.token });
      assert.equal(res.status, 400, JSON.stringify(fields));
      assert.deepEqual(await res.json(), {
        success: false,
        error: {
          code: 'VALIDATION_ERROR',
          message: 'invalid conversion postback',
          details: Object.fromEntries(Object.entries(details).map(([k, v]) => [k, [v]])),
        },
      });
    }
    const ok = await get(
      `/api/v1/track/conversion?click_id=${click_id}&event_time=${encodeURIComponent(new Date(now - 60_000).toISOString())}`,
      { 'x-postback-token': s.token },
    );
    assert.equal(ok.status, 200);
  });

  it('refuses bad bodies: too large, wrong type, bad JSON', async () => {
    const headers = { 'x-postback-token': s.token };
    const big = await post(JSON.stringify({ click_id, pad: 'p'.repeat(17_000) }), 'application/json', headers);
    assert.equal(big.status, 413);
    assert.deepEqual(await big.json(), {
      success: false,
      error: { code: 'PAYLOAD_TOO_LARGE', message: 'body must be at most 16384 bytes' },
    });
    const xml = await post('<a/>', 'application/xml', headers);
    assert.equal(xml.status, 415);
    assert.deepEqual(await xml.json(), {
      success: false,
      error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'use application/json or application/x-www-form-urlencoded' },
    });
    const bad = await post('{"click_id":', 'application/json', headers);
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'body is not valid JSON',
        details: { body: ['must be a JSON object'] },
      },
    });
    const arr = await post('[1]', 'application/json', headers);
    assert.equal(arr.status, 400);
    const obj = await post(JSON.stringify({ click_id, goal: { x: 1 } }), 'application/json', headers);
    assert.deepEqual(await obj.json(), {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'invalid conversion postback',
        details: { goal: ['must be a string'] },
      },
    });
  });
});

describe('health', () => {
  it('/healthz and /readyz answer 200', async () => {
    const h = await get('/healthz');
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { success: true, data: { status: 'ok' } });
    const r = await get('/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), {
      success: true,
      data: { ready: true, links_loaded: true, redis: true, spool_writable: true },
    });
  });
});

describe('graceful shutdown', () => {
  it('answers and stores every in-flight click', async () => {
    const t = await startTracker({
      config: cfg({ TRACKER_GROUP_COMMIT_MS: '50', TRACKER_INSTANCE_ID: 'drain' }),
      logger,
      sql: env.sql,
      redisUrl: env.config.REDIS_URL!,
    });
    const before = (await clicks()).length;
    const n = 40;
    const pending = Array.from({ length: n }, (_, i) =>
      fetch(`${t.url}/c/good-1?sub1=drain${i}`, { redirect: 'manual' }).then((r) => r.status),
    );
    for (let i = 0; i < 500 && t.inflight() < n; i++) await new Promise((r) => setTimeout(r, 2));
    assert.ok(t.inflight() > 0, 'clicks are in flight when close() starts');
    await t.close();
    const statuses = await Promise.all(pending);
    assert.deepEqual(statuses, Array(n).fill(302));
    const after = await clicks();
    assert.equal(after.length, before + n);
    const subs = new Set(after.map((c) => /sub1=(drain\d+)/.exec(c.query)?.[1]).filter(Boolean));
    assert.equal(subs.size, n);
  });
});
