import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { ClickHouseClient, PricedConversion } from '../../infra/index.ts';
import { createTestEnv, type Seeded, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { createReports } from '../reports/reports.ts';
import { chTime, clickKey, encodeStoredClick, insertRows, loadStoredClicks, type StoredClick } from './clicks.ts';
import { attribute, recordConversion } from './conversions.ts';
import type { Pipeline } from './runner.ts';
import { batchToken } from './streams.ts';
import { addClicks, addConversions, makeClick, makeConversion, startCollectingPipeline } from './testing.ts';

let env: TestEnv;
let ch: ClickHouseClient;
let pipeline: Pipeline;
const sunk: PricedConversion[] = [];

async function one<T>(query: string, params: Record<string, unknown> = {}): Promise<T> {
  const rs = await ch.query({
    query,
    format: 'JSONEachRow',
    query_params: params,
    clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
  });
  return (await rs.json<T>())[0]!;
}

function processed(kind: 'clicks' | 'conversions') {
  return pipeline
    .stats()
    .streams.filter((s) => s.kind === kind)
    .reduce((n, s) => n + s.processed_events + s.duplicates, 0);
}

before(async () => {
  env = await createTestEnv({
    clickhouse: true,
    env: { STREAM_PARTITIONS: '2', PIPELINE_BLOCK_MS: '20', PIPELINE_BATCH_SIZE: '50' },
  });
  ch = env.ch!;
  pipeline = await startCollectingPipeline(env, sunk, { consumerName: 'test-a' });
});

after(async () => {
  await pipeline?.close();
  await env?.close();
});

describe('ClickHouse idempotent inserts', () => {
  test('the same batch inserted twice with one token counts once, in the table and the aggregates, across months', async () => {
    const s: Seeded = { advertiserId: 900, affiliateId: 901, campaignId: 902, linkCode: 'dedup' };
    const base = Date.UTC(2020, 0, 31, 23, 0, 0);
    const rows = [0, 1, 2].map((i) => {
      const c = makeClick(s, { ts_ms: base + i * 3_600_000 }); // spans January and February
      return {
        click_id: c.click_id,
        ts: chTime(c.ts_ms),
        received: chTime(c.ts_ms),
        link_code: c.link_code,
        campaign_id: c.campaign_id,
        affiliate_id: c.affiliate_id,
        advertiser_id: c.advertiser_id,
        ip: c.ip,
        fraud_reasons: [],
        is_invalid: 0,
      };
    });
    const token = batchToken('test-stream', ['1-0', '2-0']);
    await insertRows(ch, 'clicks', rows, token);
    await insertRows(ch, 'clicks', rows, token);
    const t = await one<{ n: number }>('SELECT count() AS n FROM clicks WHERE campaign_id = 902');
    const a = await one<{ n: number }>('SELECT sum(clicks) AS n FROM stats_hourly WHERE campaign_id = 902');
    assert.equal(t.n, 3);
    assert.equal(a.n, 3);
    await insertRows(ch, 'clicks', rows, batchToken('test-stream', ['3-0']));
    const t2 = await one<{ n: number }>('SELECT count() AS n FROM clicks WHERE campaign_id = 902');
    assert.equal(t2.n, 6, 'another token inserts again (proves the dedup is by token)');
  });

  test('values with tabs, newlines, backslashes and quotes arrive unchanged (TabSeparated escaping)', async () => {
    const nasty = ['a\tb', 'line1\nline2\r', 'back\\slash \\t \\n', "it's 'quoted'", 'ünïcødé ☃ 😀', ''];
    const rows = nasty.map((v, i) => ({
      click_id: randomUUID(),
      ts: chTime(Date.UTC(2021, 5, 1, 12, 0, 0, i)),
      received: chTime(Date.UTC(2021, 5, 1, 12, 0, 0, i)),
      link_code: 'esc',
      campaign_id: 903,
      ip: v,
      sub1: v,
      user_agent: v,
      fraud_score: 0.1234,
      fraud_reasons: [v, "x'y\\z"],
      is_invalid: 0,
    }));
    await insertRows(ch, 'clicks', rows, 'escape-test');
    const rs = await ch.query({
      query:
        'SELECT ip, sub1, user_agent, fraud_reasons, fraud_score, toString(ts) AS ts FROM clicks WHERE campaign_id = 903 ORDER BY ts',
      format: 'JSONEachRow',
    });
    const got = await rs.json<{
      ip: string;
      sub1: string;
      user_agent: string;
      fraud_reasons: string[];
      fraud_score: number;
      ts: string;
    }>();
    assert.deepEqual(
      got.map((r) => [r.ip, r.sub1, r.user_agent, r.fraud_reasons]),
      nasty.map((v) => [v, v, v, [v, "x'y\\z"]]),
    );
    assert.equal(got[1]!.ts, '2021-06-01 12:00:00.001');
    assert.ok(Math.abs(got[0]!.fraud_score - 0.1234) < 1e-6);
  });
});

describe('click stream', () => {
  test('clicks reach ClickHouse once with fraud flags; a malformed entry is dead-lettered with its reason', async () => {
    const s = await seedCampaign(env.sql);
    const ts = Date.UTC(2024, 4, 10, 12, 0, 0);
    const good = makeClick(s, { ts_ms: ts, ip: '198.51.100.7' });
    const bot = makeClick(s, { ts_ms: ts + 1, user_agent: 'Googlebot/2.1 (+http://www.google.com/bot.html)' });
    const head = makeClick(s, { ts_ms: ts + 2, method: 'HEAD' });
    const dup = makeClick(s, { ts_ms: ts + 5_000, ip: '198.51.100.7' });
    // Per-IP features see only clicks already processed, and partitions are processed concurrently, so the
    // duplicate goes to the same partition as its original, after it (README: known limitations).
    await addClicks(env.redis, env.keys, 0, [good, bot]);
    await addClicks(env.redis, env.keys, 0, [dup]);
    await addClicks(env.redis, env.keys, 1, [head]);
    const badId = await env.redis.xadd(env.keys.clicks(0), '*', 'v', '1', 'n', '1', 'd', 'not\ta\tclick');
    await waitFor('4 clicks', () => processed('clicks') >= 4);
    await waitFor('the dead letter', async () => (await env.redis.xlen(env.keys.deadLetter(env.keys.clicks(0)))) === 1);

    const rows = await (
      await ch.query({
        query: `SELECT toString(click_id) AS id, fraud_reasons, is_invalid, sub1, sub3, device
          FROM clicks WHERE campaign_id = {c:UInt64} ORDER BY ts`,
        query_params: { c: s.campaignId },
        format: 'JSONEachRow',
      })
    ).json<{ id: string; fraud_reasons: string[]; is_invalid: number; sub1: string; sub3: string; device: string }>();
    assert.deepEqual(
      rows.map((r) => [r.id, r.fraud_reasons, r.is_invalid]),
      [
        [good.click_id, [], 0],
        [bot.click_id, ['bot_user_agent'], 1],
        [head.click_id, ['head_request'], 1],
        [dup.click_id, ['duplicate_click'], 1],
      ],
    );
    assert.equal(rows[0]!.sub1, 'alpha');
    assert.equal(rows[0]!.sub3, 'default3', "the link's default sub-id fills in");
    assert.equal(rows[0]!.device, 'mobile');

    const dead = (await env.redis.xrange(env.keys.deadLetter(env.keys.clicks(0)), '-', '+')) as Array<
      [string, string[]]
    >;
    const fields = dead[0]![1];
    const dl: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) dl[fields[i]!] = fields[i + 1]!;
    assert.equal(dl.source_id, badId);
    assert.equal(dl.d, 'not\ta\tclick');
    assert.match(dl.reason!, /expected 16 fields/);

    // Everything acknowledged, so trimming removes it.
    await waitFor('acks and trim', async () => (await env.redis.xpending(env.keys.clicks(0), 'pipeline'))[0] === 0);
    await waitFor('trimmed', async () => (await env.redis.xlen(env.keys.clicks(1))) <= 1);
  });
});

describe('click store', () => {
  test('records read back as written, and records in the earlier object form still read', async () => {
    const s = await seedCampaign(env.sql);
    const rec: StoredClick = {
      campaign_id: s.campaignId,
      affiliate_id: s.affiliateId,
      advertiser_id: s.advertiserId,
      link_code: s.linkCode,
      ts_ms: 1_700_000_000_123,
      sub: ['a', '', 'c"q', '', 'e\\'],
      ip: '198.51.100.7',
      country: '',
      device: 'mobile',
      invalid_reason: '',
      fraud_score: 0.6,
      fraud_reasons: ['duplicate_click'],
      features: 'f1 f2',
      entry: '1700000000123-0',
      landing_id: 7,
    };
    const [fresh, old, missing] = [makeClick(s), makeClick(s), makeClick(s)];
    await env.redis.set(clickKey(env.keys, fresh.click_id), encodeStoredClick(rec));
    // The earlier object form had no model features and no entry id.
    const { features: _f, entry: _e, landing_id: _l, ...older } = rec;
    await env.redis.set(clickKey(env.keys, old.click_id), JSON.stringify(older));
    const convs = [fresh, old, missing].map((c) => makeConversion(s, c.click_id));
    assert.deepEqual(
      await loadStoredClicks(
        env.redis,
        env.keys,
        convs.map((c) => c.click_id),
      ),
      [rec, { ...rec, features: '', entry: '', landing_id: 0 }, null],
    );
  });
});

describe('conversion records', () => {
  test('a replay of the same conversion id counts as stored again; another id with the same event_id is a duplicate', async () => {
    const s = await seedCampaign(env.sql);
    const conv = makeConversion(s, '0190a0a0-0000-7000-8000-0000000000aa', { event_id: 'replay' });
    const a = attribute(conv, null, null, 30);
    const first = await recordConversion(env.sql, conv, a);
    const replay = await recordConversion(env.sql, conv, a);
    const other = await recordConversion(env.sql, { ...conv, conversion_id: makeConversion(s, '').conversion_id }, a);
    assert.equal(first.stored, true);
    assert.deepEqual(replay, first, 'the crash-replay rebuilds the same ClickHouse row');
    assert.deepEqual(other, { stored: false, row: null, accepted: null, rejectReason: null });
    const [n] = await env.sql<
      { n: number }[]
    >`select count(*)::int8 as n from conversions where advertiser_id = ${s.advertiserId}`;
    assert.equal(n!.n, 1);
  });
});

describe('conversion stream', () => {
  test('attributes, prices (CPA), records once per (advertiser, event_id) and hands it to the sink once', async () => {
    const s = await seedCampaign(env.sql, { payout_amount: 500, revenue_amount: 700 });
    const sub = env.redis.duplicate();
    const events: Array<{ type: string; user_ids: number[]; id: string }> = [];
    await sub.subscribe(env.keys.events);
    sub.on('message', (_ch, m) => events.push(JSON.parse(m)));
    const click = makeClick(s);
    // The conversion is posted together with its click: attribution must wait for the click, not reject it.
    await Promise.all([
      addClicks(env.redis, env.keys, 1, [click]),
      addConversions(env.redis, env.keys, 0, [makeConversion(s, click.click_id, { event_id: 'order-1' })]),
    ]);
    await addConversions(env.redis, env.keys, 1, [makeConversion(s, click.click_id, { event_id: 'order-1' })]);
    await waitFor('conversions', async () => {
      const [r] = await env.sql<
        { n: number }[]
      >`select count(*)::int8 as n from conversions where advertiser_id = ${s.advertiserId}`;
      return r!.n === 1 && sunk.some((c) => c.advertiser_id === s.advertiserId);
    });
    await waitFor('duplicate seen', () =>
      pipeline.stats().streams.some((x) => x.kind === 'conversions' && x.duplicates >= 1),
    );
    const rows = await env.sql`select * from conversions where advertiser_id = ${s.advertiserId}`;
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.status, 'approved');
    assert.equal(rows[0]!.payout, 500);
    assert.equal(rows[0]!.revenue, 700);
    assert.equal(rows[0]!.campaign_id, s.campaignId);
    assert.equal(rows[0]!.affiliate_id, s.affiliateId);
    assert.equal(rows[0]!.click_id, click.click_id);
    assert.equal(rows[0]!.sub1, 'alpha');
    const mine = sunk.filter((c) => c.advertiser_id === s.advertiserId);
    assert.equal(mine.length, 1);
    assert.equal(mine[0]!.id, rows[0]!.id);
    assert.equal(mine[0]!.currency, 'USD');
    const chRow = await one<{ n: number; payout: number }>(
      'SELECT count() AS n, sum(payout) AS payout FROM conversions WHERE advertiser_id = {a:UInt64}',
      { a: s.advertiserId },
    );
    assert.deepEqual(chRow, { n: 1, payout: 500 });
    await waitFor('live event', () => events.some((e) => e.id === rows[0]!.id));
    const ev = events.find((e) => e.id === rows[0]!.id)!;
    assert.equal(ev.type, 'conversion.created');
    assert.deepEqual(ev.user_ids, [s.advertiserId, s.affiliateId]);
    sub.disconnect();
  });

  test('RevShare takes a share of the sale amount (integer, half down); per-goal overrides apply', async () => {
    const s = await seedCampaign(env.sql, {
      payout_model: 'RevShare',
      payout_percent_bp: 1250,
      revenue_percent_bp: 2000,
      payout_amount: 0,
      revenue_amount: 0,
      goals: [{ goal: 'signup', payout_amount: 100, revenue_amount: 150 }],
    });
    const click = makeClick(s);
    await addClicks(env.redis, env.keys, 0, [click]);
    await addConversions(env.redis, env.keys, 0, [
      makeConversion(s, click.click_id, { event_id: 'sale', goal: 'sale', amount_minor: 1004, currency: 'USD' }),
      makeConversion(s, click.click_id, { event_id: 'signup', goal: 'signup', amount_minor: 0, currency: 'USD' }),
      makeConversion(s, click.click_id, { event_id: 'eur', goal: 'sale', amount_minor: 1000, currency: 'EUR' }),
      makeConversion(s, click.click_id, { event_id: 'none', goal: 'sale' }),
    ]);
    await waitFor('4 rows', async () => {
      const [r] = await env.sql<
        { n: number }[]
      >`select count(*)::int8 as n from conversions where advertiser_id = ${s.advertiserId}`;
      return r!.n === 4;
    });
    const rows = await env.sql<
      { event_id: string; status: string; reject_reason: string | null; payout: number; revenue: number }[]
    >`
      select event_id, status, reject_reason, payout, revenue from conversions
      where advertiser_id = ${s.advertiserId} order by event_id`;
    assert.deepEqual(
      rows.map((r) => ({ ...r })),
      [
        { event_id: 'eur', status: 'rejected', reject_reason: 'currency_mismatch', payout: 0, revenue: 0 },
        { event_id: 'none', status: 'rejected', reject_reason: 'amount_required', payout: 0, revenue: 0 },
        // 1004 × 12.5 % = 125.5 → 125 (half down); 1004 × 20 % = 200.8 → 201
        { event_id: 'sale', status: 'approved', reject_reason: null, payout: 125, revenue: 201 },
        { event_id: 'signup', status: 'approved', reject_reason: null, payout: 100, revenue: 150 },
      ],
    );
  });

  test('rejects unknown, foreign and expired clicks with their reason, and reports count only accepted ones', async () => {
    const s = await seedCampaign(env.sql, { attribution_window_days: 1 });
    const other = await seedCampaign(env.sql);
    const ts = Date.UTC(2024, 5, 1, 10, 0, 0);
    const click = makeClick(s, { ts_ms: ts });
    const foreign = makeClick(other, { ts_ms: ts });
    await addClicks(env.redis, env.keys, 0, [click, foreign]);
    const convs = [
      makeConversion(s, '0190a0a0-0000-7000-8000-00000000dead', { event_id: 'unknown' }),
      makeConversion(s, 'garbage', { event_id: 'garbage' }),
      makeConversion(s, foreign.click_id, { event_id: 'foreign' }),
      makeConversion(s, click.click_id, { event_id: 'expired', event_time_ms: ts + 2 * 86_400_000 }),
      makeConversion(s, click.click_id, { event_id: 'ok', event_time_ms: ts + 3_600_000 }),
      makeConversion(s, click.click_id, { event_id: 'fast', event_time_ms: ts + 1_000 }),
      makeConversion(s, click.click_id, { event_id: 'before', event_time_ms: ts - 3_600_000 }),
    ];
    await addConversions(env.redis, env.keys, 1, convs);
    await waitFor('7 rows', async () => {
      const [r] = await env.sql<
        { n: number }[]
      >`select count(*)::int8 as n from conversions where advertiser_id = ${s.advertiserId}`;
      return r!.n === 7;
    });
    const rows = await env.sql<
      { event_id: string; status: string; reject_reason: string | null; fraud_reasons: string[] }[]
    >`
      select event_id, status, reject_reason, fraud_reasons from conversions
      where advertiser_id = ${s.advertiserId} order by event_id`;
    assert.deepEqual(
      rows.map((r) => [r.event_id, r.status, r.reject_reason]),
      [
        ['before', 'rejected', 'event_before_click'],
        ['expired', 'rejected', 'attribution_expired'],
        ['fast', 'approved', null],
        ['foreign', 'rejected', 'unknown_click'],
        ['garbage', 'rejected', 'unknown_click'],
        ['ok', 'approved', null],
        ['unknown', 'rejected', 'unknown_click'],
      ],
    );
    assert.deepEqual(rows.find((r) => r.event_id === 'fast')!.fraud_reasons, ['click_to_conversion_too_short']);

    await waitFor('conversions in ClickHouse', async () => {
      const r = await one<{ n: number }>('SELECT count() AS n FROM conversions WHERE advertiser_id = {a:UInt64}', {
        a: s.advertiserId,
      });
      return r.n === 7;
    });
    const reports = createReports(ch);
    for (const group_by of ['day', 'sub1', 'campaign'] as const) {
      const r = await reports.report({
        group_by,
        from: '2024-06-01',
        to: '2024-06-03',
        tz: 'UTC',
        advertiser_id: s.advertiserId,
        page: 1,
        per_page: 10,
      });
      const sum = r.rows.reduce(
        (a, x) => ({
          clicks: a.clicks + x.clicks,
          conversions: a.conversions + x.conversions,
          payout: a.payout + x.payout,
        }),
        { clicks: 0, conversions: 0, payout: 0 },
      );
      assert.deepEqual(sum, { clicks: 1, conversions: 2, payout: 1000 }, group_by);
    }
  });

  test('a conversion Postgres refuses (unknown advertiser) is dead-lettered, not retried forever', async () => {
    const s = await seedCampaign(env.sql);
    const ghost = makeConversion({ ...s, advertiserId: 987_654 }, '0190a0a0-0000-7000-8000-0000000000bb');
    const id = await addConversions(env.redis, env.keys, 1, [ghost]);
    const dlKey = env.keys.deadLetter(env.keys.conversions(1));
    await waitFor('dead letter', async () => (await env.redis.xlen(dlKey)) > 0);
    const entries = (await env.redis.xrange(dlKey, '-', '+')) as Array<[string, string[]]>;
    const fields = entries.at(-1)![1];
    assert.equal(fields[fields.indexOf('source_id') + 1], id);
    assert.match(fields[fields.indexOf('reason') + 1]!, /refused by Postgres \(23503\)/);
    assert.match(fields[fields.indexOf('d') + 1]!, new RegExp(ghost.conversion_id));
  });
});
