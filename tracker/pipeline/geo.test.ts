/**
 * GeoIP through the pipeline (issue 16, item 1) against real Redis, Postgres and chDB: every click's `country` in
 * ClickHouse comes from its IP (the packaged MMDB), its conversion carries it (Postgres and ClickHouse), an
 * ingest-invalid targeting click keeps its reason and counts invalid, and `country` works as a report dimension.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ClickHouseClient, PricedConversion } from '../../infra/index.ts';
import { createTestEnv, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { createReports } from '../reports/reports.ts';
import type { Pipeline } from './runner.ts';
import { addClicks, addConversions, makeClick, makeConversion, startCollectingPipeline } from './testing.ts';

let env: TestEnv;
let ch: ClickHouseClient;
let pipeline: Pipeline;
const sunk: PricedConversion[] = [];

before(async () => {
  env = await createTestEnv({
    clickhouse: true,
    env: { STREAM_PARTITIONS: '2', PIPELINE_BLOCK_MS: '20', PIPELINE_BATCH_SIZE: '50' },
  });
  ch = env.ch!;
  pipeline = await startCollectingPipeline(env, sunk, { consumerName: 'geo' });
});

after(async () => {
  await pipeline?.close();
  await env?.close();
});

async function rows<T>(query: string, params: Record<string, unknown>): Promise<T[]> {
  const rs = await ch.query({
    query,
    format: 'JSONEachRow',
    query_params: params,
    clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
  });
  return rs.json<T>();
}

test('country of every click in ClickHouse, on its conversion, and as a report dimension', async () => {
  const s = await seedCampaign(env.sql, { payout_amount: 500, revenue_amount: 700 });
  const ts = Date.UTC(2024, 6, 1, 12, 0, 0);
  // Public addresses whose country the packaged database gives (checked in tracker/geo/geoip.test.ts).
  const us = makeClick(s, { ts_ms: ts, ip: '8.8.8.8' });
  const us6 = makeClick(s, { ts_ms: ts + 1, ip: '2001:4860:4860::8888' });
  const gb = makeClick(s, { ts_ms: ts + 2, ip: '81.2.69.142' });
  const priv = makeClick(s, { ts_ms: ts + 3, ip: '10.1.2.3' });
  // Sent to the fallback by the ingest's targeting: the pipeline keeps the reason and counts it invalid.
  const offGeo = makeClick(s, { ts_ms: ts + 4, ip: '193.0.6.139', invalid_reason: 'geo_mismatch' });
  await addClicks(env.redis, env.keys, 0, [us, us6, gb]);
  await addClicks(env.redis, env.keys, 1, [priv, offGeo]);
  await waitFor('clicks in ClickHouse', async () => {
    const r = await rows<{ n: number }>('SELECT count() AS n FROM clicks WHERE campaign_id = {c:UInt64}', {
      c: s.campaignId,
    });
    return r[0]!.n === 5;
  });
  const got = await rows<{ id: string; country: string; invalid_reason: string; is_invalid: number }>(
    `SELECT toString(click_id) AS id, country, invalid_reason, is_invalid FROM clicks
     WHERE campaign_id = {c:UInt64} ORDER BY ts`,
    { c: s.campaignId },
  );
  assert.deepEqual(
    got.map((r) => [r.id, r.country, r.invalid_reason, r.is_invalid]),
    [
      [us.click_id, 'US', '', 0],
      [us6.click_id, 'US', '', 0],
      [gb.click_id, 'GB', '', 0],
      [priv.click_id, '', '', 0],
      [offGeo.click_id, 'NL', 'geo_mismatch', 1],
    ],
  );

  await addConversions(env.redis, env.keys, 0, [
    makeConversion(s, gb.click_id, { event_id: 'geo-1', event_time_ms: ts + 60_000 }),
    makeConversion(s, offGeo.click_id, { event_id: 'geo-2', event_time_ms: ts + 60_000 }),
  ]);
  await waitFor('conversions in ClickHouse', async () => {
    const r = await rows<{ n: number }>('SELECT count() AS n FROM conversions WHERE campaign_id = {c:UInt64}', {
      c: s.campaignId,
    });
    return r[0]!.n === 1;
  });
  const pg = await env.sql<{ event_id: string; country: string | null; status: string; reject_reason: string }[]>`
    select event_id, country, status, reject_reason from conversions
    where advertiser_id = ${s.advertiserId} order by event_id`;
  assert.deepEqual(
    pg.map((r) => [r.event_id, r.country, r.status, r.reject_reason]),
    [
      ['geo-1', 'GB', 'approved', null],
      // A click outside the targeting earns nothing (not kept for attribution: ./steps/store-clicks.ts).
      ['geo-2', null, 'rejected', 'unknown_click'],
    ],
  );
  const chConv = await rows<{ event_id: string; country: string }>(
    'SELECT event_id, country FROM conversions WHERE campaign_id = {c:UInt64} ORDER BY event_id',
    { c: s.campaignId },
  );
  assert.deepEqual(
    chConv.map((r) => [r.event_id, r.country]),
    [['geo-1', 'GB']],
  );

  const report = await createReports(ch).report({
    group_by: 'country',
    from: '2024-07-01',
    to: '2024-07-01',
    tz: 'UTC',
    advertiser_id: s.advertiserId,
    page: 1,
    per_page: 10,
  });
  const by = Object.fromEntries(
    report.rows.map((r) => [r.key, [r.clicks, r.invalid_clicks, r.conversions, r.payout]] as const),
  );
  assert.deepEqual(by, {
    US: [2, 0, 0, 0],
    GB: [1, 0, 1, 500],
    // The off-target click is invalid: not in (valid) clicks, counted in invalid_clicks.
    NL: [0, 1, 0, 0],
    '': [1, 0, 0, 0],
  });
});
