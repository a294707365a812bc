import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { publishLinkInvalidation } from '../../infra/index.ts';
import { waitFor } from '../../infra/testing/index.ts';
import { startTracker } from './server.ts';
import { cfg, clicks, env, get, keys, lastClick, logger, s, UUID7, useTracker } from './test-helpers.ts';

useTracker();

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
});
