import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type ClickHouseClient, createLogger } from '../../infra/index.ts';
import { createTestEnv, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { createLedger } from '../../ledger/index.ts';
import { createReports } from '../reports/reports.ts';
import type { Pipeline } from './runner.ts';
import { addClicks, addConversions, makeClick, makeConversion, startTestPipeline } from './testing.ts';

let env: TestEnv;
let ch: ClickHouseClient;
let pipeline: Pipeline;
let ledger: ReturnType<typeof createLedger>;

before(async () => {
  env = await createTestEnv({ clickhouse: true, env: { STREAM_PARTITIONS: '1', PIPELINE_BLOCK_MS: '20' } });
  ch = env.ch!;
  const logger = createLogger({ level: env.config.LOG_LEVEL });
  ledger = createLedger({ config: env.config, logger, sql: env.sql, redis: env.redis, keys: env.keys });
  pipeline = await startTestPipeline(env, {
    logger,
    consumerName: 'seam',
    conversionSink: ledger.sink,
    clickChargeSink: ledger.clickSink,
  });
});

after(async () => {
  await pipeline?.close();
  await env?.close();
});

test('a conversion the ledger refuses (unfunded advertiser) is rejected in ClickHouse and reports too, counted once', async () => {
  const s = await seedCampaign(env.sql); // active, no budget, advertiser wallet empty
  const ts = Date.UTC(2024, 5, 1, 10, 0, 0);
  const click = makeClick(s, { ts_ms: ts });
  await addClicks(env.redis, env.keys, 0, [click]);
  await addConversions(env.redis, env.keys, 0, [
    makeConversion(s, click.click_id, { event_id: 'unfunded', event_time_ms: ts + 60_000 }),
  ]);
  // The ledger's refusal is the conversion's version 1, shipped after (or before) the pipeline's version 0.
  const rows = async () => {
    const rs = await ch.query({
      query: `SELECT status, reject_reason, version, sign FROM conversions WHERE advertiser_id = {a:UInt64}
        ORDER BY version, sign`,
      format: 'JSONEachRow',
      query_params: { a: s.advertiserId },
    });
    return rs.json<{ status: string; reject_reason: string; version: number; sign: number }>();
  };
  await waitFor('both versions of the conversion in ClickHouse', async () => (await rows()).length === 3);
  const [pg] = await env.sql<{ status: string; reject_reason: string; version: number }[]>`
    select status, reject_reason, version from conversions where advertiser_id = ${s.advertiserId}`;
  assert.deepEqual(pg, { status: 'rejected', reject_reason: 'budget_exhausted', version: 1 });
  // Version 0 is the row as recorded (never the refused state, which would then count twice), cancelled by
  // version 1's first row.
  assert.deepEqual(await rows(), [
    { status: 'approved', reject_reason: '', version: 0, sign: -1 },
    { status: 'approved', reject_reason: '', version: 0, sign: 1 },
    { status: 'rejected', reject_reason: 'budget_exhausted', version: 1, sign: 1 },
  ]);
  // Hourly aggregates (by campaign) and raw rows (by sub1) agree: nothing accepted, nothing below zero.
  for (const group_by of ['campaign', 'sub1'] as const) {
    const r = await createReports(ch).report({
      group_by,
      from: '2024-06-01',
      to: '2024-06-01',
      tz: 'UTC',
      advertiser_id: s.advertiserId,
      page: 1,
      per_page: 10,
    });
    assert.deepEqual(
      r.rows.map((x) => [x.clicks, x.conversions, x.revenue, x.payout]),
      [[1, 0, 0, 0]],
      group_by,
    );
  }
  const report = await createReports(ch).report({
    group_by: 'campaign',
    from: '2024-06-01',
    to: '2024-06-01',
    tz: 'UTC',
    advertiser_id: s.advertiserId,
    page: 1,
    per_page: 10,
  });
  assert.equal(report.rows[0]!.clicks, 1);
  assert.equal(report.rows[0]!.conversions, 0);
  assert.equal(report.rows[0]!.revenue, 0);
});

test('CPC: valid clicks are charged to the campaign once, fraud-flagged ones are not', async () => {
  const s = await seedCampaign(env.sql, {
    payout_model: 'CPC',
    payout_amount: 30,
    revenue_amount: 50,
    budget: 10_000,
    status: 'draft',
  });
  await ledger.fund({
    advertiserId: s.advertiserId,
    amount: 10_000,
    currency: 'USD',
    reference: 'cpc test',
    idempotencyKey: 'cpc-1',
  });
  await ledger.activateCampaign(s.campaignId);
  const ts = Date.UTC(2024, 5, 2, 10, 0, 0);
  const valid = [0, 1, 2].map((i) => makeClick(s, { ts_ms: ts + i, ip: `198.51.100.${i + 1}` }));
  const bot = makeClick(s, { ts_ms: ts + 5, ip: '198.51.100.9', user_agent: 'curl/8.0' });
  await addClicks(env.redis, env.keys, 0, [...valid, bot]);
  await waitFor('the CPC charge', async () => {
    const [b] = await ledger.advertiserBalances(s.advertiserId);
    return b?.spent === 150;
  });
  const [adv] = await ledger.advertiserBalances(s.advertiserId);
  assert.equal(adv!.spent, 3 * 50, 'three valid clicks at 50 each; the bot click is not charged');
  assert.equal(adv!.reserved, 10_000 - 150);
  const [aff] = await ledger.affiliateBalances(s.affiliateId);
  assert.equal(aff!.approved, 3 * 30);
});
