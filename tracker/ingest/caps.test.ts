import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventLogKey, type LiveEvent, publishLinkInvalidation } from '../../infra/index.ts';
import { makeCampaign, makeUser, waitFor } from '../../infra/testing/index.ts';
import { CapCounters, type ClickCaps, periodDay } from './caps.ts';
import { startTracker } from './server.ts';
import { cfg, clicks, env, get, keys, logger, s, useTracker } from './test-helpers.ts';

useTracker();

const NO_CAPS: ClickCaps = {
  time_zone: 'UTC',
  daily: null,
  total: null,
  affiliate_daily: null,
  affiliate_total: null,
  conversions_full_total: false,
  conversions_full_day: null,
};

/** The `cap.threshold_reached` events in the durable event log (what webhooks read; SSE gets the same publish). */
async function thresholdEvents(campaign: number): Promise<LiveEvent[]> {
  const entries = (await env.redis.xrange(eventLogKey(keys), '-', '+')) as Array<[string, string[]]>;
  return entries
    .map(([, f]) => JSON.parse(f[1]!) as LiveEvent)
    .filter((e) => e.type === 'cap.threshold_reached' && e.data.campaign_id === campaign);
}

describe('click caps', () => {
  it('counts the day in the campaign time zone (fixed clock)', () => {
    const t = Date.UTC(2026, 0, 1, 23, 30); // 23:30 UTC on Jan 1
    assert.equal(periodDay(t, 'UTC'), '2026-01-01');
    assert.equal(periodDay(t, 'Europe/Berlin'), '2026-01-02'); // 00:30 CET
    assert.equal(periodDay(t, 'America/New_York'), '2026-01-01');
    assert.equal(periodDay(Date.UTC(2026, 0, 2, 4, 59), 'America/New_York'), '2026-01-01');
    assert.equal(periodDay(Date.UTC(2026, 0, 2, 5, 0), 'America/New_York'), '2026-01-02');
    assert.throws(() => periodDay(t, 'Mars/Olympus'), RangeError);
  });

  it('a daily key whose EXPIRE was lost gets its TTL on the next flush; an existing TTL is not pushed back', async () => {
    const caps = new CapCounters(env.redis, keys, logger, 60_000);
    try {
      const now = Date.now();
      const key = keys.key('cap', 'click', `999:d:${periodDay(now, 'UTC')}`);
      // What a first flush leaves when its EXPIRE fails: the count without a TTL.
      await env.redis.set(key, '3');
      assert.equal(caps.admit(999, 1, { ...NO_CAPS, daily: 10 }, now), true);
      await caps.flush(now);
      assert.equal(await env.redis.get(key), '4');
      const ttl = await env.redis.ttl(key);
      assert.ok(ttl > 86_400 && ttl <= 2 * 86_400, String(ttl));
      await env.redis.expire(key, 1_000);
      await caps.flush(now);
      assert.equal((await env.redis.ttl(key)) <= 1_000, true);
    } finally {
      caps.close();
    }
  });

  it('rejects an unknown time zone in Postgres', async () => {
    await assert.rejects(env.sql`update campaigns set time_zone = 'Mars/Olympus' where id = ${s.campaign}`);
  });

  it('a daily cap of 50 lets exactly 50 of 200 parallel clicks through; the rest go to the fallback', async () => {
    const camp = await makeCampaign(env.sql, s.advertiser, {
      name: 'Capped',
      destination_url: 'https://dest.example/?c={click_id}',
      fallback_url: 'https://fb.example/?c={click_id}',
      status: 'active',
    });
    await env.sql`update campaigns set click_cap_daily = 50, time_zone = 'Asia/Tokyo' where id = ${camp}`;
    await env.sql`insert into links (code, campaign_id, affiliate_id) values ('capped-1', ${camp}, ${s.affiliate})`;
    const res = await Promise.all(Array.from({ length: 200 }, () => get('/c/capped-1')));
    const locs = res.map((r) => r.headers.get('location') ?? '');
    assert.equal(locs.filter((l) => l.startsWith('https://dest.example/')).length, 50);
    assert.equal(locs.filter((l) => l.startsWith('https://fb.example/')).length, 150);
    const mine = (await clicks()).filter((c) => c.link_code === 'capped-1');
    assert.equal(mine.length, 200);
    assert.equal(mine.filter((c) => c.invalid_reason === 'cap_reached').length, 150);
    assert.equal(mine.filter((c) => c.invalid_reason === '').length, 50);
  });

  it('without a fallback, capped clicks go to DEFAULT_FALLBACK_URL; off-target clicks do not count', async () => {
    const camp = await makeCampaign(env.sql, s.advertiser, {
      name: 'Capped3',
      destination_url: 'https://dest.example/?c={click_id}',
      status: 'active',
    });
    await env.sql`update campaigns set click_cap_total = 2, allowed_devices = '{mobile}' where id = ${camp}`;
    await env.sql`insert into links (code, campaign_id, affiliate_id) values ('capped-3', ${camp}, ${s.affiliate})`;
    const tracker = await startTracker({
      config: cfg({ DEFAULT_FALLBACK_URL: 'https://wall.example/?c={click_id}' }),
      logger,
      sql: env.sql,
      redisUrl: env.config.REDIS_URL!,
    });
    try {
      const click = (ua: string) =>
        fetch(`${tracker.url}/c/capped-3`, { redirect: 'manual', headers: { 'user-agent': ua } }).then(
          (r) => r.headers.get('location') ?? '',
        );
      const desktop =
        'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36';
      const phone =
        'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
      // Off-target clicks first: they go to the wall as device_mismatch and leave the cap untouched.
      for (let i = 0; i < 3; i++) assert.match(await click(desktop), /^https:\/\/wall\.example\//);
      const got = [await click(phone), await click(phone), await click(phone)];
      assert.deepEqual(
        got.map((l) => new URL(l).host),
        ['dest.example', 'dest.example', 'wall.example'],
      );
      const reasons = (await clicks()).filter((c) => c.link_code === 'capped-3').map((c) => c.invalid_reason);
      assert.deepEqual(reasons.sort(), [
        '',
        '',
        'cap_reached',
        'device_mismatch',
        'device_mismatch',
        'device_mismatch',
      ]);
    } finally {
      await tracker.close();
    }
  });

  it('two trackers: the overshoot stays within one flush interval of the other, then both stop at the cap', async () => {
    const camp = await makeCampaign(env.sql, s.advertiser, {
      name: 'Capped2',
      destination_url: 'https://dest.example/?c={click_id}',
      fallback_url: 'https://fb.example/',
      status: 'active',
    });
    await env.sql`update campaigns set click_cap_total = 50 where id = ${camp}`;
    await env.sql`insert into links (code, campaign_id, affiliate_id) values ('capped-2', ${camp}, ${s.affiliate})`;
    const second = await startTracker({ config: cfg(), logger, sql: env.sql, redisUrl: env.config.REDIS_URL! });
    try {
      const hit = (i: number) =>
        i % 2 === 0 ? get('/c/capped-2') : fetch(`${second.url}/c/capped-2`, { redirect: 'manual' });
      const through = async (n: number, from: number) =>
        (await Promise.all(Array.from({ length: n }, (_, i) => hit(from + i)))).filter((r) =>
          (r.headers.get('location') ?? '').startsWith('https://dest.example/'),
        ).length;
      const first = await through(200, 0);
      // Each process alone stops at 50; what the other admitted before its flush is the overshoot (≤ 50 here).
      assert.ok(first >= 50 && first <= 100, String(first));
      await new Promise((r) => setTimeout(r, 400)); // both flushed and read the global count back
      assert.equal(await through(40, 0), 0);
    } finally {
      await second.close();
    }
  });

  it('per-affiliate daily cap: affiliate A stops at 3, affiliate B of the same campaign is not capped', async () => {
    const b = await makeUser(env.sql, 'affiliate', { name: 'B', email: 'b-caps@example.com' });
    const camp = await makeCampaign(env.sql, s.advertiser, {
      name: 'AffCapped',
      destination_url: 'https://dest.example/?a={affiliate_id}',
      fallback_url: 'https://fb.example/?a={affiliate_id}',
      status: 'active',
    });
    await env.sql`insert into campaign_affiliates (campaign_id, affiliate_id, status, click_cap_daily)
                  values (${camp}, ${s.affiliate}, 'approved', 3), (${camp}, ${b}, 'approved', null)`;
    await env.sql`insert into links (code, campaign_id, affiliate_id)
                  values ('affcap-a', ${camp}, ${s.affiliate}), ('affcap-b', ${camp}, ${b})`;
    const hosts = async (code: string) =>
      (await Promise.all(Array.from({ length: 10 }, () => get(`/c/${code}`)))).map(
        (r) => new URL(r.headers.get('location') ?? '').host,
      );
    const a = await hosts('affcap-a');
    assert.equal(a.filter((h) => h === 'dest.example').length, 3);
    assert.equal(a.filter((h) => h === 'fb.example').length, 7);
    assert.deepEqual(await hosts('affcap-b'), Array(10).fill('dest.example'));
    const reasons = (await clicks()).filter((c) => c.link_code === 'affcap-a').map((c) => c.invalid_reason);
    assert.equal(reasons.filter((r) => r === 'cap_reached').length, 7);
    // The counter key is per (campaign, affiliate, day).
    await new Promise((r) => setTimeout(r, 300));
    const day = periodDay(Date.now(), 'UTC');
    assert.equal(await env.redis.get(keys.key('cap', 'click', `${camp}:a${s.affiliate}:d:${day}`)), '3');
    assert.equal(await env.redis.get(keys.key('cap', 'click', `${camp}:a${b}:d:${day}`)), null);
  });

  it('cap.threshold_reached: 80 % and 100 % arrive once each across two trackers', async () => {
    const camp = await makeCampaign(env.sql, s.advertiser, {
      name: 'Thresholds',
      destination_url: 'https://dest.example/',
      fallback_url: 'https://fb.example/',
      status: 'active',
    });
    await env.sql`update campaigns set click_cap_total = 10 where id = ${camp}`;
    await env.sql`insert into campaign_affiliates (campaign_id, affiliate_id, status) values (${camp}, ${s.affiliate}, 'approved')`;
    await env.sql`insert into links (code, campaign_id, affiliate_id) values ('thresh-1', ${camp}, ${s.affiliate})`;
    const second = await startTracker({ config: cfg(), logger, sql: env.sql, redisUrl: env.config.REDIS_URL! });
    try {
      const hit = (i: number) =>
        i % 2 === 0 ? get('/c/thresh-1') : fetch(`${second.url}/c/thresh-1`, { redirect: 'manual' });
      // 8 clicks one by one (each flushed before the next): 80 % exactly, no 100 % yet.
      for (let i = 0; i < 8; i++) {
        await hit(i);
        await new Promise((r) => setTimeout(r, 150));
      }
      await waitFor('the 80 % event', async () => (await thresholdEvents(camp)).length === 1);
      const [e80] = await thresholdEvents(camp);
      assert.deepEqual(e80!.data, {
        campaign_id: camp,
        affiliate_id: null,
        metric: 'clicks',
        period: 'total',
        day: null,
        threshold_percent: 80,
        cap: 10,
        count: 8,
      });
      assert.deepEqual(e80!.user_ids.sort(), [s.advertiser, s.affiliate].sort());
      await Promise.all(Array.from({ length: 20 }, (_, i) => hit(i)));
      await waitFor('the 100 % event', async () => (await thresholdEvents(camp)).length >= 2);
      await new Promise((r) => setTimeout(r, 500)); // more flushes of both: still one event per threshold
      const all = await thresholdEvents(camp);
      assert.deepEqual(
        all.map((e) => e.data.threshold_percent as number).sort((x, y) => x - y),
        [80, 100],
      );
    } finally {
      await second.close();
    }
  });

  it('a full conversion cap (total, or today in the campaign zone) sends new clicks to the fallback', async () => {
    const camp = await makeCampaign(env.sql, s.advertiser, {
      name: 'ConvCapped',
      destination_url: 'https://dest.example/',
      fallback_url: 'https://fb.example/',
      status: 'active',
    });
    await env.sql`update campaigns set conversion_cap_daily = 2, time_zone = 'Asia/Tokyo' where id = ${camp}`;
    await env.sql`insert into links (code, campaign_id, affiliate_id) values ('convcap-1', ${camp}, ${s.affiliate})`;
    const host = async () => new URL((await get('/c/convcap-1')).headers.get('location') ?? '').host;
    assert.equal(await host(), 'dest.example');
    // Another day's full count does not matter; today's (Tokyo) does, once the invalidation arrives.
    await env.sql`insert into cap_conversion_counts (campaign_id, affiliate_id, period, n)
                  values (${camp}, 0, '2000-01-01', 2), (${camp}, 0, ${periodDay(Date.now(), 'Asia/Tokyo')}, 2)`;
    await publishLinkInvalidation(env.redis, keys, { campaign_id: camp });
    await waitFor('the fallback', host, { until: (h) => h === 'fb.example' });
    const last = (await clicks()).filter((c) => c.link_code === 'convcap-1').at(-1)!;
    assert.equal(last.invalid_reason, 'cap_reached');
    // A per-affiliate total conversion cap, full.
    await env.sql`update campaigns set conversion_cap_daily = null where id = ${camp}`;
    await env.sql`insert into campaign_affiliates (campaign_id, affiliate_id, status, conversion_cap_total)
                  values (${camp}, ${s.affiliate}, 'approved', 1)`;
    await publishLinkInvalidation(env.redis, keys, { campaign_id: camp });
    await waitFor('the destination', host, { until: (h) => h === 'dest.example' });
    await env.sql`insert into cap_conversion_counts (campaign_id, affiliate_id, period, n)
                  values (${camp}, ${s.affiliate}, 't', 1)`;
    await publishLinkInvalidation(env.redis, keys, { campaign_id: camp });
    await waitFor('the fallback again', host, { until: (h) => h === 'fb.example' });
  });
});
