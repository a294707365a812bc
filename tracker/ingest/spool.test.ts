import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createLogger,
  createRedis,
  type LocalService,
  type Redis,
  redisKeys,
  startLocalRedis,
} from '../../infra/index.ts';
import { createTestEnv, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { type ClickEvent, decodeClick, decodeConversion, encodeClick, entryFields, entryLines } from '../events.ts';
import { startTracker } from './server.ts';
import { Spool } from './spool.ts';
import { readStream, sampleClick, seedLink, trackerConfig } from './test-helpers.ts';

const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'silent' });
let env: TestEnv;
let redisDir: string;
let redis: LocalService & { port: number };
let reader: Redis;

const allClicks = (r: Redis, prefix: string): Promise<ClickEvent[]> =>
  readStream(r, redisKeys(prefix).clicks, 2, decodeClick);

before(async () => {
  env = await createTestEnv();
  await seedLink(env.sql, 'spool-1', 'tok-spool');
  redisDir = path.join(env.dir, 'private-redis');
  redis = await startLocalRedis({ dir: redisDir, persistent: false });
  reader = createRedis(redis.url, { maxRetriesPerRequest: null });
  reader.on('error', () => {}); // expected while the test stops Redis
});
after(async () => {
  reader.disconnect();
  await redis.stop();
  await env.close();
});

describe('Redis outage', () => {
  it('still redirects, spools, and replays everything once Redis is back', async () => {
    const config = trackerConfig(env.dir, 'sp1:', 2, { TRACKER_INSTANCE_ID: 'outage' });
    const tracker = await startTracker({ config, logger, sql: env.sql, redisUrl: redis.url });
    try {
      const live = await fetch(`${tracker.url}/c/spool-1?sub1=live`, { redirect: 'manual' });
      assert.equal(live.status, 302);
      await redis.stop();
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) {
        const res = await fetch(`${tracker.url}/c/spool-1?sub1=down${i}`, { redirect: 'manual' });
        assert.equal(res.status, 302);
        ids.push(/c=([0-9a-f-]+)$/.exec(res.headers.get('location')!)![1]!);
      }
      const conv = await fetch(
        `${tracker.url}/api/v1/track/conversion?token=tok-spool&click_id=${ids[0]}&event_id=ev-down&amount=5&currency=EUR`,
      );
      assert.equal(conv.status, 200, 'a postback is accepted during the outage');
      const spooled = readdirSync(path.join(env.dir, 'spool')).filter((f) => f.endsWith('.spool'));
      assert.equal(spooled.length, 1, 'events went to the spool file');
      const ready = await fetch(`${tracker.url}/readyz`);
      assert.equal(ready.status, 200, 'ready while the spool is writable');
      const body = (await ready.json()) as { ready: boolean; checks: Record<string, string> };
      assert.equal(body.ready, true);
      assert.match(body.checks.redis!, /^down: /, 'Redis named as down');
      assert.equal(body.checks.spool, 'ok');

      redis = await startLocalRedis({ dir: redisDir, port: redis.port, persistent: false });
      const clicks = await waitFor('replayed clicks', () => allClicks(reader, 'sp1:'), {
        until: (c) => c.length >= 30,
      });
      const got = new Set(clicks.map((c) => c.click_id));
      for (const id of ids) assert.ok(got.has(id), `click ${id} replayed`);
      assert.equal(clicks.length, 30, 'nothing lost, nothing duplicated');
      for (const c of clicks) {
        assert.equal(c.link_code, 'spool-1');
        assert.equal(c.campaign_id, 1);
        assert.match(c.query, /^sub1=down\d+$/);
      }
      const convs = (await reader.xrange(redisKeys('sp1:').conversions(0), '-', '+')).concat(
        await reader.xrange(redisKeys('sp1:').conversions(1), '-', '+'),
      ) as Array<[string, string[]]>;
      const lines = convs.flatMap(([, f]) => entryLines(f)).map(decodeConversion);
      assert.deepEqual(
        lines.map((c) => [c.event_id, c.click_id, c.amount_minor, c.currency]),
        [['ev-down', ids[0], 500, 'EUR']],
      );
      await waitFor(
        'spool files removed',
        async () => readdirSync(path.join(env.dir, 'spool')).filter((f) => !f.endsWith('.offset')),
        { until: (f) => f.length === 0 },
      );
    } finally {
      await tracker.close();
    }
  });

  it('replays a spool left by a previous run at start-up', async () => {
    const config = trackerConfig(env.dir, 'sp2:', 2);
    const first = await startTracker({ config, logger, sql: env.sql, redisUrl: redis.url });
    await redis.stop();
    for (let i = 0; i < 5; i++) {
      assert.equal((await fetch(`${first.url}/c/spool-1?n=${i}`, { redirect: 'manual' })).status, 302);
    }
    await first.close();
    assert.equal(readdirSync(path.join(env.dir, 'spool')).length, 1);
    redis = await startLocalRedis({ dir: redisDir, port: redis.port, persistent: false });
    const second = await startTracker({ config, logger, sql: env.sql, redisUrl: redis.url });
    try {
      const clicks = await waitFor('replayed clicks', () => allClicks(reader, 'sp2:'), { until: (c) => c.length >= 5 });
      assert.deepEqual(clicks.map((c) => c.query).sort(), ['n=0', 'n=1', 'n=2', 'n=3', 'n=4']);
    } finally {
      await second.close();
    }
  });

  it('resumes a crashed replay after its last acknowledged batch and skips a torn last line', async () => {
    const dir = path.join(env.dir, 'spool-crash');
    mkdirSync(dir, { recursive: true });
    const keys = redisKeys('sp3:');
    const click = (n: number): ClickEvent =>
      sampleClick({
        click_id: `0190f2c4-0000-7000-8000-00000000000${n}`,
        ts_ms: 1_700_000_000_000 + n,
        received_ms: 1_700_000_000_000 + n,
        link_code: 'spool-1',
        query: `n=${n}`,
      });
    const rec = (n: number) => JSON.stringify([keys.clicks(n % 2), ...entryFields([encodeClick(click(n))])]);
    // A file claimed by a replayer (pid 4194303, not running) that crashed after acknowledging record 1.
    const file = path.join(dir, 'host-1-0.4194303.replay');
    writeFileSync(file, `${rec(1)}\n${rec(2)}\n${rec(3)}\n["sp3:clicks:{0}","v","1`);
    writeFileSync(`${file}.offset`, '1');
    const spool = new Spool(dir, 'host', logger);
    assert.equal(await spool.replay(reader), 2);
    const clicks = await allClicks(reader, 'sp3:');
    assert.deepEqual(clicks.map((c) => c.query).sort(), ['n=2', 'n=3']);
    assert.deepEqual(readdirSync(dir), []);
  });
});
