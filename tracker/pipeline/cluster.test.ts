/**
 * The pipeline on a real Redis Cluster (3 local masters, REDIS_CLUSTER=true, 4 partitions spread over
 * them): clicks and conversions written to every partition, as the ingest writes them, reach ClickHouse
 * exactly once and the conversions are attributed. On a cluster every script and multi-key command must
 * keep its keys in one slot (Redis Cluster spec, hash tags / CROSSSLOT), so this is the test of that
 * discipline end to end. Warnings and errors the pipeline logs are collected and shown on failure.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { type ClickHouseClient, isCluster, type PricedConversion } from '../../infra/index.ts';
import { createTestEnv, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import type { Pipeline } from './runner.ts';
import { addClicks, addConversions, makeClick, makeConversion, startCollectingPipeline } from './testing.ts';

const P = 4;
let env: TestEnv;
let ch: ClickHouseClient;
let pipeline: Pipeline | undefined;
const sunk: PricedConversion[] = [];
/** `msg: err` of every warning/error the pipeline logged, in order. */
const logged: string[] = [];

before(async () => {
  env = await createTestEnv({
    clickhouse: true,
    redisCluster: true,
    env: { STREAM_PARTITIONS: String(P), PIPELINE_BLOCK_MS: '20', PIPELINE_BATCH_SIZE: '50' },
  });
  ch = env.ch!;
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        const o = JSON.parse(line) as { msg?: string; err?: unknown };
        logged.push(`${o.msg}: ${typeof o.err === 'string' ? o.err : JSON.stringify(o.err)}`);
      },
    },
  );
  pipeline = await startCollectingPipeline(env, sunk, { logger, consumerName: 'cluster-a' });
});

after(async () => {
  await pipeline?.close();
  await env?.close();
});

async function chCount(query: string, params: Record<string, unknown>): Promise<number> {
  const rs = await ch.query({
    query,
    format: 'JSONEachRow',
    query_params: params,
    clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
  });
  return (await rs.json<{ n: number }>())[0]!.n;
}

/** waitFor, but a timeout says what the pipeline logged (the cluster's refusal, typically). */
async function waitOrExplain(what: string, check: () => Promise<boolean>): Promise<void> {
  try {
    await waitFor(what, check, { timeoutMs: 30_000 });
  } catch (err) {
    const distinct = [...new Set(logged)].slice(0, 5);
    throw new Error(`${(err as Error).message}; pipeline logged:\n  ${distinct.join('\n  ') || '(nothing)'}`);
  }
}

test('on a 3-master cluster, clicks and conversions of all 4 partitions reach ClickHouse once, attributed', {
  timeout: 60_000,
}, async () => {
  assert.ok(isCluster(env.redis), 'the env runs on the Redis Cluster');
  // The partitions really are spread: not every stream on one master.
  const slots = await env.redis.cluster('SLOTS');
  const masterOf = async (key: string) => {
    const slot = (await env.redis.cluster('KEYSLOT', key)) as number;
    const r = slots.find(([from, to]) => slot >= from && slot <= to)!;
    return `${r[2]![0]}:${r[2]![1]}`;
  };
  const masters = new Set(await Promise.all(Array.from({ length: P }, (_, p) => masterOf(env.keys.clicks(p)))));
  assert.ok(masters.size >= 2, 'the 4 click partitions live on at least two masters');

  const s = await seedCampaign(env.sql, { payout_amount: 500, revenue_amount: 700 });
  const clicks = Array.from({ length: P }, (_, p) =>
    Array.from({ length: 3 }, (_, i) => makeClick(s, { ip: `198.51.100.${10 * p + i}` })),
  );
  for (let p = 0; p < P; p++) await addClicks(env.redis, env.keys, p, clicks[p]!);
  // The ingest picks partitions round-robin, independently for clicks and conversions: a conversion
  // usually sits on another partition (and so another slot, often another master) than its click.
  const convs = clicks.map((cs, p) => makeConversion(s, cs[0]!.click_id, { event_id: `order-${p}` }));
  for (let p = 0; p < P; p++) await addConversions(env.redis, env.keys, (p + 1) % P, [convs[p]!]);
  // A repeated postback (same advertiser and event_id) on yet another partition is recorded once.
  await addConversions(env.redis, env.keys, 2, [makeConversion(s, clicks[0]![0]!.click_id, { event_id: 'order-0' })]);

  await waitOrExplain('clicks in ClickHouse', async () => {
    const n = await chCount('SELECT count() AS n FROM clicks WHERE campaign_id = {c:UInt64}', { c: s.campaignId });
    return n >= P * 3;
  });
  await waitOrExplain('conversions recorded', async () => {
    const [r] = await env.sql<{ n: number }[]>`
      select count(*)::int8 as n from conversions where advertiser_id = ${s.advertiserId}`;
    return r!.n >= P && sunk.filter((c) => c.advertiser_id === s.advertiserId).length >= P;
  });
  await waitOrExplain('the repeated postback seen as a duplicate', async () =>
    pipeline!.stats().streams.some((x) => x.kind === 'conversions' && x.duplicates >= 1),
  );

  // Exactly once: every click id once in ClickHouse; every conversion once in Postgres, ClickHouse and the sink.
  const distinctClicks = await chCount(
    'SELECT count() AS n, uniqExact(click_id) AS u FROM clicks WHERE campaign_id = {c:UInt64} HAVING n = u',
    { c: s.campaignId },
  );
  assert.equal(distinctClicks, P * 3);
  const rows = await env.sql<{ event_id: string; click_id: string; campaign_id: number; affiliate_id: number }[]>`
    select event_id, click_id, campaign_id, affiliate_id from conversions
    where advertiser_id = ${s.advertiserId} order by event_id`;
  assert.deepEqual(
    rows.map((r) => [r.event_id, r.click_id, Number(r.campaign_id), Number(r.affiliate_id)]),
    convs.map((c) => [c.event_id, c.click_id, s.campaignId, s.affiliateId]),
  );
  assert.equal(sunk.filter((c) => c.advertiser_id === s.advertiserId).length, P);
  const chConv = await chCount('SELECT count() AS n FROM conversions WHERE advertiser_id = {a:UInt64}', {
    a: s.advertiserId,
  });
  assert.equal(chConv, P);
  // Every partition of both streams did work.
  for (const st of pipeline!.stats().streams) {
    assert.ok(st.processed_events + st.duplicates > 0, `${st.stream} processed something`);
  }
});
