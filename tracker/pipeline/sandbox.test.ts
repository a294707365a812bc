/**
 * Test-mode (sandbox) campaigns through the real pipeline and ledger: their clicks and conversions are stored like
 * any other (so the sandbox shows them), but no CPC charge or conversion settlement reaches the ledger. A live
 * campaign of the same advertiser in the same batches is charged and settled, so the seam is known to work.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger } from '../../infra/index.ts';
import { createTestEnv, type Seeded, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { createLedger } from '../../ledger/index.ts';
import type { Pipeline } from './runner.ts';
import { addClicks, addConversions, makeClick, makeConversion, startTestPipeline } from './testing.ts';

let env: TestEnv;
let pipeline: Pipeline;
let ledger: ReturnType<typeof createLedger>;

before(async () => {
  env = await createTestEnv({ clickhouse: true, env: { STREAM_PARTITIONS: '1', PIPELINE_BLOCK_MS: '20' } });
  const logger = createLogger({ level: env.config.LOG_LEVEL });
  ledger = createLedger({ config: env.config, logger, sql: env.sql, redis: env.redis, keys: env.keys });
  pipeline = await startTestPipeline(env, {
    logger,
    consumerName: 'sandbox',
    conversionSink: ledger.sink,
    clickChargeSink: ledger.clickSink,
  });
});

after(async () => {
  await pipeline?.close();
  await env?.close();
});

/** Ledger postings about campaign `id`, as `type` names. */
async function postingsOf(id: number): Promise<string[]> {
  const rows = await env.sql<{ type: string }[]>`
    select type from ledger_postings where campaign_id = ${id} order by created_at, id`;
  return rows.map((r) => r.type);
}

async function countIn(table: 'clicks' | 'conversions', campaignId: number): Promise<number> {
  const rs = await env.ch!.query({
    query: `SELECT count() AS n FROM ${table} WHERE campaign_id = {c:UInt64}`,
    format: 'JSONEachRow',
    query_params: { c: campaignId },
  });
  return Number((await rs.json<{ n: string }>())[0]!.n);
}

test('a test-mode campaign: conversions recorded pending, CPC clicks stored, no ledger money; live ones are posted', async () => {
  // A funded live CPA campaign, and test-mode CPA and CPC campaigns of the same advertiser (active as the API
  // leaves them: never through the ledger, so nothing reserved).
  const live = await seedCampaign(env.sql, { status: 'draft', budget: 10_000 });
  await ledger.fund({
    advertiserId: live.advertiserId,
    amount: 50_000,
    currency: 'USD',
    reference: 'sandbox test',
    idempotencyKey: 'sandbox-fund',
  });
  await ledger.activateCampaign(live.campaignId);
  const sandbox = await seedCampaign(env.sql, { mode: 'test', budget: 10_000 });
  const cpc = await seedCampaign(env.sql, {
    mode: 'test',
    payout_model: 'CPC',
    payout_amount: 30,
    revenue_amount: 50,
    budget: 10_000,
  });
  const [before] = await ledger.advertiserBalances(live.advertiserId);

  const ts = Date.now();
  const click = (s: Seeded, i: number) => makeClick(s, { ts_ms: ts + i, ip: `198.51.100.${i + 1}` });
  const liveClick = click(live, 0);
  const sandboxClick = click(sandbox, 1);
  await addClicks(env.redis, env.keys, 0, [liveClick, sandboxClick, click(cpc, 2), click(cpc, 3)]);
  await addConversions(env.redis, env.keys, 0, [
    makeConversion(live, liveClick.click_id, { event_id: 'live-1', status: 'pending' }),
    makeConversion(sandbox, sandboxClick.click_id, { event_id: 'sandbox-1', status: 'pending' }),
  ]);
  await waitFor('both conversions and the CPC clicks in ClickHouse', async () => {
    return (
      (await countIn('conversions', live.campaignId)) === 1 &&
      (await countIn('conversions', sandbox.campaignId)) === 1 &&
      (await countIn('clicks', cpc.campaignId)) === 2
    );
  });

  const rows = await env.sql<{ campaign_id: number; status: string; payout: number; revenue: number }[]>`
    select campaign_id::int, status, payout, revenue from conversions
    where campaign_id in (${live.campaignId}, ${sandbox.campaignId}) order by event_id`;
  assert.deepEqual(
    [...rows],
    [
      { campaign_id: live.campaignId, status: 'pending', payout: 500, revenue: 700 },
      { campaign_id: sandbox.campaignId, status: 'pending', payout: 500, revenue: 700 },
    ],
  );
  // The live conversion is settled (spent 7.00 from its reservation); nothing for the test-mode campaigns.
  assert.ok((await postingsOf(live.campaignId)).length >= 2, 'reserve and settle postings of the live campaign');
  assert.deepEqual(await postingsOf(sandbox.campaignId), []);
  assert.deepEqual(await postingsOf(cpc.campaignId), []);
  const [afterAdv] = await ledger.advertiserBalances(live.advertiserId);
  assert.equal(afterAdv!.spent, before!.spent + 700);
  assert.equal(afterAdv!.total, before!.total - 700);
  for (const s of [sandbox, cpc]) {
    assert.deepEqual(await ledger.advertiserBalances(s.advertiserId), []);
    assert.deepEqual(await ledger.affiliateBalances(s.affiliateId), []);
  }
});
