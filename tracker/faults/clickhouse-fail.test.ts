/**
 * Fault suite, case 5: ClickHouse refuses every insert for a while (the `clicks` and `conversions` tables detached
 * under the running pipeline, then attached again) while clicks and postbacks arrive. The pipeline retries without
 * acknowledging; afterwards every acknowledged click and conversion is in ClickHouse exactly once and paid once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertExact, faultCase, runLoad, settled } from './harness.ts';

const OUTAGE_AT_MS = 2_000;
const OUTAGE_MS = 5_000;

const c = faultCase();

test('ClickHouse inserts failing for 5 s: every acknowledged click and conversion lands once afterwards', {
  timeout: 120_000,
}, async () => {
  const { world: w, url } = await c.start();
  const pipeline = c.pipeline!;
  const load = runLoad({ url: () => url, world: w, clicks: 1_500, durationMs: 10_000, conversionEvery: 10 });
  await new Promise((r) => setTimeout(r, OUTAGE_AT_MS));
  await pipeline.exec('DETACH TABLE clicks');
  await pipeline.exec('DETACH TABLE conversions');
  await new Promise((r) => setTimeout(r, OUTAGE_MS));
  // The outage was real: inserts into a detached table fail.
  await assert.rejects(pipeline.exec("INSERT INTO clicks (link_code) VALUES ('probe')"));
  await pipeline.exec('ATTACH TABLE clicks');
  await pipeline.exec('ATTACH TABLE conversions');
  const acked = await load;
  assert.equal(acked.clickFailures, 0);
  assert.equal(acked.conversionFailures, 0);
  const h = await settled(pipeline, c.env.sql, w, acked);
  assertExact(h, acked, w);
  assert.equal(h.payable, acked.conversions.size);
});
