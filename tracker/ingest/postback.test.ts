import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import postgres from 'postgres';
import { TokenCache } from './conversion.ts';
import { conversions, env, get, post, s, UUID7, useTracker } from './test-helpers.ts';

useTracker();

describe('GET|POST /api/v1/track/conversion', () => {
  const click_id = '0190f2c4-1111-7abc-8def-0123456789ab';

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

  it('an unknown token is a pure read: N posts → 401 each, no write statement on postback_tokens, no row changed', async () => {
    // A statement-level trigger fires for every INSERT/UPDATE/DELETE statement, even one that matches no row.
    await env.sql.unsafe(`
      create table token_writes (at timestamptz default now());
      create function count_token_writes() returns trigger language plpgsql as
        $$ begin insert into token_writes default values; return null; end $$;
      create trigger count_token_writes after insert or update or delete on postback_tokens
        for each statement execute function count_token_writes();`);
    try {
      const before = await env.sql`select * from postback_tokens order by id`;
      const junk = Array.from({ length: 20 }, (_, i) => (i % 2 ? 'same-junk' : randomBytes(16).toString('hex')));
      for (const token of junk) {
        const r = await post(JSON.stringify({ click_id }), 'application/json', { 'x-postback-token': token });
        assert.equal(r.status, 401);
        assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
      }
      assert.deepEqual(await env.sql`select * from postback_tokens order by id`, before);
      assert.equal((await env.sql`select count(*)::int as n from token_writes`)[0]!.n, 0);
      // The trigger sees writes: a live token not yet cached still records its last use.
      const live = randomBytes(32).toString('base64url');
      await env.sql`insert into postback_tokens (advertiser_id, token_hash, prefix)
        values (${s.advertiser}, ${createHash('sha256').update(live).digest('hex')}, 'live')`;
      await env.sql`truncate token_writes`;
      const ok = await post(JSON.stringify({ click_id, event_id: 'e-live' }), 'application/json', {
        'x-postback-token': live,
      });
      assert.equal(ok.status, 200);
      assert.equal((await env.sql`select count(*)::int as n from token_writes`)[0]!.n, 1);
    } finally {
      await env.sql.unsafe(`drop trigger count_token_writes on postback_tokens;
        drop function count_token_writes(); drop table token_writes;`);
    }
  });

  it('an unknown token resolves over a read-only connection (no write of any kind), and is negative-cached', async () => {
    const ro = postgres(env.config.DATABASE_URL!, { max: 1, connection: { default_transaction_read_only: true } });
    try {
      const cache = new TokenCache(ro);
      assert.equal(await cache.advertiser('no-such-token'), null);
      await ro.end();
      // Cached: answered without the (now closed) connection.
      assert.equal(await cache.advertiser('no-such-token'), null);
    } finally {
      await ro.end();
    }
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
      // Past MAX_MINOR_UNITS (10^12 minor units, infra/contracts.ts §6).
      [{ click_id, amount: '10000000000.01', currency: 'USD' }, { amount: 'must be at most 10000000000 USD' }],
      [{ click_id, amount: '1000000000001', currency: 'JPY' }, { amount: 'must be at most 1000000000000 JPY' }],
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
});
