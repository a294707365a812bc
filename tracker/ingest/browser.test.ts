/**
 * Browser conversions against a real tracker and Redis (streams, event_id reservations): `/s.js`, the CORS preflight,
 * `POST /api/v1/track/conversion/browser` and the pixel. The pipeline's side (attribution, the key's mode) is at the
 * end; the whole path in a real browser is admin-api/routes/publishable-keys-browser.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import vm from 'node:vm';
import { type ConversionEvent, decodeConversion, encodeConversion } from '../events.ts';
import { attribute } from '../pipeline/conversions.ts';
import { startTracker } from './server.ts';
import { cfg, conversions, env, get, logger, s, tracker, UUID7, useTracker } from './test-helpers.ts';

useTracker();

const ORIGIN = 'http://127.0.0.1:5173';

/** Inserts a publishable key of the seeded advertiser and returns it. */
async function makeKey(mode: 'live' | 'test' = 'live', origins = [ORIGIN], revoked = false): Promise<string> {
  const key = `pk_${mode}_${randomBytes(32).toString('base64url')}`;
  await env.sql`insert into publishable_keys (advertiser_id, mode, key, name, allowed_origins, revoked_at)
    values (${s.advertiser}, ${mode}, ${key}, 'site', ${origins}, ${revoked ? new Date() : null})`;
  return key;
}

/** A real click on the seeded link `good-1`: its click_id from the redirect. */
async function clickId(): Promise<string> {
  const r = await get('/c/good-1');
  const id = new URL(r.headers.get('location')!).searchParams.get('cid')!;
  assert.match(id, UUID7);
  return id;
}

/** A browser conversion as s.js sends it (text/plain JSON). */
function send(key: string, body: Record<string, unknown>, headers: Record<string, string> = { origin: ORIGIN }) {
  return fetch(`${tracker.url}/api/v1/track/conversion/browser?key=${encodeURIComponent(key)}`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain;charset=UTF-8', ...headers },
    body: JSON.stringify(body),
  });
}

const stored = async (conversion_id: string) => (await conversions()).find((c) => c.conversion_id === conversion_id);

describe('GET /s.js', () => {
  it('is a cacheable script of a few KB that parses as plain JavaScript', async () => {
    const r = await get('/s.js');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(r.headers.get('cache-control'), 'public, max-age=3600');
    const text = await r.text();
    assert.ok(text.length > 500 && text.length < 6_000, `${text.length} bytes`);
    new vm.Script(text); // throws on a syntax error
    assert.equal(Buffer.byteLength(text), text.length, 'plain ASCII');
    assert.match(text, /\/api\/v1\/track\/conversion\/browser/);
  });
});

describe('OPTIONS /api/v1/track/conversion/browser (preflight)', () => {
  it('answers 204 with CORS headers only for an origin the key lists', async () => {
    const key = await makeKey();
    const ask = (origin: string, k = key) =>
      fetch(`${tracker.url}/api/v1/track/conversion/browser?key=${k}`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
    const ok = await ask(ORIGIN);
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), ORIGIN);
    assert.equal(ok.headers.get('access-control-allow-methods'), 'POST');
    assert.equal(ok.headers.get('access-control-allow-headers'), 'content-type');
    for (const [origin, k] of [
      ['http://localhost:5173', key],
      ['https://evil.example', key],
      [ORIGIN, `pk_live_${'x'.repeat(43)}`],
      [ORIGIN, 'nope'],
    ] as const) {
      const no = await ask(origin, k);
      assert.equal(no.status, 403, `${origin} ${k}`);
      assert.equal(no.headers.get('access-control-allow-origin'), null);
      assert.equal(((await no.json()) as { error: { code: string } }).error.code, 'ORIGIN_NOT_ALLOWED');
    }
  });
});

describe('POST /api/v1/track/conversion/browser', () => {
  it('records a pending conversion of the key’s advertiser, whatever status and time the page says', async () => {
    const key = await makeKey();
    const click_id = await clickId();
    const r = await send(key, {
      click_id,
      goal: 'purchase',
      amount: 49.9,
      currency: 'USD',
      event_id: 'order-1',
      status: 'approved',
      event_time: 1_000_000_000_000,
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN);
    const body = (await r.json()) as { data: { decision: string; conversion_id: string; event_id: string } };
    assert.equal(body.data.decision, 'accepted');
    assert.equal(body.data.event_id, 'order-1');
    const c = await stored(body.data.conversion_id);
    assert.ok(c);
    assert.deepEqual(
      { ...c, received_ms: 0, event_time_ms: 0 },
      {
        conversion_id: body.data.conversion_id,
        event_id: 'order-1',
        click_id,
        advertiser_id: s.advertiser,
        goal: 'purchase',
        amount_minor: 4990,
        currency: 'USD',
        status: 'pending',
        event_time_ms: 0,
        received_ms: 0,
        ip: '127.0.0.1',
        mode: 'live',
        source: 'browser',
      },
    );
    assert.equal(c.event_time_ms, c.received_ms);

    // The same event_id again (a reload of the thank-you page): the first conversion, nothing new stored.
    const before = (await conversions()).length;
    const again = await send(key, { click_id, goal: 'purchase', event_id: 'order-1' });
    assert.deepEqual(((await again.json()) as { data: unknown }).data, {
      decision: 'duplicate',
      conversion_id: body.data.conversion_id,
      event_id: 'order-1',
    });
    assert.equal((await conversions()).length, before);
  });

  it('carries a customer_id with the key’s mode; without a click_id it is attributed through the customer', async () => {
    const key = await makeKey();
    const r = await send(key, { customer_id: ' cus_b ', goal: 'purchase', event_id: 'order-cus-b' });
    const body = (await r.json()) as { data: { decision: string; conversion_id: string } };
    assert.equal(body.data.decision, 'accepted', JSON.stringify(body));
    const c = await stored(body.data.conversion_id);
    assert.deepEqual([c?.click_id, c?.customer_id, c?.mode, c?.status], ['', 'cus_b', 'live', 'pending']);
  });

  it('refuses an origin the key does not list (or none) with ORIGIN_NOT_ALLOWED and no CORS headers', async () => {
    const key = await makeKey();
    const click_id = await clickId();
    const before = (await conversions()).length;
    const cases: Array<Record<string, string>> = [
      { origin: 'http://localhost:5173' },
      { origin: 'https://127.0.0.1:5173' },
      {},
    ];
    for (const headers of cases) {
      const r = await send(key, { click_id, goal: 'x' }, headers);
      assert.equal(r.status, 403, JSON.stringify(headers));
      assert.equal(r.headers.get('access-control-allow-origin'), null);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'ORIGIN_NOT_ALLOWED');
    }
    assert.equal((await conversions()).length, before);
  });

  it('refuses malformed, unknown and revoked keys with INVALID_KEY; a postback token is not a key', async () => {
    const click_id = await clickId();
    const before = (await conversions()).length;
    for (const key of [
      '',
      'pk_live_short',
      `pk_live_${'a'.repeat(43)}`,
      await makeKey('live', [ORIGIN], true),
      s.token,
    ]) {
      const r = await send(key, { click_id, goal: 'x' });
      assert.equal(r.status, 401, key);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'INVALID_KEY');
    }
    assert.equal((await conversions()).length, before);
  });

  it('answers bad input in the envelope, readable by the page; a foreign click_id is rejected unknown_click', async () => {
    const key = await makeKey();
    const bad = await send(key, { click_id: await clickId(), amount: '1.234', currency: 'USD' });
    assert.equal(bad.status, 400);
    assert.equal(bad.headers.get('access-control-allow-origin'), ORIGIN);
    assert.deepEqual(((await bad.json()) as { error: unknown }).error, {
      code: 'VALIDATION_ERROR',
      message: 'invalid conversion postback',
      details: { amount: ['must be a non-negative decimal with at most 2 decimals for USD'] },
    });
    const foreign = await send(key, { click_id: 'not-ours', goal: 'x' });
    assert.deepEqual(((await foreign.json()) as { data: unknown }).data, {
      decision: 'rejected',
      reason: 'unknown_click',
      event_id: 'not-ours:x',
    });
  });

  it('rate-limits each (key, client IP) in the process: 429 RATE_LIMITED with Retry-After, other IPs unaffected', async () => {
    const limited = await startTracker({
      config: cfg({ BROWSER_CONVERSION_RATE_POINTS: '3', BROWSER_CONVERSION_RATE_WINDOW_S: '60' }),
      logger,
      sql: env.sql,
      redisUrl: env.config.REDIS_URL!,
    });
    try {
      const key = await makeKey();
      const click_id = await clickId();
      const at = (ip: string, i: number) =>
        fetch(`${limited.url}/api/v1/track/conversion/browser?key=${key}`, {
          method: 'POST',
          headers: { origin: ORIGIN, 'content-type': 'text/plain', 'x-forwarded-for': ip },
          body: JSON.stringify({ click_id, goal: `g${i}` }),
        });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await at('203.0.113.9', i)).status);
      assert.deepEqual(statuses, [200, 200, 200, 429]);
      const refused = await at('203.0.113.9', 9);
      assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'RATE_LIMITED');
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
      assert.equal(refused.headers.get('access-control-allow-origin'), ORIGIN);
      assert.equal((await at('203.0.113.10', 0)).status, 200);
    } finally {
      await limited.close();
    }
  });
});

describe('GET /api/v1/track/pixel', () => {
  const pixel = (q: string, referer?: string) =>
    fetch(`${tracker.url}/api/v1/track/pixel?${q}`, { headers: referer ? { referer } : {} });

  it('always answers a 1×1 GIF, and records only a hit from a listed origin with a live key', async () => {
    const key = await makeKey();
    const revoked = await makeKey('live', [ORIGIN], true);
    const click_id = await clickId();
    const cases: Array<[string, string | undefined]> = [
      [`key=${key}&click_id=${click_id}&goal=signup&event_id=px-ok`, `${ORIGIN}/thanks?x=1`],
      [`key=${key}&click_id=${click_id}&goal=signup&event_id=px-foreign`, 'https://evil.example/'],
      [`key=${key}&click_id=${click_id}&goal=signup&event_id=px-none`, undefined],
      [`key=${revoked}&click_id=${click_id}&goal=signup&event_id=px-revoked`, `${ORIGIN}/`],
      [`key=${key}&click_id=${click_id}&amount=abc&currency=USD&event_id=px-bad`, `${ORIGIN}/`],
      ['', undefined],
    ];
    for (const [q, referer] of cases) {
      const r = await pixel(q, referer);
      assert.equal(r.status, 200, q);
      assert.equal(r.headers.get('content-type'), 'image/gif');
      const gif = Buffer.from(await r.arrayBuffer());
      assert.equal(gif.subarray(0, 6).toString('latin1'), 'GIF89a');
      assert.deepEqual([gif.readUInt16LE(6), gif.readUInt16LE(8)], [1, 1]);
    }
    // The pixel answers before it decides: wait for its conversion to reach the stream.
    let got: ConversionEvent[] = [];
    for (let i = 0; i < 50 && !got.some((c) => c.event_id === 'px-ok'); i++) {
      await new Promise((r) => setTimeout(r, 20));
      got = (await conversions()).filter((c) => c.event_id.startsWith('px-'));
    }
    assert.deepEqual(
      got.map((c) => [c.event_id, c.status, c.goal, c.mode, c.source]),
      [['px-ok', 'pending', 'signup', 'live', 'pixel']],
    );
  });
});

describe('the key’s mode', () => {
  it('a pk_test_ key’s conversions carry mode test; the pipeline attributes them only to a campaign of that mode', async () => {
    const key = await makeKey('test');
    const r = await send(key, { click_id: await clickId(), goal: 'trial' });
    const body = (await r.json()) as { data: { conversion_id: string } };
    const c = (await stored(body.data.conversion_id))!;
    assert.equal(c.mode, 'test');
    assert.equal(c.source, 'browser');

    // Encoding: S2S lines keep their 11 fields; a 12th is a browser key's mode, a 13th its source, a 14th only a
    // customer reference (tracker/events.test.ts).
    const { mode: _, source: _s, ...s2s } = c;
    assert.equal(encodeConversion(s2s).split('\t').length, 11);
    assert.equal(encodeConversion(c).split('\t').length, 13);
    assert.deepEqual(decodeConversion(encodeConversion(c)), c);
    assert.deepEqual(decodeConversion(encodeConversion({ ...c, source: 'pixel' })), { ...c, source: 'pixel' });
    // A line of a tracker from before the source field: 12 fields, a browser conversion.
    assert.deepEqual(decodeConversion(`${encodeConversion(s2s)}\ttest`), c);
    assert.throws(() => decodeConversion(`${encodeConversion(s2s)}\tother`), /bad mode/);
    assert.throws(() => decodeConversion(`${encodeConversion(s2s)}\ttest\tother`), /bad source/);
    assert.throws(() => decodeConversion(`${encodeConversion(c)}\tx\ty`), /expected 11 to 14 fields, got 15/);

    const click = {
      advertiser_id: s.advertiser,
      invalid_reason: '',
      ts_ms: c.event_time_ms - 60_000,
      fraud_score: 0,
      fraud_reasons: [],
    } as never;
    const campaign = (mode: 'live' | 'test') =>
      ({ status: 'active', mode, attribution_window_days: 30, payout_model: 'CPC', goals: [] }) as never;
    assert.equal(attribute(c, click, campaign('live'), 30).type, 'reject');
    assert.deepEqual(attribute(c, click, campaign('live'), 30), {
      type: 'reject',
      reason: 'unknown_click',
      click: null,
      campaign: null,
    });
    assert.equal(attribute(c, click, campaign('test'), 30).type, 'ok');
  });
});
