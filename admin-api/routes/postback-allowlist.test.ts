/**
 * `/postback-allowlist` over the real API and real trackers (Postgres, Redis pub/sub): the list is validated and
 * normalised, a postback from outside it is refused 403 IP_NOT_ALLOWED, counted and listed, CIDR ranges and IPv6
 * match, X-Forwarded-For counts only from a trusted proxy, and a change (or a token revocation) reaches a tracker
 * at once, long before its 30 s token cache would expire.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../infra/index.ts';
import { waitFor } from '../../infra/testing/index.ts';
import { startTracker } from '../../tracker/index.ts';
import { startTestApi, type TestApi, type TestUser, validationFailed } from '../test-helpers.ts';

type Tracker = Awaited<ReturnType<typeof startTracker>>;

let t: TestApi;
let adv: TestUser;
let token: string;
/** Trusts loopback (the default TRUSTED_PROXIES): X-Forwarded-For names the client. */
let proxied: Tracker;
/** Trusts no proxy in front of it: X-Forwarded-For is ignored, the peer (127.0.0.1) is the client. */
let direct: Tracker;
const CLICK_ID = '0190f2c4-1111-7abc-8def-0123456789ab';
let seq = 0;

before(async () => {
  t = await startTestApi({ env: { TRACKER_PORT: '0' } });
  adv = await t.user('advertiser');
  token = (await t.call('post', '/postback-tokens', { token: adv.token })).body.data.token;
  const logger = createLogger({ level: 'silent' });
  const opts = { logger, sql: t.env.sql, redisUrl: t.env.config.REDIS_URL! };
  proxied = await startTracker({ ...opts, config: t.env.config });
  direct = await startTracker({ ...opts, config: { ...t.env.config, TRUSTED_PROXIES: ['192.0.2.1/32'] } });
});
after(async () => {
  await proxied.close();
  await direct.close();
  await t.close();
});

/** Posts one conversion through `tracker`, from `xff` when given; returns the status and body. */
async function postback(tracker: Tracker, xff?: string, tok = token) {
  const event_id = `e-${++seq}`;
  const r = await fetch(`${tracker.url}/api/v1/track/conversion`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-postback-token': tok,
      ...(xff ? { 'x-forwarded-for': xff } : {}),
    },
    body: JSON.stringify({ click_id: CLICK_ID, event_id, amount: '1.00', currency: 'USD' }),
  });
  return {
    status: r.status,
    body: (await r.json()) as { success: boolean; data?: { decision: string }; error?: unknown },
    event_id,
  };
}

/** Every field of every entry in the conversion streams (what the tracker stored; lines are tab-separated). */
async function storedFields(): Promise<Set<string>> {
  const out = new Set<string>();
  for (let p = 0; p < t.env.config.STREAM_PARTITIONS; p++)
    for (const [, fields] of await t.env.redis.xrange(t.env.keys.conversions(p), '-', '+'))
      for (const f of fields) for (const part of f.split('\t')) out.add(part);
  return out;
}

async function setList(entries: string[]) {
  return t.call('put', '/postback-allowlist', { token: adv.token, body: { entries } });
}

async function refusedCount(tracker: Tracker): Promise<number> {
  const text = await tracker.registry.metrics();
  return Number(/^tracker_postbacks_ip_refused_total (\d+)/m.exec(text)?.[1] ?? Number.NaN);
}

describe('postback IP allowlist', () => {
  test('entries are validated (IPv4, IPv6, CIDR, at most 100) and stored normalised', async () => {
    const empty = await t.call('get', '/postback-allowlist', { token: adv.token });
    assert.deepEqual(empty.body.data, { entries: [], updated_at: null });
    const bad = await setList(['203.0.113.7', 'example.com', '10.0.0.0/33', '2001:db8::/129', '1.2.3.4/x']);
    assert.equal(bad.status, 400);
    const msg = 'must be an IPv4 or IPv6 address or CIDR range (e.g. 203.0.113.0/24)';
    assert.deepEqual(
      bad.body,
      validationFailed({
        'entries.1': [msg],
        'entries.2': ['prefix must be 0..32'],
        'entries.3': ['prefix must be 0..128'],
        'entries.4': ['prefix must be 0..32'],
      }),
    );
    const tooMany = await setList(Array.from({ length: 101 }, (_, i) => `10.0.${i}.1`));
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.body.error.code, 'VALIDATION_ERROR');
    const ok = await setList(['10.0.0.1/32', ' 2001:DB8::/32 ', '::ffff:192.0.2.9', '10.0.0.1', '2001:db8::1/128']);
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.body.data.entries, ['10.0.0.1', '2001:db8::/32', '192.0.2.9', '2001:db8::1']);
    const read = await t.call('get', '/postback-allowlist', { token: adv.token });
    assert.deepEqual(read.body.data.entries, ok.body.data.entries);
    assert.ok(read.body.data.updated_at);
    const aff = await t.user('affiliate');
    assert.equal((await t.call('put', '/postback-allowlist', { token: aff.token, body: { entries: [] } })).status, 403);
    assert.equal((await setList([])).status, 200);
  });

  test('a real tracker accepts postbacks from inside the list only: single IPs, CIDR ranges, IPv6', async () => {
    // No list: any address; this also caches the token in the tracker (30 s).
    assert.equal((await postback(proxied, '198.51.100.1')).body.data?.decision, 'accepted');
    const before = await refusedCount(proxied);
    assert.equal((await setList(['203.0.113.0/24', '192.0.2.7', '2001:db8::/32'])).status, 200);
    // The change reaches the tracker through pub/sub, not the cache's expiry.
    const refused = await waitFor('the new list in the tracker', () => postback(proxied, '198.51.100.1'), {
      until: (r) => r.status === 403,
      timeoutMs: 2_000,
    });
    assert.deepEqual(refused.body, {
      success: false,
      error: { code: 'IP_NOT_ALLOWED', message: 'postbacks from 198.51.100.1 are not allowed' },
    });
    for (const ip of [
      '203.0.113.1',
      '203.0.113.254',
      '192.0.2.7',
      '2001:db8::1',
      '2001:db8:ffff::42',
      '::ffff:203.0.113.9',
    ]) {
      const r = await postback(proxied, ip);
      assert.equal(r.status, 200, `${ip}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.data?.decision, 'accepted', ip);
    }
    const outside = ['203.0.114.1', '192.0.2.8', '2001:db9::1', '10.1.2.3'];
    const refusedIds = [refused.event_id];
    for (const ip of outside) {
      const r = await postback(proxied, ip);
      assert.equal(r.status, 403, ip);
      refusedIds.push(r.event_id);
    }
    // Refused before anything is stored, and counted.
    const stored = await storedFields();
    for (const id of refusedIds) assert.ok(!stored.has(id), `${id} must not be stored`);
    assert.ok(stored.has(`e-${seq - outside.length}`), 'the accepted ones are stored');
    assert.equal((await refusedCount(proxied)) - before, refusedIds.length);

    // The advertiser lists them, newest first, with the address and the token's prefix (never the token).
    const page1 = await waitFor(
      'the refusals recorded',
      () => t.call('get', '/postback-allowlist/refusals?limit=3', { token: adv.token }),
      { until: (r) => r.body.data?.length === 3, timeoutMs: 2_000 },
    );
    assert.deepEqual(
      page1.body.data.map((r: { ip: string }) => r.ip),
      ['10.1.2.3', '2001:db9::1', '192.0.2.8'],
    );
    assert.equal(page1.body.data[0].token_prefix, token.slice(0, 8));
    assert.ok(!page1.text.includes(token));
    assert.ok(Date.parse(page1.body.data[0].received_at) > Date.now() - 60_000);
    const page2 = await t.call('get', `/postback-allowlist/refusals?limit=3&cursor=${page1.body.meta.next_cursor}`, {
      token: adv.token,
    });
    assert.deepEqual(
      page2.body.data.map((r: { ip: string }) => r.ip),
      ['203.0.114.1', '198.51.100.1'],
    );
    assert.equal(page2.body.meta.next_cursor, null);
    const other = await t.user('advertiser');
    const theirs = await t.call('get', '/postback-allowlist/refusals', { token: other.token });
    assert.deepEqual(theirs.body.data, []);

    // An empty list opens it again, at once.
    assert.equal((await setList([])).status, 200);
    await waitFor('the empty list in the tracker', () => postback(proxied, '10.1.2.3'), {
      until: (r) => r.status === 200,
      timeoutMs: 2_000,
    });
  });

  test('X-Forwarded-For is believed only from a trusted proxy', async () => {
    assert.equal((await setList(['203.0.113.0/24'])).status, 200);
    // Through the loopback proxy the header names the client; straight from an untrusted peer it is ignored.
    await waitFor('the list in the tracker', () => postback(proxied, '198.51.100.1'), {
      until: (r) => r.status === 403,
      timeoutMs: 2_000,
    });
    assert.equal((await postback(proxied, '203.0.113.5')).status, 200);
    const spoofed = await postback(direct, '203.0.113.5');
    assert.equal(spoofed.status, 403);
    assert.deepEqual(spoofed.body.error, {
      code: 'IP_NOT_ALLOWED',
      message: 'postbacks from 127.0.0.1 are not allowed',
    });
    // A proxy chain: the right-most untrusted hop is the client, whatever the client wrote to the left of it.
    assert.equal((await postback(proxied, '203.0.113.5, 198.51.100.1')).status, 403);
    assert.equal((await postback(proxied, '198.51.100.1, 203.0.113.5')).status, 200);
    // The peer itself may be listed.
    assert.equal((await setList(['127.0.0.1'])).status, 200);
    await waitFor('127.0.0.1 allowed', () => postback(direct), { until: (r) => r.status === 200, timeoutMs: 2_000 });
    assert.equal((await setList([])).status, 200);
  });

  test('revoking a token reaches the trackers at once', async () => {
    const c = await t.call('post', '/postback-tokens', { token: adv.token });
    const fresh = c.body.data.token as string;
    assert.equal((await postback(proxied, undefined, fresh)).status, 200);
    await t.call('delete', `/postback-tokens/${c.body.data.id}`, { token: adv.token });
    const r = await waitFor('the revocation in the tracker', () => postback(proxied, undefined, fresh), {
      until: (x) => x.status === 401,
      timeoutMs: 2_000,
    });
    assert.equal((r.body.error as { code: string }).code, 'UNAUTHORIZED');
  });
});
