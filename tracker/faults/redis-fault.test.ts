/**
 * Fault suite, case 3: the tracker's and pipeline's Redis is stalled (SIGSTOP, longer than the tracker's Redis
 * timeout) during a load of clicks and postbacks, then killed with SIGKILL while stalled, and started again on its
 * append-only file. Clicks answered meanwhile went to the tracker's spool and are replayed; postbacks that could not
 * be stored were answered 503 and retried by the sender. Afterwards the stores hold exactly what was acknowledged.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { type LocalService, startLocalRedis } from '../../infra/index.ts';
import { assertExact, faultCase, runLoad, settled } from './harness.ts';

const STALL_AT_MS = 3_000;
const STALL_MS = 2_000;
const DOWN_MS = 2_000;

const c = faultCase();
let redis: (LocalService & { port: number; process: { pid?: number } }) | undefined;

test('Redis stalled, then killed and restarted, during clicks and postbacks: nothing lost, nothing twice', {
  timeout: 120_000,
}, async () => {
  const dir = path.join(c.env.dir, 'private-redis');
  redis = await startLocalRedis({ dir, persistent: true });
  c.cleanup.push(async () => {
    if (redis?.process.pid) process.kill(redis.process.pid, 'SIGCONT');
    await redis?.stop();
  });
  const { world: w, url } = await c.start({ REDIS_URL: redis.url });
  const load = runLoad({ url: () => url, world: w, clicks: 2_000, durationMs: 12_000, conversionEvery: 10 });
  await new Promise((r) => setTimeout(r, STALL_AT_MS));
  const pid = redis.process.pid!;
  process.kill(pid, 'SIGSTOP');
  await new Promise((r) => setTimeout(r, STALL_MS));
  // SIGKILL reaches a stopped process; what Redis acknowledged is in its append-only file (written before replies).
  process.kill(pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, DOWN_MS));
  redis = await startLocalRedis({ dir, port: redis.port, persistent: true });
  const acked = await load;
  assert.equal(acked.clickFailures, 0, 'every click was answered 302 (spooled while Redis was away)');
  assert.equal(acked.conversionFailures, 0, 'every postback was accepted within its retries');
  const h = await settled(c.pipeline!, c.env.sql, w, acked, 90_000);
  assertExact(h, acked, w);
  assert.equal(h.payable, acked.conversions.size);
});
