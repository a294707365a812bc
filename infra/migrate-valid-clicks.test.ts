/**
 * ClickHouse migration 00004 on a database that already holds traffic: stats_hourly is rebuilt so that every hour,
 * old and new, counts valid clicks only in `clicks` and `unique_state`, old bots (flagged by the fraud rules of the
 * time) get a `bot_reason` from their fraud reasons and land in `bot_clicks`, conversions are kept, and the
 * recreated views count new inserts the new way.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { type ClickHouseClient, createClickHouse } from './clickhouse.ts';
import { CLICKHOUSE_MIGRATIONS_DIR, migrateClickHouse, readMigrations } from './migrate.ts';
import { createTestEnv, type TestEnv } from './testing/index.ts';

let env: TestEnv;
let ch: ClickHouseClient;

before(async () => {
  env = await createTestEnv();
  ch = createClickHouse({ chdbPath: path.join(env.dir, 'clickhouse') });
});
after(async () => {
  await ch?.close();
  await env?.close();
});

let n = 0;
function click(o: { hour: number; ip: string; reasons?: string[]; invalid?: boolean; ua?: string }) {
  n++;
  return {
    click_id: `00000000-0000-7000-8000-${String(n).padStart(12, '0')}`,
    ts: `2026-03-01 ${String(o.hour).padStart(2, '0')}:10:00.000`,
    received: `2026-03-01 ${String(o.hour).padStart(2, '0')}:10:00.000`,
    link_code: 'l1',
    campaign_id: 1,
    affiliate_id: 2,
    advertiser_id: 3,
    currency: 'USD',
    ip: o.ip,
    user_agent: o.ua ?? 'Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0',
    fraud_reasons: o.reasons ?? [],
    fraud_score: o.invalid ? 0.95 : 0,
    is_invalid: o.invalid ? 1 : 0,
  };
}

async function rows<T>(query: string): Promise<T[]> {
  const rs = await ch.query({
    query,
    format: 'JSONEachRow',
    clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
  });
  return rs.json<T>();
}

const HOURS = `SELECT toHour(hour) AS h, sum(clicks) AS clicks, sum(invalid_clicks) AS invalid, sum(bot_clicks) AS bots,
    uniqExactMerge(unique_state) AS uniq, sum(conversions) AS conversions, sum(payout) AS payout
  FROM stats_hourly GROUP BY h ORDER BY h`;

test('00004 rebuilds stats_hourly over existing clicks and conversions, and the new views count valid clicks', async () => {
  const old = mkdtempSync(path.join(env.dir, 'ch-migrations-'));
  for (const f of readdirSync(CLICKHOUSE_MIGRATIONS_DIR).filter((f) => /^0000[123]_/.test(f))) {
    copyFileSync(path.join(CLICKHOUSE_MIGRATIONS_DIR, f), path.join(old, f));
  }
  assert.deepEqual(await migrateClickHouse(ch, old), [1, 2, 3]);
  await ch.insert({
    table: 'clicks',
    format: 'JSONEachRow',
    values: [
      click({ hour: 10, ip: 'a' }),
      click({ hour: 10, ip: 'b' }),
      click({ hour: 10, ip: 'c', reasons: ['bot_user_agent'], invalid: true, ua: 'Slackbot-LinkExpanding 1.0' }),
      click({ hour: 10, ip: 'd', reasons: ['prefetch'], invalid: true }),
      click({ hour: 11, ip: 'a', reasons: ['duplicate_click', 'ip_velocity'], invalid: true }),
      click({ hour: 11, ip: 'e', reasons: ['head_request'], invalid: true }),
    ],
  });
  await ch.insert({
    table: 'conversions',
    format: 'JSONEachRow',
    values: [
      {
        conversion_id: '00000000-0000-7000-8000-000000000101',
        event_id: 'e1',
        click_id: '00000000-0000-7000-8000-000000000001',
        advertiser_id: 3,
        campaign_id: 1,
        affiliate_id: 2,
        status: 'approved',
        currency: 'USD',
        payout: 700,
        revenue: 1000,
        event_time: '2026-03-01 10:30:00.000',
        click_time: '2026-03-01 10:10:00.000',
      },
    ],
  });
  // Before: every click counted, bots included.
  assert.deepEqual(
    (
      await rows<{ clicks: number; invalid: number }>(
        'SELECT sum(clicks) AS clicks, sum(invalid_clicks) AS invalid FROM stats_hourly GROUP BY hour ORDER BY hour',
      )
    ).map((r) => [r.clicks, r.invalid]),
    [
      [4, 2],
      [2, 2],
    ],
  );

  const all = readMigrations(CLICKHOUSE_MIGRATIONS_DIR).map((m) => m.version);
  assert.deepEqual(await migrateClickHouse(ch), all.slice(3));
  assert.deepEqual(await rows(HOURS), [
    { h: 10, clicks: 2, invalid: 2, bots: 2, uniq: 2, conversions: 1, payout: 700 },
    { h: 11, clicks: 0, invalid: 2, bots: 1, uniq: 0, conversions: 0, payout: 0 },
  ]);
  assert.deepEqual(
    (await rows<{ ip: string; bot_reason: string }>('SELECT ip, bot_reason FROM clicks ORDER BY click_id')).map(
      (r) => `${r.ip}:${r.bot_reason}`,
    ),
    ['a:', 'b:', 'c:bot', 'd:prefetch', 'a:', 'e:scanner'],
    'old rows take their kind from the fraud reasons they were flagged with',
  );

  // New inserts, as the pipeline writes them (bot_reason set), go through the recreated views.
  await ch.insert({
    table: 'clicks',
    format: 'JSONEachRow',
    values: [
      { ...click({ hour: 11, ip: 'f' }), bot_reason: '' },
      { ...click({ hour: 11, ip: 'g', reasons: ['bot_user_agent'], invalid: true }), bot_reason: 'previewer' },
    ],
  });
  assert.deepEqual((await rows(HOURS))[1], {
    h: 11,
    clicks: 1,
    invalid: 3,
    bots: 2,
    uniq: 1,
    conversions: 0,
    payout: 0,
  });
  assert.deepEqual(await migrateClickHouse(ch), [], 'a second run applies nothing');
});
