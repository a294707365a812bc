import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { type ClickHouseClient, createClickHouse } from '../../infra/index.ts';
import { createTestEnv, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import type { PipelineStats } from './runner.ts';
import { groupStates } from './streams.ts';
import { addClicks, forkPipeline, makeClick } from './testing.ts';

const ENTRIES = 40;
const PER_ENTRY = 3;

let env: TestEnv;
let chdbPath: string;
const children: ChildProcess[] = [];

before(async () => {
  env = await createTestEnv({
    env: { STREAM_PARTITIONS: '1', PIPELINE_BATCH_SIZE: '5', PIPELINE_BLOCK_MS: '20', PIPELINE_CLAIM_IDLE_MS: '300' },
  });
  chdbPath = path.join(env.dir, 'clickhouse');
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await env?.close();
});

function startChild(consumer: string, killAfter: number): ChildProcess {
  const child = forkPipeline(env, { chdbPath, consumer, killAfterClickInserts: killAfter });
  children.push(child);
  return child;
}

test('a consumer killed between insert and ack loses and duplicates nothing; another takes over via XAUTOCLAIM', async () => {
  const s = await seedCampaign(env.sql);
  const ids = new Set<string>();
  const t0 = Date.UTC(2024, 2, 31, 22, 0, 0); // the clicks span two months (two ClickHouse partitions)
  for (let e = 0; e < ENTRIES; e++) {
    const clicks = Array.from({ length: PER_ENTRY }, (_, i) =>
      makeClick(s, { ts_ms: t0 + (e * PER_ENTRY + i) * 60_000, ip: `203.0.113.${e}` }),
    );
    for (const c of clicks) ids.add(c.click_id);
    await addClicks(env.redis, env.keys, 0, clicks);
  }
  const stream = env.keys.clicks(0);

  // Consumer a inserts its 3rd batch, then dies before acknowledging it.
  const a = startChild('a', 3);
  const [code, signal] = await once(a, 'exit');
  assert.equal(signal, 'SIGKILL', `child a exited with ${code}`);
  const pending = (await env.redis.xpending(stream, 'pipeline')) as [number, string, string, [string, string][]];
  assert.equal(pending[0], 5, 'the killed batch stays pending');
  assert.deepEqual(pending[3], [['a', '5']]);

  // Consumer b (a fresh process, different name) reopens the chDB dir and takes over.
  const b = startChild('b', 0);
  await waitFor(
    'everything acknowledged',
    async () => {
      const g = (await groupStates(env.redis, stream)).get('pipeline');
      return g !== undefined && g.pending === 0 && g.lag === 0;
    },
    { timeoutMs: 60_000 },
  );
  const statsMsg = new Promise<{ stats: PipelineStats }>((resolve) => {
    b.on('message', (m: { type: string; stats: PipelineStats }) => {
      if (m.type === 'stats') resolve(m);
    });
  });
  b.send('stats');
  const msg = await statsMsg;
  const st = msg.stats.streams.find((x) => x.stream === stream)!;
  assert.equal(st.recovered_batches, 1, 'b rebuilt the dead consumer’s batch from its manifest');
  assert.equal(st.processed_entries, ENTRIES - 2 * 5, 'b acknowledged everything a did not');
  b.send('close');
  await once(b, 'exit');

  const ch: ClickHouseClient = createClickHouse({ chdbPath });
  try {
    const q = async (query: string) =>
      (
        await (
          await ch.query({
            query,
            format: 'JSONEachRow',
            clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
          })
        ).json<{ n: number; u: number }>()
      )[0]!;
    const total = ENTRIES * PER_ENTRY;
    assert.deepEqual(await q('SELECT count() AS n, uniqExact(click_id) AS u FROM clicks'), { n: total, u: total });
    const agg = await q('SELECT sum(clicks) + sum(invalid_clicks) AS n, toUInt64(0) AS u FROM stats_hourly');
    assert.equal(agg.n, total, 'the aggregates count each click once');
    const stored = await (
      await ch.query({ query: 'SELECT toString(click_id) AS id FROM clicks', format: 'JSONEachRow' })
    ).json<{ id: string }>();
    assert.deepEqual(new Set(stored.map((r) => r.id)), ids);
  } finally {
    await ch.close();
  }
  assert.equal(await env.redis.hlen(env.keys.key('manifest', stream)), 0, 'no manifest left behind');
});
