import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import {
  createLogger,
  createRedis,
  eventLogKey,
  type LiveEvent,
  type LocalService,
  type Redis,
  redisKeys,
  startLocalRedis,
} from '../../infra/index.ts';
import { createTestEnv, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { decodeClick } from '../events.ts';
import { startTracker } from './server.ts';
import { Spool } from './spool.ts';
import { checkSpool, createSpoolMetrics } from './spool-monitor.ts';
import { readStream, seedLink, trackerConfig } from './test-helpers.ts';

const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'silent' });
let env: TestEnv;
let redisDir: string;
let redis: LocalService & { port: number };
let reader: Redis;

/** Bytes of the spool files (not their side files) in `dir`. */
function spoolBytes(dir: string): number {
  return readdirSync(dir)
    .filter((f) => /\.(spool|replay)$/.test(f))
    .reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
}

async function metric(registry: Registry, name: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return Number((m?.values[0] as { value: number } | undefined)?.value ?? Number.NaN);
}

before(async () => {
  env = await createTestEnv();
  await seedLink(env.sql, 'cap-1', 'tok-cap');
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

describe('spool cap (SPOOL_MAX_BYTES)', () => {
  it('past the cap a click is still answered, its event refused and counted; the disk stays under the cap', async () => {
    const dataDir = path.join(env.dir, 'cap-a');
    const cap = 20_000;
    const config = trackerConfig(dataDir, 'cap1:', 2, { TRACKER_INSTANCE_ID: 'cap', SPOOL_MAX_BYTES: String(cap) });
    const tracker = await startTracker({ config, logger, sql: env.sql, redisUrl: redis.url });
    const dir = path.join(dataDir, 'spool');
    const long = 'y'.repeat(255);
    const n = 40;
    try {
      await redis.stop();
      for (let i = 0; i < n; i++) {
        const res = await fetch(
          `${tracker.url}/c/cap-1?sub1=${i}&sub2=${long}&sub3=${long}&sub4=${long}&sub5=${long}`,
          {
            redirect: 'manual',
          },
        );
        assert.equal(res.status, 302, 'a click is answered whatever the spool');
      }
      const dropped = await metric(tracker.registry, 'tracker_spool_dropped_events_total');
      assert.ok(dropped > 0 && dropped < n, `dropped ${dropped}`);
      assert.ok(spoolBytes(dir) <= cap, `spool holds ${spoolBytes(dir)} bytes`);
      assert.ok(spoolBytes(dir) > cap * 0.8);
      await waitFor('the size gauge', () => metric(tracker.registry, 'tracker_spool_bytes'), {
        until: (b) => b > cap * 0.8 && b <= cap,
      });
      assert.equal(await metric(tracker.registry, 'tracker_spool_max_bytes'), cap);
      // Redis down and the spool full: nowhere to put an event, so not ready.
      const ready = await fetch(`${tracker.url}/readyz`);
      assert.equal(ready.status, 503);
      const body = (await ready.json()) as { ready: boolean; checks: Record<string, string> };
      assert.equal(body.ready, false);
      assert.match(body.checks.spool!, /^down: /);
      assert.match(body.checks.redis!, /^down: /);

      // Redis back: what was spooled is replayed; spooled + dropped = every click.
      redis = await startLocalRedis({ dir: redisDir, port: redis.port, persistent: false });
      const clicks = await waitFor(
        'replayed clicks',
        () => readStream(reader, redisKeys('cap1:').clicks, 2, decodeClick),
        {
          until: (c) => c.length >= n - dropped,
        },
      );
      assert.equal(clicks.length + dropped, n);
      await waitFor('spool emptied', () => spoolBytes(dir), { until: (b) => b === 0 });
      // Room again: a click during the next outage is spooled, not dropped.
      await waitFor('the gauge back to 0', () => metric(tracker.registry, 'tracker_spool_bytes'), {
        until: (b) => b === 0,
      });
    } finally {
      await tracker.close();
    }
  });

  it('at 80 % of the cap publishes tracker.spool_near_cap once per 5 minutes (real Redis, real files)', async () => {
    const dir = path.join(env.dir, 'cap-b', 'spool');
    mkdirSync(dir, { recursive: true });
    const cap = 10_000;
    // A spool file of another running process (our parent), which no replay claims: 85 % of the cap.
    writeFileSync(path.join(dir, `other-1-0.${process.ppid}.spool`), 'x'.repeat(8_500));
    const spool = new Spool(dir, 'cap-b', logger, { maxBytes: cap });
    await spool.init();
    assert.equal(spool.bytes, 8_500);
    const keys = redisKeys('cap2:');
    const metrics = createSpoolMetrics(new Registry());
    const state = { loggedAtMs: 0 };
    const deps = { spool, metrics, redis: reader, keys, log: logger };
    assert.equal(await checkSpool(deps, state), true, 'the first look publishes');
    assert.equal(await checkSpool(deps, state), false, 'the next looks do not');
    const ttl = await reader.ttl(keys.key('tracker', 'spool_near_cap'));
    assert.ok(ttl > 0 && ttl <= 300, `rate-limit key ttl ${ttl}`);
    const log = (await reader.xrange(eventLogKey(keys), '-', '+')) as Array<[string, string[]]>;
    const events = log.map(([, f]) => JSON.parse(f[1]!) as LiveEvent);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.type, 'tracker.spool_near_cap');
    assert.deepEqual(events[0]!.user_ids, []);
    assert.equal(events[0]!.data.bytes, 8_500);
    assert.equal(events[0]!.data.max_bytes, cap);
    assert.equal(await metric(metrics.registry, 'tracker_spool_bytes'), 8_500);

    // Below 80 %: no event even once the rate limit has passed.
    await reader.del(keys.key('tracker', 'spool_near_cap'));
    const small = new Spool(path.join(env.dir, 'cap-c'), 'cap-c', logger, { maxBytes: cap });
    await small.init();
    assert.equal(await checkSpool({ ...deps, spool: small }, { loggedAtMs: 0 }), false);

    // Appends past the cap are refused and counted, not written.
    const errs: Array<Error | null | undefined> = [];
    await new Promise<void>((r) =>
      spool.append(
        's',
        ['v', '1', 'n', '3', 'd', 'z'.repeat(2_000)],
        (e) => {
          errs.push(e);
          r();
        },
        3,
      ),
    );
    assert.equal(errs[0]?.name, 'SpoolFullError');
    assert.equal(spool.dropped, 3);
    assert.equal(spoolBytes(dir), 8_500);
  });
});
