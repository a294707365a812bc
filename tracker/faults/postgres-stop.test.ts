/**
 * Fault suite, case 4: Postgres is stopped while postbacks arrive, then started again. Conversions the tracker
 * accepted wait in their stream (the pipeline retries without acknowledging) and postbacks it could not authenticate
 * were answered 503 and retried by the sender; once Postgres is back each conversion is stored once, paid once, and in
 * ClickHouse once. A private embedded Postgres, so the stop hurts no other test.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { createSql, type LocalService, migratePostgres, type Sql, startEmbeddedPostgres } from '../../infra/index.ts';
import { assertExact, faultCase, runLoad, settled } from './harness.ts';

const STOP_AT_MS = 3_000;
const DOWN_MS = 4_000;

const c = faultCase();
let pg: (LocalService & { port: number }) | undefined;

test('Postgres stopped while conversions arrive: they wait, then each is paid once', { timeout: 150_000 }, async () => {
  const dir = path.join(c.env.dir, 'private-pg');
  pg = await startEmbeddedPostgres({ dir, database: 'faults' });
  c.cleanup.push(() => pg!.stop());
  const sql: Sql = createSql(pg.url, { max: 2 });
  c.cleanup.push(() => sql.end({ timeout: 1 }));
  await migratePostgres(sql);
  const { world: w, url } = await c.start({ DATABASE_URL: pg.url }, sql);
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
  const h = await settled(c.pipeline!, sql, w, acked, 90_000);
  assertExact(h, acked, w);
  assert.equal(h.payable, acked.conversions.size);
});
