import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClickHouse, createLogger, freePort } from '../../infra/index.ts';
import { createTestEnv, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { ensureStreamGroups, groupStates } from './streams.ts';
import { addClicks, makeClick, startTestPipeline } from './testing.ts';

let env: TestEnv;

before(async () => {
  env = await createTestEnv({
    clickhouse: true,
    env: { STREAM_PARTITIONS: '1', PIPELINE_BLOCK_MS: '20', PIPELINE_CLAIM_IDLE_MS: '200' },
  });
});

after(async () => {
  await env?.close();
});

test('a ClickHouse outage is retried without XACK, trimming keeps the pending entries, and a restart finishes them once', async () => {
  const s = await seedCampaign(env.sql);
  const stream = env.keys.clicks(0);
  for (let e = 0; e < 3; e++) await addClicks(env.redis, env.keys, 0, [makeClick(s), makeClick(s)]);
  const logger = createLogger({ level: env.config.LOG_LEVEL });

  // ClickHouse "down": a real client pointed at a port nobody listens on.
  const down = createClickHouse({ url: `http://127.0.0.1:${await freePort()}`, chdbPath: '' });
  const first = await startTestPipeline(env, {
    logger,
    ch: down,
    consumerName: 'c1',
    maintenanceIntervalMs: 50,
  });
  await waitFor('retries', () => first.stats().streams[0]!.retries >= 3);
  // Let maintenance (and its trim) run a few times while the entries are pending.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(first.stats().streams[0]!.processed_entries, 0);
  const g = (await groupStates(env.redis, stream)).get('pipeline')!;
  assert.equal(g.pending, 3, 'nothing acknowledged during the outage');
  assert.equal(await env.redis.xlen(stream), 3, 'trimming kept every pending entry');
  await first.close();
  await down.close();

  // Back up: the same consumer restarts and finishes its own pending batch with the same token.
  const second = await startTestPipeline(env, {
    logger,
    consumerName: 'c1',
    maintenanceIntervalMs: 50,
  });
  try {
    await waitFor('recovery', () => second.stats().streams[0]!.processed_entries === 3);
    assert.equal(second.stats().streams[0]!.recovered_batches, 1);
    const rs = await env.ch!.query({
      query: 'SELECT count() AS n FROM clicks',
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    });
    assert.deepEqual(await rs.json(), [{ n: 6 }]);
    await waitFor('trimmed after the acks', async () => (await env.redis.xlen(stream)) <= 1);
  } finally {
    await second.close();
  }
});

test('entries a dead consumer read but never inserted (no manifest) are claimed and processed as new batches', async () => {
  const s = await seedCampaign(env.sql);
  const stream = env.keys.clicks(0);
  const rs0 = await env.ch!.query({ query: 'SELECT count() AS n FROM clicks', format: 'JSONEachRow' });
  const before = Number((await rs0.json<{ n: string }>())[0]!.n);
  await ensureStreamGroups(env.redis, env.keys, 1);
  for (let e = 0; e < 4; e++) await addClicks(env.redis, env.keys, 0, [makeClick(s)]);
  // A consumer that reads and dies at once: its entries are pending, with no manifest.
  const read = await env.redis.xreadgroup('GROUP', 'pipeline', 'ghost', 'COUNT', 10, 'STREAMS', stream, '>');
  assert.equal((read as Array<[string, unknown[]]>)[0]![1].length, 4);
  const p = await startTestPipeline(env, {
    consumerName: 'heir',
    maintenanceIntervalMs: 50,
  });
  try {
    await waitFor('takeover', () => p.stats().streams[0]!.processed_entries === 4);
    assert.equal(p.stats().streams[0]!.recovered_batches, 0, 'no manifest: a new batch, not a re-insert');
    const rs = await env.ch!.query({ query: 'SELECT count() AS n FROM clicks', format: 'JSONEachRow' });
    assert.equal(Number((await rs.json<{ n: string }>())[0]!.n) - before, 4);
    const g = (await groupStates(env.redis, stream)).get('pipeline')!;
    assert.equal(g.pending, 0);
  } finally {
    await p.close();
  }
});
