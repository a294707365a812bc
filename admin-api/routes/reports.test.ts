/** `/reports` and `/reports/clicks` over the real admin API and a real chDB: tenant scoping, CSV, pagination. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startTestApi, type TestApi, type TestUser, users, validationFailed, withBareApi } from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let aff: TestUser;

before(async () => {
  t = await startTestApi({ clickhouse: true });
  ({ admin, adv, aff } = await users(t, { admin: 'admin', adv: 'advertiser', aff: 'affiliate' }));
});
after(async () => {
  await t.close();
});

/**
 * Reports read the real ClickHouse (this file's private chDB). Rows are inserted as the pipeline
 * would, for tenant A (adv's campaign, mostly aff's clicks) and tenant B (adv2's campaign, aff2's
 * clicks); aff2 also has one click on A's campaign, so affiliate scoping is checked inside one
 * advertiser too. All times are on 2026-01-10/11 UTC (same days in Asia/Shanghai).
 */
describe('reports over ClickHouse', () => {
  let adv2: TestUser;
  let aff2: TestUser;
  let campA: number;
  let campB: number;
  /** Tenant B's draft campaign: invisible to other advertisers and to affiliates. */
  let draftB: number;
  /** The fraud-flagged click of tenant A. */
  const flagged = randomUUID();
  const T = Date.UTC(2026, 0, 10, 10, 0, 0);
  const DAY = 86_400_000;
  const at = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

  async function campaign(owner: TestUser, activate: boolean): Promise<number> {
    const w = await t.call('post', '/websites', {
      token: owner.token,
      body: { url: `https://r${owner.id}.example.com`, name: 'reports' },
    });
    await t.call('post', `/websites/${w.body.data.id}/approve`, { token: admin.token });
    const c = await t.call('post', '/campaigns', {
      token: owner.token,
      body: {
        website_id: w.body.data.id,
        name: 'reports',
        destination_url: 'https://example.com/?c={click_id}',
        payout_model: 'CPA',
        payout: 500,
        revenue: 800,
        currency: 'USD',
      },
    });
    assert.equal(c.status, 201, c.text);
    if (activate) {
      const s = await t.call('post', `/campaigns/${c.body.data.id}/status`, {
        token: owner.token,
        body: { status: 'active' },
      });
      assert.equal(s.body.data.status, 'active', s.text);
    }
    return c.body.data.id;
  }

  function click(o: {
    id?: string;
    ts: number;
    campaign: number;
    advertiser: number;
    affiliate: number;
    ip: string;
    sub1: string;
    flagged?: boolean;
  }) {
    return {
      click_id: o.id ?? randomUUID(),
      ts: at(o.ts),
      received: at(o.ts),
      link_code: `l${o.campaign}-${o.affiliate}`,
      campaign_id: o.campaign,
      affiliate_id: o.affiliate,
      advertiser_id: o.advertiser,
      currency: 'USD',
      ip: o.ip,
      method: 'GET',
      sub1: o.sub1,
      sub2: 's2',
      sub3: 's3',
      sub4: 's4',
      sub5: 's5',
      user_agent: 'Mozilla/5.0',
      country: 'DE',
      device: 'mobile',
      fraud_score: o.flagged ? 0.75 : 0,
      fraud_reasons: o.flagged ? ['duplicate_click'] : [],
      is_invalid: o.flagged ? 1 : 0,
      landing_id: o.flagged ? 4 : 0,
    };
  }

  function conversion(o: {
    ts: number;
    campaign: number;
    advertiser: number;
    affiliate: number;
    sub1: string;
    payout: number;
    revenue: number;
  }) {
    return {
      conversion_id: randomUUID(),
      event_id: randomUUID(),
      click_id: randomUUID(),
      advertiser_id: o.advertiser,
      campaign_id: o.campaign,
      affiliate_id: o.affiliate,
      link_code: `l${o.campaign}-${o.affiliate}`,
      goal: '',
      status: 'approved',
      amount: -1,
      currency: 'USD',
      payout: o.payout,
      revenue: o.revenue,
      event_time: at(o.ts),
      click_time: at(o.ts - 60_000),
      sub1: o.sub1,
    };
  }

  before(async () => {
    adv2 = await t.user('advertiser');
    aff2 = await t.user('affiliate');
    campA = await campaign(adv, true);
    campB = await campaign(adv2, true);
    draftB = await campaign(adv2, false);
    const A = { campaign: campA, advertiser: adv.id, affiliate: aff.id, sub1: '=cmd' };
    const B = { campaign: campB, advertiser: adv2.id, affiliate: aff2.id, sub1: 'other' };
    const ch = t.env.ch!;
    await ch.insert({
      table: 'clicks',
      format: 'JSONEachRow',
      values: [
        click({ ...A, ts: T, ip: '192.0.2.1' }),
        click({ ...A, id: flagged, ts: T + 1000, ip: '192.0.2.1', flagged: true }),
        click({ ...A, ts: T + 2000, ip: '192.0.2.2' }),
        click({ ...A, affiliate: aff2.id, sub1: 'x', ts: T + 3000, ip: '192.0.2.3' }),
        click({ ...A, ts: T + DAY, ip: '192.0.2.4' }),
        ...[1, 2, 3, 4, 5].map((i) => click({ ...B, ts: T + 3_600_000 + i * 1000, ip: `198.51.100.${i}` })),
      ],
    });
    await ch.insert({
      table: 'conversions',
      format: 'JSONEachRow',
      values: [
        conversion({ ...A, ts: T + 60_000, payout: 500, revenue: 800 }),
        conversion({ ...B, ts: T + 3_700_000, payout: 100, revenue: 300 }),
      ],
    });
  });

  const range = 'from=2026-01-01&to=2026-01-31';
  const qs = `group_by=day&${range}&tz=Asia/Shanghai`;
  /** A's day rows as its advertiser sees them (aff's clicks plus aff2's one click on A's campaign). */
  const advDay10 = {
    key: '2026-01-10',
    currency: 'USD',
    clicks: 3,
    unique_clicks: 3,
    invalid_clicks: 1,
    bot_clicks: 0,
    conversions: 1,
    cr: 0.333333,
    revenue: 800,
    payout: 500,
    profit: 300,
    epc: 166.6667,
  };
  const day11 = {
    key: '2026-01-11',
    currency: 'USD',
    clicks: 1,
    unique_clicks: 1,
    invalid_clicks: 0,
    bot_clicks: 0,
    conversions: 0,
    cr: 0,
    revenue: 0,
    payout: 0,
    profit: 0,
    epc: 0,
  };

  describe('GET /reports', () => {
    test('advertiser scope: only its own campaigns, full metrics', async () => {
      const r = await t.call('get', `/reports?${qs}`, { token: adv.token });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, {
        success: true,
        data: [advDay10, day11],
        meta: { page: 1, per_page: 100, total: 2, total_pages: 1 },
      });
      const b = await t.call('get', `/reports?${qs}`, { token: adv2.token });
      assert.deepEqual(b.body.data, [
        {
          key: '2026-01-10',
          currency: 'USD',
          clicks: 5,
          unique_clicks: 5,
          invalid_clicks: 0,
          bot_clicks: 0,
          conversions: 1,
          cr: 0.2,
          revenue: 300,
          payout: 100,
          profit: 200,
          epc: 20,
        },
      ]);
      const byCampaign = await t.call('get', `/reports?group_by=campaign&${range}&campaign_id=${campA}`, {
        token: adv.token,
      });
      assert.deepEqual(
        byCampaign.body.data.map((x: { key: string; clicks: number }) => [x.key, x.clicks]),
        [[String(campA), 4]],
      );
    });

    test('affiliate scope: affiliate_id forced to self, revenue and profit hidden', async () => {
      const r = await t.call('get', `/reports?${qs}&affiliate_id=${aff2.id}`, { token: aff.token });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.data, [
        {
          key: '2026-01-10',
          currency: 'USD',
          clicks: 2,
          unique_clicks: 2,
          invalid_clicks: 1,
          bot_clicks: 0,
          conversions: 1,
          cr: 0.5,
          payout: 500,
          epc: 250,
        },
        {
          key: '2026-01-11',
          currency: 'USD',
          clicks: 1,
          unique_clicks: 1,
          invalid_clicks: 0,
          bot_clicks: 0,
          conversions: 0,
          cr: 0,
          payout: 0,
          epc: 0,
        },
      ]);
      // Another advertiser's active campaign is visible by id, but holds none of aff's traffic.
      const other = await t.call('get', `/reports?${qs}&campaign_id=${campB}`, { token: aff.token });
      assert.equal(other.status, 200, other.text);
      assert.deepEqual(other.body.data, []);
      // aff2 sees its own click on A's campaign next to its B traffic, never aff's.
      const a2 = await t.call('get', `/reports?group_by=campaign&${range}`, { token: aff2.token });
      assert.deepEqual(
        a2.body.data.map((x: { key: string; clicks: number }) => [x.key, x.clicks]),
        [
          [String(campB), 5],
          [String(campA), 1],
        ],
      );
    });

    test('admin sees every tenant', async () => {
      const r = await t.call('get', `/reports?${qs}`, { token: admin.token });
      assert.deepEqual(r.body.data, [
        {
          key: '2026-01-10',
          currency: 'USD',
          clicks: 8,
          unique_clicks: 8,
          invalid_clicks: 1,
          bot_clicks: 0,
          conversions: 2,
          cr: 0.25,
          revenue: 1100,
          payout: 600,
          profit: 500,
          epc: 75,
        },
        day11,
      ]);
    });

    test('CSV with Accept: text/csv, grouped by sub1 (formula cells defused)', async () => {
      const r = await t.call('get', `/reports?group_by=sub1&${range}`, {
        token: admin.token,
        headers: { accept: 'text/csv' },
      });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type')!, /^text\/csv/);
      assert.equal(r.headers.get('x-total-count'), '3');
      assert.equal(
        r.text,
        'key,currency,clicks,unique_clicks,invalid_clicks,bot_clicks,conversions,cr,revenue,payout,profit,epc\r\n' +
          'other,USD,5,5,0,0,1,0.2,300,100,200,20\r\n' +
          "'=cmd,USD,3,3,1,0,1,0.333333,800,500,300,166.6667\r\n" +
          'x,USD,1,1,0,0,0,0,0,0,0,0\r\n',
      );
      const json = await t.call('get', `/reports?group_by=sub1&${range}`, { token: adv.token });
      assert.equal(json.body.data[0].key, '=cmd', 'JSON keeps the raw value');
    });

    test('pagination meta', async () => {
      const p2 = await t.call('get', `/reports?${qs}&per_page=1&page=2`, { token: adv.token });
      assert.deepEqual(p2.body, {
        success: true,
        data: [day11],
        meta: { page: 2, per_page: 1, total: 2, total_pages: 2 },
      });
      const past = await t.call('get', `/reports?${qs}&per_page=1&page=3`, { token: adv.token });
      assert.deepEqual(past.body, {
        success: true,
        data: [],
        meta: { page: 3, per_page: 1, total: 2, total_pages: 2 },
      });
    });

    test("another tenant's campaign → 404", async () => {
      for (const [user, id] of [
        [adv, campB],
        [aff, draftB],
      ] as const) {
        const r = await t.call('get', `/reports?${qs}&campaign_id=${id}`, { token: user.token });
        assert.equal(r.status, 404, r.text);
        assert.deepEqual(r.body, { success: false, error: { code: 'NOT_FOUND', message: 'campaign not found' } });
      }
    });

    test('bad input', async () => {
      const r = await t.call('get', '/reports?group_by=week&from=2026-02-30&to=2026-01-01&tz=Mars/Base', {
        token: adv.token,
      });
      assert.deepEqual(
        r.body,
        validationFailed({
          group_by: [
            'Invalid option: expected one of "day"|"hour"|"campaign"|"affiliate"|"sub1"|"sub2"|"sub3"|"sub4"|"sub5"|"country"|"device"|"landing_id"',
          ],
          from: ['not a calendar date'],
          tz: ['must be an IANA time zone'],
        }),
      );
      const rev = await t.call('get', '/reports?group_by=day&from=2026-02-01&to=2026-01-01', { token: adv.token });
      assert.deepEqual(rev.body.error.details, { to: ['must not be before from'] });
    });

    test('API keys: a test-mode key sees no live data, a live key with reports:read does', async () => {
      const key = async (mode: string) =>
        (
          await t.call('post', '/api-keys', {
            token: adv.token,
            body: { name: mode, scopes: ['reports:read'], mode },
          })
        ).body.data.key as string;
      const test_ = await key('test');
      assert.match(test_, /^test_/);
      const r = await t.call('get', `/reports?${qs}`, { token: test_ });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, {
        success: true,
        data: [],
        meta: { page: 1, per_page: 100, total: 0, total_pages: 0 },
      });
      const clicks = await t.call('get', `/reports/clicks?${range}`, { token: test_ });
      assert.deepEqual(clicks.body.data, []);
      const live = await t.call('get', `/reports?${qs}`, { token: await key('live') });
      assert.deepEqual(live.body.data, [advDay10, day11]);
    });

    test('503 when no reports implementation is wired', async () => {
      await withBareApi('advertiser', async (bare, u) => {
        for (const path of [`/reports?${qs}`, `/reports/clicks?${range}`]) {
          const r = await bare.call('get', path, { token: u.token });
          assert.equal(r.status, 503);
          assert.deepEqual(r.body, {
            success: false,
            error: { code: 'SERVICE_UNAVAILABLE', message: 'reports are not available' },
          });
        }
      });
    });
  });

  describe('GET /reports/clicks', () => {
    type Click = { click_id: string; campaign_id: number; affiliate_id: number; ts: string };
    const ids = (rows: Click[]) => rows.map((c) => [c.campaign_id, c.affiliate_id]);

    test('advertiser: its campaigns only (every affiliate), event-time order, all fields', async () => {
      const r = await t.call('get', `/reports/clicks?${range}`, { token: adv.token });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.meta, { page: 1, per_page: 100, total: 5, total_pages: 1 });
      assert.deepEqual(ids(r.body.data), [
        [campA, aff.id],
        [campA, aff.id],
        [campA, aff.id],
        [campA, aff2.id],
        [campA, aff.id],
      ]);
      assert.deepEqual(
        r.body.data.map((c: Click) => c.ts),
        [
          '2026-01-10T10:00:00.000Z',
          '2026-01-10T10:00:01.000Z',
          '2026-01-10T10:00:02.000Z',
          '2026-01-10T10:00:03.000Z',
          '2026-01-11T10:00:00.000Z',
        ],
      );
      assert.deepEqual(r.body.data[1], {
        click_id: flagged,
        ts: '2026-01-10T10:00:01.000Z',
        link_code: `l${campA}-${aff.id}`,
        campaign_id: campA,
        affiliate_id: aff.id,
        landing_id: 4,
        sub1: '=cmd',
        sub2: 's2',
        sub3: 's3',
        sub4: 's4',
        sub5: 's5',
        ip: '192.0.2.1',
        country: 'DE',
        device: 'mobile',
        invalid_reason: '',
        fraud_score: 0.75,
        fraud_reasons: ['duplicate_click'],
        bot_reason: '',
        valid: false,
      });
      const b = await t.call('get', `/reports/clicks?${range}`, { token: adv2.token });
      assert.deepEqual(
        ids(b.body.data),
        [1, 2, 3, 4, 5].map(() => [campB, aff2.id]),
      );
    });

    test('affiliate: affiliate_id forced to self', async () => {
      const r = await t.call('get', `/reports/clicks?${range}&affiliate_id=${aff2.id}`, { token: aff.token });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.meta.total, 4);
      assert.deepEqual(
        ids(r.body.data),
        [1, 2, 3, 4].map(() => [campA, aff.id]),
      );
      const r2 = await t.call('get', `/reports/clicks?${range}&campaign_id=${campA}`, { token: aff2.token });
      assert.deepEqual(ids(r2.body.data), [[campA, aff2.id]]);
    });

    test('admin sees every tenant; pagination meta', async () => {
      const all = await t.call('get', `/reports/clicks?${range}&per_page=100`, { token: admin.token });
      assert.equal(all.body.meta.total, 10);
      const p = await t.call('get', `/reports/clicks?${range}&per_page=3&page=4`, { token: admin.token });
      assert.deepEqual(p.body.meta, { page: 4, per_page: 3, total: 10, total_pages: 4 });
      assert.deepEqual(
        p.body.data.map((c: Click) => c.click_id),
        [all.body.data[9].click_id],
      );
      const past = await t.call('get', `/reports/clicks?${range}&per_page=3&page=5`, { token: admin.token });
      assert.deepEqual(past.body, {
        success: true,
        data: [],
        meta: { page: 5, per_page: 3, total: 10, total_pages: 4 },
      });
      const day = await t.call('get', '/reports/clicks?from=2026-01-11&to=2026-01-11', { token: admin.token });
      assert.deepEqual(ids(day.body.data), [[campA, aff.id]]);
    });

    test("another tenant's campaign → 404", async () => {
      for (const [user, id] of [
        [adv, campB],
        [aff, draftB],
      ] as const) {
        const r = await t.call('get', `/reports/clicks?${range}&campaign_id=${id}`, { token: user.token });
        assert.equal(r.status, 404, r.text);
        assert.deepEqual(r.body, { success: false, error: { code: 'NOT_FOUND', message: 'campaign not found' } });
      }
    });

    test('bad query → VALIDATION_ERROR', async () => {
      const r = await t.call(
        'get',
        '/reports/clicks?from=2026-13-01&to=2026-01-31&tz=Mars/Base&per_page=0&campaign_id=abc',
        {
          token: adv.token,
        },
      );
      assert.equal(r.status, 400);
      assert.deepEqual(
        r.body,
        validationFailed({
          from: ['not a calendar date'],
          tz: ['must be an IANA time zone'],
          campaign_id: ['Invalid input: expected number, received NaN'],
          per_page: ['Too small: expected number to be >=1'],
        }),
      );
      const rev = await t.call('get', '/reports/clicks?from=2026-02-01&to=2026-01-01', { token: adv.token });
      assert.deepEqual(rev.body.error.details, { to: ['must not be before from'] });
    });
  });
});
