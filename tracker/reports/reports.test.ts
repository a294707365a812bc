import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { AppError, type ClickHouseClient, errorBody } from '../../infra/index.ts';
import { createTestEnv, type TestEnv } from '../../infra/testing/index.ts';
import { chTime, insertRows } from '../pipeline/clicks.ts';
import {
  createReports,
  REPORT_GROUP_BY,
  type ReportQuery,
  type ReportRow,
  type Reports,
  reportSql,
} from './reports.ts';

let env: TestEnv;
let ch: ClickHouseClient;
let reports: Reports;

const H = 3_600_000;
/** 2017-11-06 16:30 UTC = 2017-11-07 00:30 in Shanghai = 2017-11-06 22:00 in Kolkata. */
const T0 = Date.UTC(2017, 10, 6, 16, 30, 0);

function clickRow(o: {
  ts: number;
  campaign: number;
  advertiser?: number;
  affiliate?: number;
  ip: string;
  link?: string;
  currency?: string;
  invalid?: boolean;
  /** A previewer, scanner, prefetch or bot: invalid, with this bot_reason. */
  bot?: string;
  sub1?: string;
  device?: string;
  /** The landing page served (default 0: the campaign's destination_url). */
  landing?: number;
}) {
  return {
    click_id: randomUUID(),
    ts: chTime(o.ts),
    received: chTime(o.ts),
    link_code: o.link ?? `l${o.campaign}`,
    campaign_id: o.campaign,
    affiliate_id: o.affiliate ?? 7,
    advertiser_id: o.advertiser ?? 1,
    currency: o.currency ?? 'USD',
    ip: o.ip,
    sub1: o.sub1 ?? '',
    device: o.device ?? 'mobile',
    fraud_reasons: o.bot ? ['bot_user_agent'] : o.invalid ? ['duplicate_click'] : [],
    fraud_score: o.bot ? 0.95 : o.invalid ? 0.6 : 0,
    bot_reason: o.bot ?? '',
    is_invalid: o.invalid || o.bot ? 1 : 0,
    landing_id: o.landing ?? 0,
  };
}

function convRow(o: {
  ts: number;
  campaign: number;
  advertiser?: number;
  payout: number;
  revenue: number;
  currency?: string;
  status?: string;
  sub1?: string;
}) {
  return {
    conversion_id: randomUUID(),
    event_id: randomUUID(),
    click_id: randomUUID(),
    advertiser_id: o.advertiser ?? 1,
    campaign_id: o.campaign,
    affiliate_id: 7,
    status: o.status ?? 'approved',
    amount: -1,
    currency: o.currency ?? 'USD',
    payout: o.payout,
    revenue: o.revenue,
    event_time: chTime(o.ts),
    click_time: chTime(o.ts - H),
    sub1: o.sub1 ?? '',
    device: 'mobile',
  };
}

const q = (over: Partial<ReportQuery>): ReportQuery => ({
  group_by: 'day',
  from: '2017-11-06',
  to: '2017-11-08',
  tz: 'UTC',
  page: 1,
  per_page: 100,
  ...over,
});

const pick = (rows: ReportRow[]) =>
  rows.map((r) => [
    r.key,
    r.currency,
    r.clicks,
    r.unique_clicks,
    r.invalid_clicks,
    r.bot_clicks,
    r.conversions,
    r.payout,
  ]);

before(async () => {
  env = await createTestEnv({ clickhouse: true });
  ch = env.ch!;
  reports = createReports(ch);
  await insertRows(
    ch,
    'clicks',
    [
      clickRow({ ts: T0, campaign: 10, ip: 'a', sub1: 's1' }),
      clickRow({ ts: T0 + 60_000, campaign: 10, ip: 'a', sub1: 's1', invalid: true }), // same IP + link, same day
      clickRow({ ts: T0 + 2 * H, campaign: 10, ip: 'b', sub1: 's2', device: 'desktop', landing: 3 }),
      clickRow({ ts: T0 + H / 2, campaign: 10, ip: 'e', sub1: 's1', bot: 'previewer' }), // a link unfurler
      clickRow({ ts: T0 + 24 * H, campaign: 10, ip: 'a', sub1: 's1' }), // same IP + link, next day
      clickRow({ ts: T0, campaign: 20, ip: 'c', currency: 'EUR' }),
      clickRow({ ts: T0, campaign: 30, advertiser: 2, ip: 'd' }),
    ],
    'seed-clicks',
  );
  await insertRows(
    ch,
    'conversions',
    [
      convRow({ ts: T0 + H, campaign: 10, payout: 500, revenue: 700, sub1: 's1' }),
      convRow({ ts: T0 + 25 * H, campaign: 10, payout: 500, revenue: 700, sub1: 's1', status: 'pending' }),
      convRow({ ts: T0 + H, campaign: 10, payout: 999, revenue: 999, status: 'rejected' }),
      convRow({ ts: T0 + H, campaign: 20, payout: 100, revenue: 150, currency: 'EUR' }),
    ],
    'seed-conversions',
  );
});

after(async () => {
  await env?.close();
});

describe('createReports().report', () => {
  test('by day in UTC: valid clicks, valid unique clicks per IP+link per day, invalid and bot clicks, accepted conversions, per currency', async () => {
    const r = await reports.report(q({ group_by: 'day' }));
    assert.deepEqual(pick(r.rows), [
      ['2017-11-06', 'EUR', 1, 1, 0, 0, 1, 100],
      ['2017-11-06', 'USD', 3, 3, 2, 1, 1, 500],
      ['2017-11-07', 'USD', 1, 1, 0, 0, 1, 500],
    ]);
    assert.equal(r.total, 3);
    const usd = r.rows[1]!;
    // CR and EPC over the 3 valid clicks: the duplicate and the previewer are left out.
    assert.equal(usd.cr, 0.333333);
    assert.equal(usd.epc, 166.6667);
    assert.equal(usd.revenue, 700);
    assert.equal(usd.profit, 200);
  });

  test('a day is a day of the requested time zone (aggregates and raw tables agree)', async () => {
    const shanghai = await reports.report(q({ group_by: 'day', tz: 'Asia/Shanghai' }));
    assert.deepEqual(pick(shanghai.rows), [
      ['2017-11-07', 'EUR', 1, 1, 0, 0, 1, 100],
      ['2017-11-07', 'USD', 3, 3, 2, 1, 1, 500],
      ['2017-11-08', 'USD', 1, 1, 0, 0, 1, 500],
    ]);
    // Kolkata (+05:30) cannot use hourly aggregates; 16:30 UTC is 22:00 there, 18:30 UTC is 00:00 next day.
    const kolkata = await reports.report(q({ group_by: 'day', tz: 'Asia/Kolkata' }));
    assert.deepEqual(pick(kolkata.rows), [
      ['2017-11-06', 'EUR', 1, 1, 0, 0, 1, 100],
      ['2017-11-06', 'USD', 2, 2, 2, 1, 1, 500],
      ['2017-11-07', 'USD', 2, 2, 0, 0, 1, 500],
    ]);
    const sum = (rows: ReportRow[]) => rows.reduce((n, x) => n + x.clicks + x.invalid_clicks, 0);
    assert.equal(sum(kolkata.rows), 7, 'every recorded click is in clicks or invalid_clicks');
    for (const tz of ['UTC', 'Asia/Shanghai', 'America/New_York']) {
      for (const group_by of ['day', 'hour', 'campaign', 'affiliate'] as const) {
        const query = q({ group_by, tz });
        const params = {
          tz,
          from: '2017-11-06 00:00:00',
          until: '2017-11-09 00:00:00',
          limit: 100,
          offset: 0,
        };
        const run = async (agg: boolean) =>
          (
            await (
              await ch.query({
                query: reportSql(query, agg),
                query_params: params,
                format: 'JSONEachRow',
                clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
              })
            ).json()
          ).map((x) => JSON.stringify(x));
        assert.deepEqual(await run(true), await run(false), `${group_by} in ${tz}`);
      }
    }
  });

  test('by hour, campaign, sub1 and device', async () => {
    const hour = await reports.report(q({ group_by: 'hour', campaign_id: 10 }));
    assert.deepEqual(pick(hour.rows), [
      ['2017-11-06 16:00', 'USD', 1, 1, 1, 0, 0, 0],
      ['2017-11-06 17:00', 'USD', 0, 0, 1, 1, 1, 500],
      ['2017-11-06 18:00', 'USD', 1, 1, 0, 0, 0, 0],
      ['2017-11-07 16:00', 'USD', 1, 1, 0, 0, 0, 0],
      ['2017-11-07 17:00', 'USD', 0, 0, 0, 0, 1, 500],
    ]);
    const byCampaign = await reports.report(q({ group_by: 'campaign' }));
    assert.deepEqual(pick(byCampaign.rows), [
      ['10', 'USD', 3, 3, 2, 1, 2, 1000],
      ['20', 'EUR', 1, 1, 0, 0, 1, 100],
      ['30', 'USD', 1, 1, 0, 0, 0, 0],
    ]);
    const bySub = await reports.report(q({ group_by: 'sub1', campaign_id: 10 }));
    assert.deepEqual(pick(bySub.rows), [
      ['s1', 'USD', 2, 2, 2, 1, 2, 1000],
      ['s2', 'USD', 1, 1, 0, 0, 0, 0],
    ]);
    const byDevice = await reports.report(q({ group_by: 'device', advertiser_id: 1 }));
    assert.deepEqual(
      byDevice.rows.map((r) => [r.key, r.currency, r.clicks]),
      [
        ['mobile', 'USD', 2],
        ['mobile', 'EUR', 1],
        ['desktop', 'USD', 1],
      ],
    );
  });

  test('advertiser scope, filters and pagination with a total', async () => {
    const scoped = await reports.report(q({ group_by: 'campaign', advertiser_id: 2 }));
    assert.deepEqual(pick(scoped.rows), [['30', 'USD', 1, 1, 0, 0, 0, 0]]);
    const p2 = await reports.report(q({ group_by: 'campaign', per_page: 1, page: 2 }));
    assert.deepEqual(pick(p2.rows), [['20', 'EUR', 1, 1, 0, 0, 1, 100]]);
    assert.equal(p2.total, 3);
    const past = await reports.report(q({ group_by: 'campaign', per_page: 2, page: 5 }));
    assert.deepEqual(past, { rows: [], total: 3 });
    const empty = await reports.report(q({ from: '2020-01-01', to: '2020-01-02' }));
    assert.deepEqual(empty, { rows: [], total: 0 });
  });

  test('the click log shows every click with its bot_reason, whether it is valid and its landing_id', async () => {
    const log = await reports.clickLog(q({ campaign_id: 10 }));
    assert.deepEqual(
      log.rows.map((r) => [r.ip, r.bot_reason, r.valid, r.landing_id]),
      [
        ['a', '', true, 0],
        ['a', '', false, 0],
        ['e', 'previewer', false, 0],
        ['b', '', true, 3],
        ['a', '', true, 0],
      ],
    );
  });

  const bad: Array<[string, Partial<ReportQuery>, string, string]> = [
    ['unknown group_by', { group_by: 'os' as never }, 'group_by', `must be one of ${REPORT_GROUP_BY.join(', ')}`],
    ['malformed date', { from: '2017-13-01' }, 'from', 'must be a date YYYY-MM-DD'],
    ['to before from', { from: '2017-11-08', to: '2017-11-06' }, 'to', 'must not be before from'],
    ['unknown time zone', { tz: 'Mars/Olympus' }, 'tz', 'must be an IANA time zone'],
    ['per_page above 1000', { per_page: 1001 }, 'per_page', 'must be an integer between 1 and 1000'],
    ['page 0', { page: 0 }, 'page', 'must be an integer >= 1'],
    [
      'an offset past 100,000',
      { page: 102, per_page: 1000 },
      'page',
      '(page - 1) × per_page must be at most 100000; narrow the range or filters',
    ],
    ['negative campaign id', { campaign_id: -1 }, 'campaign_id', 'must be a non-negative integer'],
  ];
  for (const [name, over, field, problem] of bad) {
    test(`rejects ${name} with VALIDATION_ERROR`, async () => {
      await assert.rejects(reports.report(q(over)), (err: unknown) => {
        assert.ok(err instanceof AppError);
        assert.equal(err.code, 'VALIDATION_ERROR');
        assert.deepEqual(err.details, { [field]: [problem] });
        return true;
      });
    });
  }
});

describe('limits of report and click-log queries', () => {
  test('the offset is capped at 100,000 rows: the last allowed page answers, the next is refused', async () => {
    assert.deepEqual(await reports.report(q({ page: 101, per_page: 1000 })), { rows: [], total: 3 });
    assert.deepEqual((await reports.clickLog(q({ page: 100_001, per_page: 1 }))).rows, []);
    await assert.rejects(reports.clickLog(q({ page: 100_002, per_page: 1 })), (err: unknown) => {
      assert.ok(err instanceof AppError);
      assert.equal(err.code, 'VALIDATION_ERROR');
      assert.deepEqual(Object.keys(err.details as object), ['page']);
      return true;
    });
  });

  test('max_memory_usage is applied to each query: past it, 422 QUERY_LIMIT_EXCEEDED in the envelope', async () => {
    // 300,000 distinct-IP clicks in 2019 (no other test reads 2019): grouping them needs well over 1 MiB.
    await ch.command({
      query: `INSERT INTO clicks (click_id, ts, received, link_code, campaign_id, affiliate_id, advertiser_id, currency, ip, sub1)
        SELECT generateUUIDv4(), toDateTime64('2019-06-01 12:00:00', 3, 'UTC'), now64(3), 'lbig', 40, 7, 1, 'USD',
          toString(number), toString(number)
        FROM numbers(300000)`,
    });
    const big = { from: '2019-06-01', to: '2019-06-01' };
    const tiny = createReports(ch, { maxExecutionS: 30, maxMemoryBytes: 1_000_000 });
    for (const run of [() => tiny.report(q({ ...big, group_by: 'sub1' })), () => tiny.clickLog(q(big))]) {
      await assert.rejects(run(), (err: unknown) => {
        const { status, body } = errorBody(err);
        assert.equal(status, 422);
        assert.equal(body.error.code, 'QUERY_LIMIT_EXCEEDED');
        assert.deepEqual(body.error.details, { limit: 'max_memory_usage' });
        return true;
      });
    }
    // A SETTINGS clause, not a session SET: the next query of the same chDB session runs without the limit.
    assert.equal((await reports.report(q({ ...big, group_by: 'sub1', per_page: 1 }))).total, 300_000);
  });
});
