/**
 * Where a campaign may redirect (issue #12 item 5), over the real admin API and a real tracker on the same Postgres
 * and Redis: control characters and host macros are refused, the normalised href is stored and its macros still
 * expand in the tracker, only the approved website's host (or a subdomain) or an admin-approved host is accepted, and
 * moving a live campaign's host sends it back to an admin.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../infra/index.ts';
import { waitFor } from '../../infra/testing/index.ts';
import { startTracker } from '../../tracker/index.ts';
import { approvedWebsite, startTestApi, type TestApi, type TestUser, validationFailed } from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let aff: TestUser;
let websiteId: number;
let tracker: Awaited<ReturnType<typeof startTracker>>;
let seq = 0;

before(async () => {
  t = await startTestApi();
  admin = await t.user('admin');
  adv = await t.user('advertiser');
  aff = await t.user('affiliate');
  // Not under example.com (approved for every test file by startTestApi); `www.` covers shop.example.net.
  websiteId = await approvedWebsite(t, adv, admin, { url: 'https://www.shop.example.net', name: 'Net shop' });
  tracker = await startTracker({
    config: { ...t.env.config, TRACKER_PORT: 0 },
    logger: createLogger({ level: 'silent' }),
    sql: t.env.sql,
    redisUrl: t.env.config.REDIS_URL!,
  });
});
after(async () => {
  await tracker?.close();
  await t.close();
});

const create = (extra: Record<string, unknown>) =>
  t.call('post', '/campaigns', {
    token: adv.token,
    body: {
      website_id: websiteId,
      name: 'Dest',
      destination_url: 'https://shop.example.net/?c={click_id}',
      payout_model: 'CPA',
      payout: 500,
      revenue: 700,
      currency: 'USD',
      ...extra,
    },
  });

async function activeCampaign(extra: Record<string, unknown> = {}): Promise<number> {
  const c = await create(extra);
  assert.equal(c.status, 201, c.text);
  const a = await t.call('post', `/campaigns/${c.body.data.id}/status`, {
    token: adv.token,
    body: { status: 'active' },
  });
  assert.equal(a.status, 200, a.text);
  return c.body.data.id;
}

/** A link of `aff` to campaign `id` (straight into Postgres: the join flow is not what is tested here). */
async function linkTo(id: number): Promise<string> {
  const code = `dest_${++seq}`;
  await t.env.sql`insert into links (code, campaign_id, affiliate_id) values (${code}, ${id}, ${aff.id})`;
  return code;
}

const click = (path: string) => fetch(tracker.url + path, { redirect: 'manual' });

describe('campaign destinations', () => {
  test('control characters are refused (400), not dropped by the URL parser and stored raw', async () => {
    for (const bad of [
      'https://shop.example.net/\r\nSet-Cookie: a=b',
      'https://shop.example.net/a\tb',
      'https://shop.example.net/\nx',
      'https://shop.example.net/\u0085',
      'https://shop.example.net/\u2028',
    ]) {
      const d = await create({ destination_url: bad });
      assert.deepEqual(d.body, validationFailed({ destination_url: ['must not contain control characters'] }), bad);
      const f = await create({ fallback_url: bad });
      assert.deepEqual(f.body, validationFailed({ fallback_url: ['must not contain control characters'] }), bad);
    }
  });

  test('macros are refused in the scheme, user info, host and port', async () => {
    for (const bad of [
      'https://{sub1}/',
      'https://{sub1}.shop.example.net/',
      'https://shop.example.net{sub1}/',
      'https:{sub1}',
      '{sub1}://shop.example.net/',
      'https://{sub1}@shop.example.net/',
    ]) {
      const r = await create({ destination_url: bad });
      assert.deepEqual(
        r.body,
        validationFailed({ destination_url: ['macros are allowed only in the path, query and fragment'] }),
        bad,
      );
    }
    const creds = await create({ destination_url: 'https://shop.example.net@evil.example.org/' });
    assert.deepEqual(creds.body, validationFailed({ destination_url: ['must not carry a user name or password'] }));
  });

  test('the normalised href is stored, and the tracker fills its macros (URL-encoded)', async () => {
    const c = await create({
      destination_url: 'HTTPS://Shop.Example.NET:443/l/{sub1}?cid={click_id}&a={affiliate_id}#{sub2}',
      fallback_url: 'https://shop.example.net/sorry page',
    });
    assert.equal(c.status, 201, c.text);
    assert.equal(
      c.body.data.destination_url,
      'https://shop.example.net/l/{sub1}?cid={click_id}&a={affiliate_id}#{sub2}',
    );
    assert.equal(c.body.data.fallback_url, 'https://shop.example.net/sorry%20page');
    const [row] = await t.env.sql`select destination_url from campaigns where id = ${c.body.data.id}`;
    assert.equal(row!.destination_url, c.body.data.destination_url);
    await t.call('post', `/campaigns/${c.body.data.id}/status`, { token: adv.token, body: { status: 'active' } });
    const code = await linkTo(c.body.data.id);
    const r = await click(`/c/${code}?sub1=a%20b%26x%3D1/..%2F&sub2=z`);
    assert.equal(r.status, 302);
    assert.match(
      r.headers.get('location')!,
      new RegExp(`^https://shop\\.example\\.net/l/a%20b%26x%3D1%2F..%2F\\?cid=[0-9a-f-]{36}&a=${aff.id}#z$`),
    );
  });

  test("only the approved website's host, its subdomains or an admin-approved host (422 otherwise)", async () => {
    for (const ok of ['https://shop.example.net/', 'https://www.shop.example.net/', 'https://go.shop.example.net/x'])
      assert.equal((await create({ destination_url: ok })).status, 201, ok);
    const notApproved = (field: string, host: string) => ({
      success: false,
      error: {
        code: 'DESTINATION_NOT_APPROVED',
        message: 'the campaign may not redirect to this host',
        details: {
          [field]: [
            `host ${host} is neither the campaign's approved website (shop.example.net), a subdomain of it, ` +
              'nor a host an admin approved',
          ],
        },
      },
    });
    const lookalike = await create({ destination_url: 'https://shop.example.net.evil.example.org/' });
    assert.equal(lookalike.status, 422);
    assert.deepEqual(lookalike.body, notApproved('destination_url', 'shop.example.net.evil.example.org'));
    const fb = await create({ fallback_url: 'https://evil.example.org/' });
    assert.deepEqual(fb.body, notApproved('fallback_url', 'evil.example.org'));
    // A PATCH is held to the same rule.
    const id = (await create({})).body.data.id;
    const p = await t.call('patch', `/campaigns/${id}`, {
      token: adv.token,
      body: { destination_url: 'https://evil.example.org/?c={click_id}' },
    });
    assert.deepEqual(p.body, notApproved('destination_url', 'evil.example.org'));
    // Once an admin approves the host, it and its subdomains are accepted.
    const h = await t.call('post', '/approved-hosts', {
      token: admin.token,
      body: { host: 'evil.example.org', reason: 'partner' },
    });
    assert.equal(h.status, 201, h.text);
    assert.equal((await create({ destination_url: 'https://lp.evil.example.org/' })).status, 201);
    await t.call('delete', `/approved-hosts/${h.body.data.id}`, { token: admin.token });
    assert.equal((await create({ destination_url: 'https://lp.evil.example.org/' })).status, 422);
  });

  test("moving a live campaign's host (as its owner) pauses it until an admin activates it", async () => {
    const id = await activeCampaign();
    const code = await linkTo(id);
    assert.equal((await click(`/c/${code}`)).status, 302);
    // Path and query changes stay live.
    const path = await t.call('patch', `/campaigns/${id}`, {
      token: adv.token,
      body: { destination_url: 'https://shop.example.net/other?c={click_id}' },
    });
    assert.equal(path.body.data.status, 'active', path.text);
    const moved = await t.call('patch', `/campaigns/${id}`, {
      token: adv.token,
      body: { destination_url: 'https://go.shop.example.net/?c={click_id}' },
    });
    assert.equal(moved.status, 200, moved.text);
    assert.equal(moved.body.data.status, 'paused');
    assert.equal(moved.body.data.destination_url, 'https://go.shop.example.net/?c={click_id}');
    // The tracker answers as for any paused campaign (no fallback: 404), never the new host.
    const st = await waitFor('the paused campaign', async () => (await click(`/c/${code}`)).status, {
      until: (s) => s !== 302,
    });
    assert.equal(st, 404);
    const self = await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'active' } });
    assert.equal(self.status, 422);
    assert.equal(self.body.error.code, 'REVIEW_REQUIRED');
    // Pausing first does not dodge the review: a paused campaign's host change needs it too.
    const id2 = await activeCampaign();
    await t.call('post', `/campaigns/${id2}/status`, { token: adv.token, body: { status: 'paused' } });
    await t.call('patch', `/campaigns/${id2}`, {
      token: adv.token,
      body: { fallback_url: 'https://go.shop.example.net/' },
    });
    const self2 = await t.call('post', `/campaigns/${id2}/status`, { token: adv.token, body: { status: 'active' } });
    assert.equal(self2.body.error?.code, 'REVIEW_REQUIRED', self2.text);
    // The admin reviews and activates; the review is then cleared (the owner may pause and resume again).
    const ok = await t.call('post', `/campaigns/${id}/status`, { token: admin.token, body: { status: 'active' } });
    assert.equal(ok.body.data.status, 'active', ok.text);
    const loc = await waitFor(
      'the reviewed destination',
      async () => (await click(`/c/${code}`)).headers.get('location'),
      {
        until: (l) => l?.startsWith('https://go.shop.example.net/') ?? false,
      },
    );
    assert.match(loc!, /^https:\/\/go\.shop\.example\.net\/\?c=[0-9a-f-]{36}$/);
    await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'paused' } });
    const again = await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'active' } });
    assert.equal(again.body.data.status, 'active', again.text);
    // An admin's own host change needs no second review.
    const byAdmin = await t.call('patch', `/campaigns/${id}`, {
      token: admin.token,
      body: { destination_url: 'https://shop.example.net/?c={click_id}' },
    });
    assert.equal(byAdmin.body.data.status, 'active', byAdmin.text);
  });
});
