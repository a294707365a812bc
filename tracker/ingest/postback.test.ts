import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import postgres from 'postgres';
import { partitionOf } from '../events.ts';
import { TokenCache } from './conversion.ts';
import { conversions, env, get, keys, post, s, UUID7, useTracker } from './test-helpers.ts';

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
      [{ click_id: 'x'.repeat(256) }, { click_id: 'must be at most 255 characters' }],
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
      // Leads and recurring commissions: a customer reference instead of a click, renewals.
      [{ customer_id: 'c'.repeat(256), event_id: 'e' }, { customer_id: 'must be at most 255 characters' }],
      [{ customer_id: 'a\u0001b', event_id: 'e' }, { customer_id: 'must not contain control characters' }],
      [{ customer_id: 'cus_1' }, { event_id: 'is required without click_id' }],
      [{ customer_id: '   ', event_id: 'e' }, { click_id: 'is required' }],
      [{ click_id, goal: 'renewal' }, { customer_id: 'is required for a renewal' }],
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

  it("a customer_id travels as the 14th field, on the customer's partition whatever the click (renewals without one)", async () => {
    const at = (kind: string) =>
      get(`/api/v1/track/conversion?${kind}`, { 'x-postback-token': s.token }).then(
        async (r) => (await r.json()) as { data: { decision: string; conversion_id: string } },
      );
    const lead = await at(`click_id=${click_id}&customer_id=%20cus_route%20&goal=lead_signup&event_id=route-lead`);
    const renewal = await at('customer_id=cus_route&goal=renewal&event_id=route-r1&amount=9.99&currency=EUR');
    // A renewal that names a click that is not ours is still attributed through its customer, not refused here.
    const foreign = await at('click_id=not-ours&customer_id=cus_route&goal=renewal&event_id=route-r2');
    for (const r of [lead, renewal, foreign]) assert.equal(r.data.decision, 'accepted');
    const all = await conversions();
    const got = (id: string) => all.find((c) => c.conversion_id === id)!;
    assert.equal(got(lead.data.conversion_id).customer_id, 'cus_route', 'trimmed');
    assert.equal(got(renewal.data.conversion_id).click_id, '');
    assert.equal(got(renewal.data.conversion_id).amount_minor, 999);
    // One partition for the customer: its conversion ids carry it in their last byte (./uuid7.ts).
    const tags = [lead, renewal, foreign].map((r) => Number.parseInt(r.data.conversion_id.slice(-2), 16) % 2);
    assert.deepEqual(tags, Array(3).fill(partitionOf(`${s.advertiser}\tcus_route`, 2)));
    // Without a customer a non-UUID click is refused at once, as before.
    const plain = await at('click_id=not-ours&event_id=route-x');
    assert.equal((plain.data as unknown as { reason: string }).reason, 'unknown_click');
  });

  describe('answers that say what is known', () => {
    const fresh = () => {
      // A UUIDv7 of now (version 7, variant 8), as the tracker issues them.
      const t = Date.now().toString(16).padStart(12, '0');
      const r = randomBytes(10).toString('hex');
      return `${t.slice(0, 8)}-${t.slice(8)}-7${r.slice(0, 3)}-8${r.slice(3, 6)}-${r.slice(6, 18)}`;
    };
    const postback = async (q: Record<string, string>, token = s.token) =>
      (await (
        await get(`/api/v1/track/conversion?${new URLSearchParams(q)}`, { 'x-postback-token': token })
      ).json()) as {
        data: { decision: string; conversion_id?: string; reason?: string; event_id: string };
      };
    const decision = (eventId: string, token = s.token) =>
      get(`/api/v1/track/conversion/${encodeURIComponent(eventId)}`, { 'x-postback-token': token });

    it('a duplicate event_id answers duplicate with the original conversion_id, and reaches the stream once', async () => {
      const eventId = `dup-${randomBytes(4).toString('hex')}`;
      const first = await postback({ click_id: fresh(), event_id: eventId });
      assert.equal(first.data.decision, 'accepted');
      // Another click, same event_id: still the same conversion of this advertiser.
      const again = await Promise.all([1, 2, 3].map(() => postback({ click_id: fresh(), event_id: eventId })));
      for (const a of again)
        assert.deepEqual(a.data, { decision: 'duplicate', conversion_id: first.data.conversion_id, event_id: eventId });
      const stored = (await conversions()).filter((c) => c.event_id === eventId);
      assert.deepEqual(
        stored.map((c) => c.conversion_id),
        [first.data.conversion_id],
      );
    });

    it('raced postbacks of one event_id: exactly one accepted and stored, the others duplicate of it or retry', async () => {
      const eventId = `race-${randomBytes(4).toString('hex')}`;
      const answers = await Promise.all(
        Array.from({ length: 8 }, () => postback({ click_id: fresh(), event_id: eventId })),
      );
      const accepted = answers.filter((a) => a.data?.decision === 'accepted');
      assert.equal(accepted.length, 1);
      const id = accepted[0]!.data.conversion_id;
      const stored = (await conversions()).filter((c) => c.event_id === eventId);
      assert.deepEqual(
        stored.map((c) => c.conversion_id),
        [id],
      );
      // The others came while the first was being stored (retry) or after (duplicate of it); a retry names it.
      for (const a of answers.filter((x) => x !== accepted[0])) {
        if (a.data) assert.deepEqual(a.data, { decision: 'duplicate', conversion_id: id, event_id: eventId });
        else assert.equal((a as unknown as { error: { code: string } }).error.code, 'SERVICE_UNAVAILABLE');
      }
      const retried = await postback({ click_id: fresh(), event_id: eventId });
      assert.deepEqual(retried.data, { decision: 'duplicate', conversion_id: id, event_id: eventId });
    });

    it('a reservation its tracker never confirmed (killed between reserve and XADD) answers retry, never its id', async () => {
      const eventId = `orphan-${randomBytes(4).toString('hex')}`;
      const orphan = '0190f2c4-2222-7abc-8def-0123456789ab';
      // What a tracker killed -9 right after its reserve leaves behind: a pending reservation, nothing in the stream.
      await env.redis.set(keys.eventId(s.advertiser, eventId), `?${orphan}`, 'PX', 1_500);
      const res = await get(
        `/api/v1/track/conversion?${new URLSearchParams({ token: s.token, click_id: fresh(), event_id: eventId })}`,
      );
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), '1');
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'SERVICE_UNAVAILABLE');
      assert.equal((await decision(eventId)).status, 404, 'a pending reservation is not a known conversion');
      // Once it expires the retry is stored and accepted; from then on duplicates name that id.
      await new Promise((r) => setTimeout(r, 1_600));
      const a = await postback({ click_id: fresh(), event_id: eventId });
      assert.equal(a.data.decision, 'accepted');
      assert.notEqual(a.data.conversion_id, orphan);
      const again = await postback({ click_id: fresh(), event_id: eventId });
      assert.deepEqual(again.data, { decision: 'duplicate', conversion_id: a.data.conversion_id, event_id: eventId });
      const stored = (await conversions()).filter((c) => c.event_id === eventId);
      assert.deepEqual(
        stored.map((c) => c.conversion_id),
        [a.data.conversion_id],
      );
    });

    it('a click_id that is not an id of this system answers rejected unknown_click and stores nothing', async () => {
      const before = (await conversions()).length;
      const future = `${(Date.now() + 86_400_000)
        .toString(16)
        .padStart(12, '0')
        .replace(/^(.{8})(.{4})$/, '$1-$2')}-7abc-8def-0123456789ab`;
      for (const click_id of [
        'not-a-uuid',
        '0190f2c4-1111-4abc-8def-0123456789ab',
        future,
        '0190f2c4-1111-7abc-cdef-0123456789ab',
      ]) {
        const a = await postback({ click_id, event_id: `unk-${click_id}` });
        assert.deepEqual(
          a.data,
          { decision: 'rejected', reason: 'unknown_click', event_id: `unk-${click_id}` },
          click_id,
        );
      }
      assert.equal((await conversions()).length, before);
    });

    it('GET /api/v1/track/conversion/:event_id: received, then the Postgres decision; other advertisers get 404', async () => {
      const eventId = `dec/${randomBytes(4).toString('hex')} x`;
      const click_id = fresh();
      const a = await postback({ click_id, event_id: eventId });
      const r1 = await decision(eventId);
      assert.equal(r1.status, 200);
      assert.deepEqual(((await r1.json()) as { data: unknown }).data, {
        event_id: eventId,
        conversion_id: a.data.conversion_id,
        status: 'received',
      });
      // The pipeline's row (as it stores it), rejected for a reason.
      await env.sql`insert into conversions (id, advertiser_id, event_id, click_id, status, reject_reason, revenue, currency, event_time)
        values (${a.data.conversion_id!}, ${s.advertiser}, ${eventId}, ${click_id}, 'rejected', 'unknown_click', 0, 'EUR', now())`;
      const r2 = await decision(eventId);
      const body = ((await r2.json()) as { data: Record<string, unknown> }).data;
      assert.equal(body.status, 'rejected');
      assert.equal(body.reject_reason, 'unknown_click');
      assert.equal(body.conversion_id, a.data.conversion_id);
      assert.equal(body.currency, 'EUR');
      // Another advertiser's token: as unknown.
      const other = await env.sql<{ id: number }[]>`insert into users (role, name, email, password_hash)
        values ('advertiser', 'B', ${`b-${randomBytes(4).toString('hex')}@x.io`}, 'x') returning id`;
      const otherToken = randomBytes(32).toString('base64url');
      await env.sql`insert into postback_tokens (advertiser_id, token_hash, prefix)
        values (${other[0]!.id}, ${createHash('sha256').update(otherToken).digest('hex')}, 'b')`;
      const r3 = await decision(eventId, otherToken);
      assert.equal(r3.status, 404);
      assert.equal(((await r3.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
      assert.equal((await decision('no-such-event')).status, 404);
      assert.equal((await decision(eventId, 'wrong')).status, 401);
    });
  });
});
