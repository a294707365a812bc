import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
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
import { LOCK_STALE_MS } from './spool-lock.ts';
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
        async () =>
          readdirSync(path.join(env.dir, 'spool')).filter((f) => !f.endsWith('.offset') && !f.endsWith('.lock')),
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

  it('two spools with one PID on one directory keep their own files: every record replayed exactly once', async () => {
    const dir = path.join(env.dir, 'spool-same-pid');
    const keys = redisKeys('sp4:');
    const a = new Spool(dir, 'host', logger);
    const b = new Spool(dir, 'host', logger);
    await a.init();
    await b.init();
    const put = (s: Spool, n: number) =>
      new Promise<void>((r, j) =>
        s.append(
          keys.clicks(0),
          entryFields([
            encodeClick(
              sampleClick({
                click_id: `0190f2c4-0000-7000-8000-0000000001${n}0`,
                link_code: 'spool-1',
                query: `n=${n}`,
              }),
            ),
          ]),
          (e) => (e ? j(e) : r()),
        ),
      );
    await put(a, 1);
    await put(b, 2);
    // A replays while B is live and still appending: B's active file must not be claimed.
    assert.equal(await a.replay(reader), 1);
    await put(b, 3);
    await put(a, 4);
    assert.equal(await b.replay(reader), 2);
    assert.equal(await a.replay(reader), 1);
    const clicks = await allClicks(reader, 'sp4:');
    assert.deepEqual(clicks.map((c) => c.query).sort(), ['n=1', 'n=2', 'n=3', 'n=4']);
    await a.close();
    await b.close();
    assert.deepEqual(readdirSync(dir), []);
  });

  it("takes over a dead owner's file (stale lock) once, never a live owner's", async () => {
    const dir = path.join(env.dir, 'spool-stale');
    mkdirSync(dir, { recursive: true });
    const keys = redisKeys('sp5:');
    const rec = (n: number) =>
      JSON.stringify([
        keys.clicks(0),
        ...entryFields([
          encodeClick(
            sampleClick({ click_id: `0190f2c4-0000-7000-8000-0000000002${n}0`, link_code: 'spool-1', query: `n=${n}` }),
          ),
        ]),
      ]);
    const dead = 'd'.repeat(32);
    const live = 'e'.repeat(32);
    const lock = (id: string, pid: number, hostname: string) =>
      writeFileSync(path.join(dir, `${id}.lock`), JSON.stringify({ instance: id, pid, hostname, started_ms: 0 }));
    lock(dead, 4194303, hostname()); // this host, a pid that does not run
    lock(live, process.ppid, hostname()); // this host, a running pid
    writeFileSync(path.join(dir, `host-1-0.${dead}.1.spool`), `${rec(1)}\n${rec(2)}\n`);
    writeFileSync(path.join(dir, `host-1-0.${live}.1.spool`), `${rec(3)}\n`);
    const r1 = new Spool(dir, 'host', logger);
    const r2 = new Spool(dir, 'host', logger);
    await r1.init();
    await r2.init();
    const [n1, n2] = await Promise.all([r1.replay(reader), r2.replay(reader)]);
    assert.equal(n1 + n2, 2, "the dead owner's records, once");
    assert.deepEqual((await allClicks(reader, 'sp5:')).map((c) => c.query).sort(), ['n=1', 'n=2']);
    assert.ok(readdirSync(dir).includes(`host-1-0.${live}.1.spool`), "the live owner's file is left alone");
    // Another host's lock: stale only once its heartbeat is older than LOCK_STALE_MS.
    lock(live, 1, 'other-host');
    assert.equal(await r1.replay(reader), 0);
    const old = new Date(Date.now() - LOCK_STALE_MS - 1_000);
    utimesSync(path.join(dir, `${live}.lock`), old, old);
    assert.equal(await r1.replay(reader), 1);
    await r1.close();
    await r2.close();
  });

  it('fsyncs appends on its timer (SPOOL_FSYNC_MS), or before the callback with 0', async () => {
    const line = () =>
      entryFields([
        encodeClick(sampleClick({ click_id: '0190f2c4-0000-7000-8000-000000000300', link_code: 'x', query: '' })),
      ]);
    const put = (s: Spool) => new Promise<void>((r, j) => s.append('s', line(), (e) => (e ? j(e) : r())));
    const timed = new Spool(path.join(env.dir, 'spool-fsync-a'), 'host', logger, { fsyncMs: 200 });
    await timed.init();
    await put(timed);
    assert.equal(timed.syncs, 0, 'the callback does not wait for the fsync');
    await waitFor('timer fsync', async () => timed.syncs, { until: (n) => n >= 1 });
    await timed.close();
    const each = new Spool(path.join(env.dir, 'spool-fsync-b'), 'host', logger, { fsyncMs: 0 });
    await each.init();
    await Promise.all([put(each), put(each), put(each)]);
    assert.ok(each.syncs >= 1 && each.syncs <= 3, `callbacks ran after ${each.syncs} fsyncs`);
    await each.close();
  });
});
