/**
 * Keyed partitions and the repeat marker, through the real tracker on real Redis: where clicks and
 * conversions land (partition by client IP, tag in the click_id, conversions by that tag), and which
 * spooled groups carry `r 1` (sent-then-failed XADDs: yes; never sent: no). The stall tests run on a
 * private redis-server so SIGSTOP hurts nobody else.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
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
import {
  decodeClick,
  decodeConversion,
  encodeClick,
  entryFields,
  entryLines,
  entryMayRepeat,
  idTag,
  partitionOf,
} from '../events.ts';
import { startTracker, type Tracker } from './server.ts';
import { Spool } from './spool.ts';
import { sampleClick, seedLink, trackerConfig } from './test-helpers.ts';

const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'silent' });
const P = 4;
const TOKEN = 'tok-keyed';
let env: TestEnv;

interface Copy {
  p: number;
  entry: string;
  marked: boolean;
  line: string;
}

/** Every line of every entry of `stream(p)` for p < partitions, in stream order per partition. */
async function readAll(r: Redis, stream: (p: number) => string, partitions = P): Promise<Copy[]> {
  const out: Copy[] = [];
  for (let p = 0; p < partitions; p++) {
    const entries = (await r.xrange(stream(p), '-', '+')) as Array<[string, string[]]>;
    for (const [entry, fields] of entries) {
      const marked = entryMayRepeat(fields);
      for (const line of entryLines(fields)) out.push({ p, entry, marked, line });
    }
  }
  return out;
}

const cfg = (prefix: string, extra: Record<string, string> = {}) =>
  trackerConfig(path.join(env.dir, prefix.replace(/\W/g, '')), prefix, P, { TRACKER_INSTANCE_ID: 'keyed', ...extra });

/** click_id from a 302's Location (`https://dest.example/?c={click_id}`). */
async function click(url: string, ip: string, query: string, ua = 'UA/1'): Promise<string> {
  const res = await fetch(`${url}/c/keyed-1?${query}`, {
    redirect: 'manual',
    headers: { 'x-forwarded-for': ip, 'user-agent': ua },
  });
  assert.equal(res.status, 302);
  return /c=([0-9a-f-]+)$/.exec(res.headers.get('location')!)![1]!;
}

before(async () => {
  env = await createTestEnv();
  await seedLink(env.sql, 'keyed-1', TOKEN);
});
after(async () => {
  await env.close();
});

describe('keyed partitions (shared Redis)', () => {
  let tracker: Tracker;
  const keys = () => redisKeys(`${env.config.REDIS_PREFIX}k1:`);
  before(async () => {
    tracker = await startTracker({
      config: cfg(`${env.config.REDIS_PREFIX}k1:`),
      logger,
      sql: env.sql,
      redisUrl: env.config.REDIS_URL!,
    });
  });
  after(async () => {
    await tracker.close();
  });

  it('puts all clicks of one IP on partition partitionOf(ip) in arrival order, tagged in the click_id', async () => {
    const ips = Array.from({ length: 40 }, (_, i) => `198.51.100.${i + 1}`);
    const sent = new Map<string, string[]>(); // ip → click_ids in send order
    // IPs concurrently (so one flush holds several partitions), each IP's clicks one after another.
    await Promise.all(
      ips.map(async (ip) => {
        const ids: string[] = [];
        for (let n = 0; n < 5; n++) ids.push(await click(tracker.url, ip, `sub1=${n}`));
        sent.set(ip, ids);
      }),
    );
    const copies = await readAll(env.redis, keys().clicks);
    assert.equal(copies.length, 200);
    const byIp = new Map<string, Copy[]>();
    for (const c of copies) {
      const ev = decodeClick(c.line);
      assert.equal(c.p, partitionOf(ev.ip, P), `${ev.ip} on partition ${c.p}`);
      assert.equal(idTag(ev.click_id), c.p, 'the click_id carries its partition');
      assert.equal(c.marked, false);
      byIp.set(ev.ip, [...(byIp.get(ev.ip) ?? []), c]);
    }
    for (const ip of ips) {
      const got = byIp.get(ip)!.map((c) => decodeClick(c.line));
      assert.deepEqual(
        got.map((c) => c.click_id),
        sent.get(ip),
        `${ip}: stream order is arrival order`,
      );
      assert.deepEqual(
        got.map((c) => c.query),
        ['sub1=0', 'sub1=1', 'sub1=2', 'sub1=3', 'sub1=4'],
      );
    }
    const used = new Set(copies.map((c) => c.p));
    assert.equal(used.size, P, '40 IPs reach every one of 4 partitions');
  });

  it('sends each conversion to partition idTag(click_id) % P, tagging its conversion_id too', async () => {
    const ids = [
      await click(tracker.url, '203.0.113.7', 'x=1'),
      // Click ids of any shape the postback accepts, tags 0..255: the partition is the tag mod P.
      '0190b6e2-7c3a-7a4b-8c1d-2e3f4a5b6c00',
      '0190b6e2-7c3a-7a4b-8c1d-2e3f4a5b6c05',
      '0190b6e2-7c3a-7a4b-8c1d-2e3f4a5b6cfe',
      '0190B6E2-7C3A-7A4B-8C1D-2E3F4A5B6C0B',
    ];
    for (const [i, id] of ids.entries()) {
      const res = await fetch(`${tracker.url}/api/v1/track/conversion?token=${TOKEN}&click_id=${id}&event_id=kc-${i}`);
      assert.equal(res.status, 200);
    }
    const copies = await readAll(env.redis, keys().conversions);
    assert.equal(copies.length, ids.length);
    for (const c of copies) {
      const conv = decodeConversion(c.line);
      assert.equal(c.p, idTag(conv.click_id) % P, `${conv.click_id} on partition ${c.p}`);
      assert.equal(idTag(conv.conversion_id), c.p);
    }
    assert.deepEqual(
      copies.map((c) => decodeConversion(c.line).event_id).sort(),
      ids.map((_, i) => `kc-${i}`),
    );
    assert.ok(new Set(copies.map((c) => c.p)).size >= 3);
  });
});

describe('STREAM_PARTITION_KEY', () => {
  it('ip_user_agent keys by IP + tab + User-Agent; none goes round robin; both tag the click_id', async () => {
    const prefixUa = `${env.config.REDIS_PREFIX}k2:`;
    const ua = await startTracker({
      config: cfg(prefixUa, { STREAM_PARTITION_KEY: 'ip_user_agent' }),
      logger,
      sql: env.sql,
      redisUrl: env.config.REDIS_URL!,
    });
    try {
      for (let n = 0; n < 24; n++) await click(ua.url, '192.0.2.1', `n=${n}`, `Agent/${n}`);
      const copies = await readAll(env.redis, redisKeys(prefixUa).clicks);
      assert.equal(copies.length, 24);
      for (const c of copies) {
        const ev = decodeClick(c.line);
        assert.equal(c.p, partitionOf(`${ev.ip}\t${ev.user_agent}`, P));
        assert.equal(idTag(ev.click_id), c.p);
      }
      assert.ok(new Set(copies.map((c) => c.p)).size > 1, 'one IP, many agents, several partitions');
    } finally {
      await ua.close();
    }
    const prefixRr = `${env.config.REDIS_PREFIX}k3:`;
    const rr = await startTracker({
      config: cfg(prefixRr, { STREAM_PARTITION_KEY: 'none' }),
      logger,
      sql: env.sql,
      redisUrl: env.config.REDIS_URL!,
    });
    try {
      // One click per flush (sequential): partitions in turn, all from one IP.
      for (let n = 0; n < 8; n++) await click(rr.url, '192.0.2.1', `n=${n}`);
      const copies = await readAll(env.redis, redisKeys(prefixRr).clicks);
      assert.equal(copies.length, 8);
      for (const c of copies) assert.equal(idTag(decodeClick(c.line).click_id), c.p);
      assert.deepEqual(
        [0, 1, 2, 3].map((p) => copies.filter((c) => c.p === p).length),
        [2, 2, 2, 2],
      );
    } finally {
      await rr.close();
    }
  });
});

describe('the r marker on spooled groups (private Redis, SIGSTOP)', () => {
  let redisDir: string;
  let redis: LocalService & { port: number; process: { pid?: number } };
  let reader: Redis;
  before(async () => {
    redisDir = path.join(env.dir, 'private-redis');
    redis = await startLocalRedis({ dir: redisDir, persistent: false });
    reader = createRedis(redis.url, { maxRetriesPerRequest: null });
    reader.on('error', () => {});
  });
  after(async () => {
    if (redis.process.pid) process.kill(redis.process.pid, 'SIGCONT');
    reader.disconnect();
    await redis.stop();
  });

  /** Every spooled record (active and claimed files) of a tracker's DATA_DIR. */
  const spooled = (dataDir: string): string[][] => {
    const dir = path.join(dataDir, 'spool');
    return readdirSync(dir)
      .filter((f) => f.endsWith('.spool') || f.endsWith('.replay'))
      .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n'))
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as string[]);
  };

  it('marks groups whose XADD was sent and timed out, and only those; replay then adds no unmarked copy', async () => {
    const prefix = 'mk1:';
    const config = cfg(prefix, { TRACKER_REDIS_TIMEOUT_MS: '100' });
    const tracker = await startTracker({ config, logger, sql: env.sql, redisUrl: redis.url });
    const pid = redis.process.pid!;
    try {
      // 1. Redis stalled (SIGSTOP): the connection stays "ready", each XADD is written and times out.
      process.kill(pid, 'SIGSTOP');
      let stalled: string[] = [];
      try {
        stalled = await Promise.all(
          Array.from({ length: 20 }, (_, i) => click(tracker.url, `198.51.100.${i}`, `stall=${i}`)),
        );
        const recs = spooled(config.DATA_DIR);
        assert.ok(recs.length > 0);
        for (const r of recs) assert.ok(entryMayRepeat(r.slice(1)), `marked: ${r.slice(0, 7).join(' ')}`);
        assert.equal(recs.flatMap((r) => entryLines(r.slice(1))).length, 20);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      // The stalled XADDs run once Redis resumes, and the spool replays the same groups, marked.
      const copies = await waitFor(
        'stalled clicks in Redis, spool replayed',
        () => readAll(reader, redisKeys(prefix).clicks),
        {
          until: (c) =>
            new Set(c.map((x) => decodeClick(x.line).click_id)).size === 20 &&
            spooled(config.DATA_DIR).length === 0 &&
            c.some((x) => x.marked),
        },
      );
      const unmarked = new Map<string, number>();
      for (const c of copies) {
        const id = decodeClick(c.line).click_id;
        if (!c.marked) unmarked.set(id, (unmarked.get(id) ?? 0) + 1);
      }
      for (const id of stalled) assert.ok((unmarked.get(id) ?? 0) <= 1, `${id}: at most one unmarked copy`);
      assert.ok(copies.length > 20, `the stall produced copies (${copies.length} for 20 clicks): the case is real`);

      // 2. Redis down (not ready): nothing is sent, so the spooled groups carry no marker.
      await redis.stop();
      await waitFor(
        'tracker sees Redis down',
        async () => (await (await fetch(`${tracker.url}/readyz`)).json()) as { checks: { redis: string } },
        { until: (b) => b.checks.redis !== 'ok' },
      );
      const down = await Promise.all(
        Array.from({ length: 10 }, (_, i) => click(tracker.url, `203.0.113.${i}`, `down=${i}`)),
      );
      const recs = spooled(config.DATA_DIR);
      assert.equal(recs.flatMap((r) => entryLines(r.slice(1))).length, 10);
      for (const r of recs) assert.equal(entryMayRepeat(r.slice(1)), false);
      redis = await startLocalRedis({ dir: redisDir, port: redis.port, persistent: false });
      const after = await waitFor('down clicks replayed', () => readAll(reader, redisKeys(prefix).clicks), {
        until: (c) => c.filter((x) => decodeClick(x.line).query.startsWith('down=')).length >= 10,
      });
      const downCopies = after.filter((x) => decodeClick(x.line).query.startsWith('down='));
      assert.deepEqual(downCopies.map((x) => decodeClick(x.line).click_id).sort(), [...down].sort());
      assert.ok(downCopies.every((x) => !x.marked));
    } finally {
      await tracker.close();
    }
  });

  it('a spool replay that was sent and failed re-sends its records marked', async () => {
    const dir = path.join(env.dir, 'spool-resend');
    const spool = new Spool(dir, 'host', logger);
    await spool.init();
    const keys = redisKeys('mk2:');
    const ids = Array.from({ length: 3 }, (_, n) => `0190f2c4-0000-7000-8000-0000000000${n}0`);
    for (const [n, id] of ids.entries()) {
      const line = encodeClick(sampleClick({ click_id: id, link_code: 'keyed-1', query: `n=${n}` }));
      await new Promise<void>((r, j) => spool.append(keys.clicks(0), entryFields([line]), (e) => (e ? j(e) : r())));
    }
    // A fail-fast connection like the tracker's: the stalled replay times out after writing its XADDs.
    const fast = createRedis(redis.url, { commandTimeout: 100, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    fast.on('error', () => {});
    if (fast.status !== 'ready') await new Promise((r) => fast.once('ready', r));
    const pid = redis.process.pid!;
    try {
      process.kill(pid, 'SIGSTOP');
      try {
        await assert.rejects(spool.replay(fast));
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      assert.equal(await spool.replay(fast), 3);
      const copies = await readAll(reader, keys.clicks, 1);
      assert.deepEqual(
        copies.map((c) => [decodeClick(c.line).click_id, c.marked]),
        [...ids.map((id) => [id, false]), ...ids.map((id) => [id, true])],
        'the stalled first attempt landed unmarked, the resend marked',
      );
      assert.deepEqual(readdirSync(dir), [`${spool.id}.lock`]);
    } finally {
      fast.disconnect();
    }
  });
});
