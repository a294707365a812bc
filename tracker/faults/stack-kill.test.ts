/**
 * Fault suite, case 2: the whole stack — tracker, pipeline, Redis and Postgres, each in a process group of its own as
 * `npm start` runs them — is killed with SIGKILL at one instant in the middle of a load of clicks and postbacks, then
 * started again on the same data (Redis's append-only file, Postgres's WAL, chDB's directory, the tracker's spool).
 * Clicks sent while it was down got no answer; postbacks were retried by the sender. Afterwards the stores hold exactly
 * what was acknowledged: nothing lost, nothing twice, every conversion paid once.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import {
  createSql,
  type LocalService,
  migratePostgres,
  type Sql,
  startEmbeddedPostgres,
  startLocalRedis,
} from '../../infra/index.ts';
import { assertExact, faultCase, runLoad, settled, spawnPipeline, spawnTracker } from './harness.ts';

const KILL_AT_MS = 4_000;
const DOWN_MS = 1_000;

const c = faultCase();

/** The process group of `pid` (field 5 of /proc/<pid>/stat, after the parenthesised command). */
function groupOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

test('the whole stack killed -9 mid-load, then restarted: nothing lost, nothing twice, paid once', {
  timeout: 180_000,
}, async () => {
  const redisDir = path.join(c.env.dir, 'stack-redis');
  const pgDir = path.join(c.env.dir, 'stack-pg');
  const startRedis = (port?: number) =>
    startLocalRedis({ dir: redisDir, persistent: true, ownProcessGroup: true, ...(port ? { port } : {}) });
  const startPg = (port?: number) =>
    startEmbeddedPostgres({ dir: pgDir, database: 'faults', ownProcessGroup: true, ...(port ? { port } : {}) });
  let redis: LocalService & { port: number; process: { pid?: number } } = await startRedis();
  let pg: LocalService & { port: number } = await startPg();
  c.cleanup.push(
    () => pg.stop(),
    () => redis.stop(),
  );
  const sql: Sql = createSql(pg.url, { max: 2 });
  c.cleanup.push(() => sql.end({ timeout: 1 }));
  await migratePostgres(sql);
  const { world: w, vars, url } = await c.start({ DATABASE_URL: pg.url, REDIS_URL: redis.url }, sql);
  let trackerUrl = url;
  const load = runLoad({
    url: () => trackerUrl,
    world: w,
    clicks: 2_400,
    durationMs: 14_000,
    conversionEvery: 8,
    postbackRetryMs: 90_000,
  });
  await new Promise((r) => setTimeout(r, KILL_AT_MS));

  // One instant: every group gets its SIGKILL before any of them is waited for (Postgres's backends are in its group).
  const groups = [
    groupOf(redis.process.pid!),
    groupOf(Number(readFileSync(path.join(pgDir, 'postmaster.pid'), 'utf8').split('\n')[0])),
  ];
  const [before] = await sql<{ n: number }[]>`select count(*)::int as n from conversions`;
  const gone = [c.tracker!.kill9(), c.pipeline!.kill9()];
  for (const g of groups) process.kill(-g, 'SIGKILL');
  await Promise.all(gone);
  await new Promise((r) => setTimeout(r, DOWN_MS));

  redis = await startRedis(redis.port);
  pg = await startPg(pg.port);
  c.pipeline = await spawnPipeline(vars);
  c.tracker = await spawnTracker(vars);
  trackerUrl = c.tracker.url;
  const acked = await load;

  assert.ok(before!.n > 0, 'conversions were being stored before the kill');
  assert.ok(acked.clickFailures > 0, 'the kill happened during the load (some clicks got no answer)');
  assert.ok(acked.clicks.size > 1_000, `most clicks were acknowledged (${acked.clicks.size})`);
  assert.equal(acked.conversionFailures, 0, 'every postback was accepted within its retries');
  const h = await settled(c.pipeline, sql, w, acked, 120_000);
  assertExact(h, acked, w);
  assert.equal(h.payable, acked.conversions.size);
});
