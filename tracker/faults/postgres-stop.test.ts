/**
 * Fault suite, case 4: Postgres is stopped while postbacks arrive, then started again. Conversions the tracker
 * accepted wait in their stream (the pipeline retries without acknowledging) and postbacks it could not authenticate
 * were answered 503 and retried by the sender; once Postgres is back each conversion is stored once, paid once, and in
 * ClickHouse once. A private embedded Postgres, so the stop hurts no other test.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createSql, type LocalService, migratePostgres, type Sql, startEmbeddedPostgres } from '../../infra/index.ts';
import { createTestEnv, type TestEnv } from '../../infra/testing/index.ts';
import {
  assertExact,
  childVars,
  type PipelineProc,
  runLoad,
  seedWorld,
  settled,
  spawnPipeline,
  spawnTracker,
  type TrackerProc,
} from './harness.ts';

const STOP_AT_MS = 3_000;
const DOWN_MS = 4_000;

let env: TestEnv;
let pg: (LocalService & { port: number }) | undefined;
let sql: Sql | undefined;
let tracker: TrackerProc | undefined;
let pipeline: PipelineProc | undefined;

before(async () => {
  env = await createTestEnv();
});
after(async () => {
  await tracker?.stop();
  await pipeline?.stop();
  await sql?.end({ timeout: 1 });
  await pg?.stop();
  await env?.close();
});

test('Postgres stopped while conversions arrive: they wait, then each is paid once', { timeout: 150_000 }, async () => {
  const dir = path.join(env.dir, 'private-pg');
  pg = await startEmbeddedPostgres({ dir, database: 'faults' });
  sql = createSql(pg.url, { max: 2 });
  await migratePostgres(sql);
  const w = await seedWorld(sql);
  const vars = childVars(env.config, { DATABASE_URL: pg.url });
  tracker = await spawnTracker(vars);
  pipeline = await spawnPipeline(vars);
  const url = tracker.url;
  const load = runLoad({
    url: () => url,
    world: w,
    clicks: 1_200,
    durationMs: 12_000,
    conversionEvery: 5,
    postbackRetryMs: 60_000,
  });
  await new Promise((r) => setTimeout(r, STOP_AT_MS));
  const [before] = await sql<{ n: number }[]>`select count(*)::int as n from conversions`;
  await pg.stop();
  await new Promise((r) => setTimeout(r, DOWN_MS));
  pg = await startEmbeddedPostgres({ dir, database: 'faults', port: pg.port });
  const acked = await load;
  assert.ok(before!.n > 0, 'conversions were being stored before the stop');
  assert.equal(acked.clickFailures, 0, 'clicks do not need Postgres (link cache, Redis)');
  assert.equal(acked.conversionFailures, 0, 'every postback was accepted within its retries');
  const h = await settled(pipeline, sql, w, acked, 90_000);
  assertExact(h, acked, w);
  assert.equal(h.payable, acked.conversions.size);
});
