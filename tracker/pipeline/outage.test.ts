import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClickHouse, createLogger, freePort } from '../../infra/index.ts';
import { createTestEnv, type TestEnv } from '../../infra/testing/index.ts';
import { startPipeline } from './runner.ts';
import { groupStates } from './streams.ts';
import { addClicks, makeClick, seedCampaign, waitFor } from './testing.ts';

let env: TestEnv;

before(async () => {
  env = await createTestEnv({ clickhouse: true, env: { STREAM_PARTITIONS: '1', PIPELINE_BLOCK_MS: '20' } });
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
  const first = await startPipeline({
    config: env.config,
    logger,
    redis: env.redis,
    sql: env.sql,
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
  const second = await startPipeline({
    config: env.config,
    logger,
    redis: env.redis,
    sql: env.sql,
    ch: env.ch!,
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
