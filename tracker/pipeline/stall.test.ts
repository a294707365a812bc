/**
 * End to end through the real services: a bounded click load against the tracker while its Redis is
 * stalled (SIGSTOP for longer than TRACKER_REDIS_TIMEOUT_MS, then SIGCONT). The XADDs written during the
 * stall time out and their groups are spooled (marked `r 1`), but the stalled Redis still runs them once
 * it resumes, and the spool replays them too: every click answered 302 must still be counted exactly once
 * in ClickHouse. A private redis-server, so the stop hurts no other test.
 *
 * Expected to FAIL until the pipeline drops a marked click whose click_id it has already processed: then
 * count() > the 302s while uniqExact(click_id) equals them (nothing lost, the surplus is the copies).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger, createRedis, type LocalService, redisKeys, startLocalRedis } from '../../infra/index.ts';
import { createTestEnv, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { decodeClick, entryLines, entryMayRepeat } from '../events.ts';
import { startTracker } from '../ingest/server.ts';
import { GROUP, groupStates } from './streams.ts';
import { startTestPipeline, trackerTestConfig } from './testing.ts';

const CLICKS = 2_000;
const CONCURRENCY = 50;
/** Load duration: clicks are paced evenly over it (≈250/s). */
const LOAD_MS = 8_000;
const STALL_AT_MS = 2_000;
/** Longer than TRACKER_REDIS_TIMEOUT_MS (250 ms default) many times over. */
const STALL_MS = 3_000;
const PARTITIONS = 2;

let env: TestEnv;
let redis: LocalService & { port: number; process: { pid?: number } };

before(async () => {
  env = await createTestEnv({ clickhouse: true });
  redis = await startLocalRedis({ dir: path.join(env.dir, 'private-redis'), persistent: false });
});
after(async () => {
  if (redis?.process.pid) process.kill(redis.process.pid, 'SIGCONT');
  await redis?.stop();
  await env?.close();
});

async function chOne(query: string): Promise<Record<string, number>> {
  const rs = await env.ch!.query({
    query,
    format: 'JSONEachRow',
    clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
  });
  return (await rs.json<Record<string, number>>())[0]!;
}

test('a Redis stall during a click load: every 302 is counted exactly once in ClickHouse', {
  timeout: 90_000,
}, async () => {
  const config = trackerTestConfig(env, { STREAM_PARTITIONS: String(PARTITIONS), TRACKER_INSTANCE_ID: 'stall' });
  const logger = createLogger({ level: config.LOG_LEVEL });
  const s = await seedCampaign(env.sql);
  const conn = createRedis(redis.url, { maxRetriesPerRequest: null });
  conn.on('error', () => {});
  const tracker = await startTracker({ config, logger, sql: env.sql, redisUrl: redis.url });
  const pipeline = await startTestPipeline(env, {
    config,
    logger,
    redis: conn,
    consumerName: 'stall',
    maintenanceIntervalMs: 200,
  });
  const keys = redisKeys(config.REDIS_PREFIX);
  // An audit group that never reads: the pipeline trims only what every group is done with, so the streams
  // keep every entry for the check of what the ingest wrote (below).
  for (let p = 0; p < PARTITIONS; p++) await conn.xgroup('CREATE', keys.clicks(p), 'audit', '0', 'MKSTREAM');
  const pid = redis.process.pid!;
  let acked = 0;
  const copies = new Map<string, boolean[]>(); // click_id → marked flag of each copy, in stream order
  let other = 0;
  try {
    const start = Date.now();
    let stalled = false;
    const stall = (async () => {
      await new Promise((r) => setTimeout(r, STALL_AT_MS));
      process.kill(pid, 'SIGSTOP');
      stalled = true;
      await new Promise((r) => setTimeout(r, STALL_MS));
      process.kill(pid, 'SIGCONT');
    })();
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < CLICKS; i = next++) {
        const due = start + (i * LOAD_MS) / CLICKS;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
        // Many client IPs (X-Forwarded-For from loopback, a trusted proxy), so every partition gets clicks.
        const res = await fetch(`${tracker.url}/c/${s.linkCode}?sub1=${i}`, {
          redirect: 'manual',
          headers: { 'x-forwarded-for': `10.9.${i % 200}.${(i * 7) % 250}`, 'user-agent': 'stall-test/1' },
        });
        await res.arrayBuffer();
        if (res.status === 302) acked++;
        else other++;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await stall;
    assert.ok(stalled, 'Redis was stopped during the load');
    assert.equal(other, 0, 'every click answered 302 (spooled during the stall)');
    assert.equal(acked, CLICKS);

    // Drained: the spool replayed, every click entry delivered and acknowledged, ClickHouse stable.
    const spoolDir = path.join(env.dir, 'spool');
    let last = -1;
    await waitFor(
      'spool replayed and pipeline drained',
      async () => {
        if (readdirSync(spoolDir).some((f) => f.endsWith('.spool') || f.endsWith('.replay'))) return false;
        for (let p = 0; p < PARTITIONS; p++) {
          const g = (await groupStates(conn, redisKeys(config.REDIS_PREFIX).clicks(p))).get(GROUP);
          if (!g || g.pending > 0 || (g.lag ?? 1) > 0) return false;
        }
        const n = (await chOne('SELECT count() AS n FROM clicks')).n!;
        const stable = n === last && n >= acked;
        last = n;
        if (stable) await new Promise((r) => setTimeout(r, 500));
        return stable && (await chOne('SELECT count() AS n FROM clicks')).n === n;
      },
      { timeoutMs: 60_000 },
    );
    for (let p = 0; p < PARTITIONS; p++) {
      const entries = (await conn.xrange(keys.clicks(p), '-', '+')) as Array<[string, string[]]>;
      for (const [, fields] of entries) {
        const marked = entryMayRepeat(fields);
        for (const line of entryLines(fields)) {
          const id = decodeClick(line).click_id;
          copies.set(id, [...(copies.get(id) ?? []), marked]);
        }
      }
    }
  } finally {
    await tracker.close();
    await pipeline.close();
    conn.disconnect();
  }
  const c = await chOne('SELECT count() AS n, uniqExact(click_id) AS u FROM clicks');
  // Every recorded click, valid or not (its user agent is a bot's, so none is valid).
  const h = await chOne('SELECT sum(clicks) + sum(invalid_clicks) AS n FROM stats_hourly');
  // What the ingest wrote: each click at most once unmarked, and that copy first in its stream, so "drop a
  // marked click already processed" leaves exactly one row per 302.
  const total = [...copies.values()].reduce((n, c) => n + c.length, 0);
  const droppable = [...copies.values()].reduce((n, c) => n + c.length - 1, 0);
  assert.equal(copies.size, acked, 'the streams hold every acknowledged click');
  for (const [id, c] of copies) {
    assert.ok(
      c.slice(1).every((m) => m),
      `${id}: every copy after the first is marked (${c.join(',')})`,
    );
  }
  assert.ok(droppable > 0, `the stall produced copies (${total} lines for ${acked} clicks): the case is real`);
  // Lost clicks first (a different failure from duplicates), then the duplicates the marker is for.
  assert.equal(c.u, acked, `every acknowledged click is in ClickHouse (distinct click_ids ${c.u}, 302s ${acked})`);
  assert.equal(
    c.n,
    acked,
    `counted once: ${c.n} rows for ${acked} 302s; the streams hold ${total} lines of which ${droppable} are marked ` +
      'copies of a click already seen (the pipeline does not drop them yet)',
  );
  assert.equal(h.n, acked, `stats_hourly clicks ${h.n} for ${acked} 302s`);
});
