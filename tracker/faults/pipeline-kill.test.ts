/**
 * Fault suite, case 1: the pipeline (`npm start`'s pipeline role, in its own process) is killed with SIGKILL in the
 * middle of its batches ten times in a row while clicks and postbacks arrive; each time a new one starts on the same
 * chDB directory and consumer name. Afterwards ClickHouse, Postgres and the ledger hold exactly what was
 * acknowledged: no click or conversion lost or counted twice, each conversion paid once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../../infra/testing/index.ts';
import { assertExact, faultCase, runLoad, settled, spawnPipeline } from './harness.ts';

const KILLS = 10;
const CLICKS = 3_000;
const LOAD_MS = 20_000;

const c = faultCase();

test('kill -9 of the pipeline mid-batch, 10 times in a row: every acknowledged click and conversion once', {
  timeout: 150_000,
}, async () => {
  const { world: w, vars, url } = await c.start({ FAULT_KILL_AFTER_INSERT: 'clicks:2' });
  // Restarted after each kill; the case's `after` stops whichever runs last.
  let pipeline = c.pipeline!;
  const load = runLoad({ url: () => url, world: w, clicks: CLICKS, durationMs: LOAD_MS, conversionEvery: 10 });
  let kills = 0;
  let selfKilled = 0;
  let inserted = 0;
  while (kills < KILLS) {
    // Two kills in three land exactly between a ClickHouse insert and its XACK (the child kills itself there: after
    // a click batch, then after a conversion batch); the third at a random moment once it has inserted something.
    const point = (['clicks:2', 'conversions:1', ''] as const)[kills % 3]!;
    const gone = new Promise<boolean>((resolve) => pipeline.child.once('exit', () => resolve(true)));
    if (point === '') {
      const before = inserted;
      inserted = await waitFor(
        'new click rows',
        async () => Number((await pipeline.query('SELECT count() AS n FROM clicks'))[0]!.n),
        { until: (n) => n > before, timeoutMs: 30_000, intervalMs: 50 },
      );
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 300)));
      await pipeline.kill9();
    } else if (await Promise.race([gone, new Promise((r) => setTimeout(() => r(false), 10_000))])) {
      selfKilled++;
    } else {
      await pipeline.kill9();
    }
    kills++;
    const next = kills % 3;
    pipeline = c.pipeline = await spawnPipeline({
      ...vars,
      FAULT_KILL_AFTER_INSERT: ['clicks:2', 'conversions:1', ''][next]!,
    });
  }
  const acked = await load;
  assert.equal(kills, KILLS);
  assert.ok(selfKilled >= 5, `${selfKilled} kills landed between an insert and its ack`);
  assert.equal(acked.clickFailures, 0, 'the tracker answered every click (only the pipeline was killed)');
  assert.equal(acked.conversionFailures, 0);
  assert.ok(acked.conversions.size >= CLICKS / 10 - 1, `${acked.conversions.size} postbacks accepted`);
  await pipeline.stop();
  pipeline = c.pipeline = await spawnPipeline({ ...vars, FAULT_KILL_AFTER_INSERT: '' });
  const h = await settled(pipeline, c.env.sql, w, acked);
  assertExact(h, acked, w);
  assert.equal(h.payable, acked.conversions.size, 'every conversion is payable (the wallet covers them all)');
});
