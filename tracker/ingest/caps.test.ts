import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeCampaign } from '../../infra/testing/index.ts';
import { CapCounters, periodDay } from './caps.ts';
import { startTracker } from './server.ts';
import { cfg, clicks, env, get, keys, logger, s, useTracker } from './test-helpers.ts';

useTracker();

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
      assert.equal(caps.admit(999, { time_zone: 'UTC', daily: 10, total: null }, now), true);
      await caps.flush(now);
      assert.equal(await env.redis.get(key), '4');
      const ttl = await env.redis.ttl(key);
      assert.ok(ttl > 86_400 && ttl <= 2 * 86_400, String(ttl));
      await env.redis.expire(key, 1_000);
      await caps.flush(now);
      assert.equal(await env.redis.ttl(key) <= 1_000, true);
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
});
