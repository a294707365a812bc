import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventLogKey } from '../../infra/index.ts';
import { createTestEnv, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { PermanentError } from './step-runner.ts';
import { addClicks, makeClick, startTestPipeline } from './testing.ts';

let env: TestEnv;

before(async () => {
  env = await createTestEnv({
    clickhouse: true,
    env: { STREAM_PARTITIONS: '1', PIPELINE_BLOCK_MS: '20', PIPELINE_LINGER_MS: '0', PIPELINE_BATCH_SIZE: '1' },
  });
});

after(async () => {
  await env?.close();
});

test('a batch that can never succeed is parked with its reason and an alert, and the partition moves on', async () => {
  const s = await seedCampaign(env.sql);
  const poisoned = makeClick(s);
  const fine = [makeClick(s), makeClick(s)];
  const poisonedId = await addClicks(env.redis, env.keys, 0, [poisoned]);
  for (const c of fine) await addClicks(env.redis, env.keys, 0, [c]);
  const p = await startTestPipeline(env, {
    consumerName: 'parker',
    maintenanceIntervalMs: 50,
    testHooks: {
      afterInsert({ ids }) {
        if (ids.includes(poisonedId)) throw new PermanentError('refused for good');
      },
    },
  });
  try {
    const clicks = () => p.stats().streams.find((x) => x.kind === 'clicks')!;
    await waitFor('the later batches', () => clicks().processed_entries === 3);
    assert.equal(clicks().parked_batches, 1);
    const dead = (await env.redis.xrange(env.keys.deadLetter(env.keys.clicks(0)), '-', '+')) as Array<
      [string, string[]]
    >;
    assert.equal(dead.length, 1);
    const f = dead[0]![1];
    const field = (k: string) => f[f.indexOf(k) + 1];
    assert.equal(field('source_id'), poisonedId);
    assert.match(field('reason')!, /^parked: insert_clicks: refused for good$/);
    const alerts = (await env.redis.xrange(eventLogKey(env.keys), '-', '+')) as Array<[string, string[]]>;
    const parked = alerts.map(([, fields]) => JSON.parse(fields[1]!)).filter((e) => e.type === 'pipeline.batch_parked');
    assert.equal(parked.length, 1);
    assert.equal(parked[0].data.step, 'insert_clicks');
    assert.equal((await env.redis.xpending(env.keys.clicks(0), 'pipeline'))[0], 0, 'nothing left pending');
  } finally {
    await p.close();
  }
});
