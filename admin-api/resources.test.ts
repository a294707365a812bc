import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Redis } from '../infra/index.ts';
import { sha256 } from './security.ts';
import { startTestApi, type TestApi, type TestUser } from './test-helpers.ts';

const balances = new Map<number, number>();

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let aff: TestUser;
let sub: Redis;
const invalidations: string[] = [];

before(async () => {
  t = await startTestApi({
    clickhouse: true,
    wallet: { availableBalance: async (id) => balances.get(id) ?? 0 },
  });
  admin = await t.user('admin');
  adv = await t.user('advertiser');
  aff = await t.user('affiliate');
  balances.set(adv.id, 1_000_000);
  sub = t.env.redis.duplicate();
  sub.on('message', (_c: string, m: string) => invalidations.push(m));
  await sub.subscribe(t.env.keys.linkInvalidation);
});
after(async () => {
  sub.disconnect();
  await t.close();
});

async function waitFor(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(pred(), what);
}

let websiteId: number;
let campaignId: number;

describe('websites', () => {
  test('POST /websites → pending; admin rejects with a reason; resubmit; approve; history recorded', async () => {
    const c = await t.call('post', '/websites', {
      token: adv.token,
      body: { url: 'https://shop.example.com', name: 'Shop' },
    });
    assert.equal(c.status, 201);
    assert.equal(c.body.data.status, 'pending');
    websiteId = c.body.data.id;

    const noReason = await t.call('post', `/websites/${websiteId}/reject`, {
      token: admin.token,
      body: { reason: ' ' },
    });
    assert.deepEqual(noReason.body, {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'request validation failed',
        details: { reason: ['a reason is required'] },
      },
    });
    const rej = await t.call('post', `/websites/${websiteId}/reject`, {
      token: admin.token,
      body: { reason: 'broken' },
    });
    assert.equal(rej.body.data.status, 'rejected');
    assert.equal(rej.body.data.reject_reason, 'broken');
    const again = await t.call('post', `/websites/${websiteId}/approve`, { token: admin.token });
    assert.equal(again.status, 422);
    assert.deepEqual(again.body, {
      success: false,
      error: { code: 'INVALID_STATE', message: 'website is rejected; cannot change it to approved' },
    });
    assert.equal(
      (await t.call('post', `/websites/${websiteId}/resubmit`, { token: adv.token })).body.data.status,
      'pending',
    );
    const ok = await t.call('post', `/websites/${websiteId}/approve`, { token: admin.token });
    assert.equal(ok.body.data.status, 'approved');
    const one = await t.call('get', `/websites/${websiteId}`, { token: adv.token });
    assert.deepEqual(
      one.body.data.history.map((h: { status: string; actor_id: number }) => [h.status, h.actor_id]),
      [
        ['pending', adv.id],
        ['rejected', admin.id],
        ['pending', adv.id],
        ['approved', admin.id],
      ],
    );
  });

  test('lists are scoped and paginated', async () => {
    const other = await t.user('advertiser');
    await t.call('post', '/websites', {
      token: other.token,
      body: { url: 'https://other.example.com', name: 'Other' },
    });
    const own = await t.call('get', '/websites?per_page=1', { token: adv.token });
    assert.deepEqual(own.body.meta, { page: 1, per_page: 1, total: 1, total_pages: 1 });
    assert.equal(own.body.data[0].id, websiteId);
    const all = await t.call('get', '/websites?per_page=1&page=2', { token: admin.token });
    assert.deepEqual(all.body.meta, { page: 2, per_page: 1, total: 2, total_pages: 2 });
    const bad = await t.call('get', '/websites?per_page=1000', { token: adv.token });
    assert.deepEqual(bad.body, {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'request validation failed',
        details: { per_page: ['Too big: expected number to be <=100'] },
      },
    });
  });

  test('bad input', async () => {
    const r = await t.call('post', '/websites', { token: adv.token, body: { url: 'javascript:alert(1)', name: '' } });
    assert.deepEqual(r.body, {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'request validation failed',
        details: {
          url: ['must be an absolute http(s) URL'],
          name: ['Too small: expected string to have >=1 characters'],
        },
      },
    });
  });
});

const campaignBody = () => ({
  website_id: websiteId,
  name: 'Spring',
  destination_url: 'https://shop.example.com/l?cid={click_id}&s={sub1}',
  payout_model: 'CPA',
  payout: 500,
  revenue: 800,
  currency: 'USD',
  budget: 100_000,
  goals: [{ goal: 'purchase', payout: 700, revenue: 900 }],
  allowed_countries: ['US'],
});

describe('campaigns', () => {
  test('create (draft), wallet check, revenue hidden from affiliates', async () => {
    const c = await t.call('post', '/campaigns', { token: adv.token, body: campaignBody() });
    assert.equal(c.status, 201, c.text);
    assert.equal(c.body.data.status, 'draft');
    assert.equal(c.body.data.payout, 500);
    assert.deepEqual(c.body.data.goals, [{ goal: 'purchase', payout: 700, revenue: 900 }]);
    campaignId = c.body.data.id;

    const poor = await t.call('post', '/campaigns', {
      token: adv.token,
      body: { ...campaignBody(), budget: 2_000_000 },
    });
    assert.equal(poor.status, 422);
    assert.deepEqual(poor.body, {
      success: false,
      error: {
        code: 'INSUFFICIENT_FUNDS',
        message: 'wallet balance does not cover the campaign budget',
        details: { budget: 2_000_000, available: 1_000_000, currency: 'USD' },
      },
    });
  });

  test('bad input cases', async () => {
    const cases: Array<[Record<string, unknown>, Record<string, string[]>]> = [
      [{ payout: 1.5 }, { payout: ['must be integer minor units'] }],
      [
        { payout_model: 'RevShare', payout: 150, revenue: 50 },
        { payout: ['RevShare: a percent 0..100 with at most 2 decimals'] },
      ],
      [{ currency: 'usd' }, { currency: ['must be an ISO 4217 code such as USD'] }],
      [
        { allowed_countries: ['USA'] },
        {
          'allowed_countries.0': [
            'must be an ISO 3166-1 alpha-2 code',
            'Too big: expected string to have <=2 characters',
          ],
        },
      ],
    ];
    for (const [patch, details] of cases) {
      const r = await t.call('post', '/campaigns', { token: adv.token, body: { ...campaignBody(), ...patch } });
      assert.deepEqual(
        r.body,
        { success: false, error: { code: 'VALIDATION_ERROR', message: 'request validation failed', details } },
        JSON.stringify(patch),
      );
    }
  });

  test('unknown or foreign website → 404', async () => {
    const r = await t.call('post', '/campaigns', { token: adv.token, body: { ...campaignBody(), website_id: 999999 } });
    assert.deepEqual(r.body, { success: false, error: { code: 'NOT_FOUND', message: 'website not found' } });
  });

  test('pending website cannot carry campaigns', async () => {
    const w = await t.call('post', '/websites', {
      token: adv.token,
      body: { url: 'https://b.example.com', name: 'B' },
    });
    const r = await t.call('post', '/campaigns', {
      token: adv.token,
      body: { ...campaignBody(), website_id: w.body.data.id },
    });
    assert.deepEqual(r.body, {
      success: false,
      error: { code: 'INVALID_STATE', message: 'the website must be approved before it can carry campaigns' },
    });
  });

  test('status transitions, invalidation published, draft invisible to affiliates', async () => {
    assert.equal((await t.call('get', `/campaigns/${campaignId}`, { token: aff.token })).status, 404);
    const bad = await t.call('post', `/campaigns/${campaignId}/status`, {
      token: adv.token,
      body: { status: 'paused' },
    });
    assert.deepEqual(bad.body, {
      success: false,
      error: {
        code: 'INVALID_STATE',
        message: 'cannot change a draft campaign to paused',
        details: { from: 'draft', to: 'paused', allowed: ['active', 'archived'] },
      },
    });
    invalidations.length = 0;
    const ok = await t.call('post', `/campaigns/${campaignId}/status`, {
      token: adv.token,
      body: { status: 'active' },
    });
    assert.equal(ok.body.data.status, 'active');
    await waitFor(() => invalidations.includes(JSON.stringify({ campaign_id: campaignId })), 'invalidation');
    const seenByAff = await t.call('get', `/campaigns/${campaignId}`, { token: aff.token });
    assert.equal(seenByAff.status, 200);
    assert.equal(seenByAff.body.data.revenue, undefined);
    assert.equal(seenByAff.body.data.membership, null);
    const list = await t.call('get', '/campaigns', { token: aff.token });
    assert.deepEqual(
      list.body.data.map((c: { id: number }) => c.id),
      [campaignId],
    );
  });

  test('PATCH changes fields and publishes an invalidation; unknown fields refused', async () => {
    invalidations.length = 0;
    const r = await t.call('patch', `/campaigns/${campaignId}`, {
      token: adv.token,
      body: { daily_cap: 5000, payout: 600 },
    });
    assert.equal(r.body.data.daily_cap, 5000);
    assert.equal(r.body.data.payout, 600);
    await waitFor(() => invalidations.includes(JSON.stringify({ campaign_id: campaignId })), 'invalidation');
    const bad = await t.call('patch', `/campaigns/${campaignId}`, { token: adv.token, body: { status: 'archived' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'VALIDATION_ERROR');
  });
});

describe('join, links, leave', () => {
  let code: string;
  test('join a public campaign → approved with a default link; custom links; conflicts', async () => {
    const j = await t.call('post', `/campaigns/${campaignId}/join`, { token: aff.token });
    assert.equal(j.status, 201);
    assert.equal(j.body.data.status, 'approved');
    assert.match(j.body.data.link.url, /^http:\/\/localhost:8080\/c\/[A-Za-z0-9]{8}$/);
    const again = await t.call('post', `/campaigns/${campaignId}/join`, { token: aff.token });
    assert.deepEqual(again.body, { success: false, error: { code: 'CONFLICT', message: 'already a member' } });

    invalidations.length = 0;
    const l = await t.call('post', '/affiliate/links', {
      token: aff.token,
      body: { campaign_id: campaignId, code: 'spring-nl', sub1: 'newsletter' },
    });
    assert.equal(l.status, 201);
    assert.equal(l.body.data.code, 'spring-nl');
    assert.equal(l.body.data.url, 'http://localhost:8080/c/spring-nl');
    assert.equal(l.body.data.sub1, 'newsletter');
    code = l.body.data.code;
    await waitFor(() => invalidations.includes(JSON.stringify({ code })), 'code invalidation');
    const dup = await t.call('post', '/affiliate/links', { token: aff.token, body: { campaign_id: campaignId, code } });
    assert.deepEqual(dup.body, { success: false, error: { code: 'CONFLICT', message: 'this link code is taken' } });
    const badCode = await t.call('post', '/affiliate/links', {
      token: aff.token,
      body: { campaign_id: campaignId, code: 'a b' },
    });
    assert.deepEqual(badCode.body.error.details, { code: ['must be 3-64 characters of A-Z a-z 0-9 _ -'] });

    const outsider = await t.user('affiliate');
    const notMember = await t.call('post', '/affiliate/links', {
      token: outsider.token,
      body: { campaign_id: campaignId },
    });
    assert.deepEqual(notMember.body, {
      success: false,
      error: { code: 'FORBIDDEN', message: 'join the campaign first' },
    });

    const mine = await t.call('get', '/affiliate/links', { token: aff.token });
    assert.equal(mine.body.meta.total, 2);
    assert.equal((await t.call('get', '/affiliate/links', { token: outsider.token })).body.meta.total, 0);
  });

  test('leave disables the links and invalidates each code', async () => {
    invalidations.length = 0;
    const r = await t.call('post', `/campaigns/${campaignId}/leave`, { token: aff.token });
    assert.deepEqual(r.body.data, { campaign_id: campaignId, status: 'left', disabled_links: 2 });
    await waitFor(() => invalidations.includes(JSON.stringify({ code })), 'code invalidation');
    const links = await t.call('get', '/affiliate/links', { token: aff.token });
    assert.ok(links.body.data.every((l: { status: string }) => l.status === 'disabled'));
  });

  test('private campaign: join is pending until the advertiser approves', async () => {
    const c = await t.call('post', '/campaigns', {
      token: adv.token,
      body: { ...campaignBody(), name: 'VIP', visibility: 'private', budget: null },
    });
    const id = c.body.data.id;
    await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'active' } });
    const j = await t.call('post', `/campaigns/${id}/join`, { token: aff.token });
    assert.equal(j.status, 201);
    assert.deepEqual(j.body.data, { campaign_id: id, status: 'pending', link: null });
    const noLink = await t.call('post', '/affiliate/links', { token: aff.token, body: { campaign_id: id } });
    assert.equal(noLink.status, 403);
    const listed = await t.call('get', '/campaigns', { token: aff.token });
    assert.ok(
      listed.body.data.some((c: { id: number; membership: string }) => c.id === id && c.membership === 'pending'),
    );
    const members = await t.call('get', `/campaigns/${id}/affiliates`, { token: adv.token });
    assert.equal(members.body.data[0].status, 'pending');
    const ap = await t.call('post', `/campaigns/${id}/affiliates/${aff.id}/approve`, { token: adv.token });
    assert.equal(ap.body.data.status, 'approved');
    assert.ok(ap.body.data.link.code);
  });
});

describe('postback tokens', () => {
  test('created once (SHA-256 at rest), listed without secret, revoked', async () => {
    const c = await t.call('post', '/postback-tokens', { token: adv.token });
    assert.equal(c.status, 201);
    const token = c.body.data.token as string;
    assert.match(token, /^pbt_[A-Za-z0-9_-]{43}$/);
    const [row] = await t.env.sql<
      { token_hash: string }[]
    >`select token_hash from postback_tokens where id = ${c.body.data.id}`;
    assert.equal(row!.token_hash, sha256(token));
    const list = await t.call('get', '/postback-tokens', { token: adv.token });
    assert.equal(list.body.data.length, 1);
    assert.equal(list.body.data[0].token, undefined);
    assert.equal(list.body.data[0].prefix, token.slice(0, 8));
    const del = await t.call('delete', `/postback-tokens/${c.body.data.id}`, { token: adv.token });
    assert.ok(del.body.data.revoked_at);
    const other = await t.user('advertiser');
    const denied = await t.call('delete', `/postback-tokens/${c.body.data.id}`, { token: other.token });
    assert.deepEqual(denied.body, {
      success: false,
      error: { code: 'NOT_FOUND', message: 'postback token not found' },
    });
  });
});

describe('API keys', () => {
  test('create with scopes, use as Bearer, scope enforced, last-used recorded, revoke', async () => {
    const c = await t.call('post', '/api-keys', {
      token: adv.token,
      body: { name: 'job', scopes: ['campaigns:read'], mode: 'live' },
    });
    assert.equal(c.status, 201);
    const key = c.body.data.key as string;
    assert.match(key, /^live_[A-Za-z0-9_-]{43}$/);
    const r = await t.call('get', '/campaigns', { token: key });
    assert.equal(r.status, 200);
    const noScope = await t.call('get', '/reports?group_by=day&from=2026-01-01&to=2026-01-02', { token: key });
    assert.deepEqual(noScope.body, {
      success: false,
      error: { code: 'FORBIDDEN', message: 'API key lacks scope reports:read' },
    });
    const noKeys = await t.call('get', '/auth/me', { token: key });
    assert.deepEqual(noKeys.body, {
      success: false,
      error: { code: 'FORBIDDEN', message: 'API keys cannot call this route' },
    });
    const list = await t.call('get', '/api-keys', { token: adv.token });
    assert.ok(list.body.data[0].last_used_at);
    assert.equal(list.body.data[0].key, undefined);
    const bad = await t.call('post', '/api-keys', { token: adv.token, body: { name: 'x', scopes: ['root'] } });
    assert.equal(bad.body.error.code, 'VALIDATION_ERROR');
    await t.call('delete', `/api-keys/${c.body.data.id}`, { token: adv.token });
    const revoked = await t.call('get', '/campaigns', { token: key });
    assert.deepEqual(revoked.body, { success: false, error: { code: 'UNAUTHORIZED', message: 'invalid API key' } });
  });
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
    clicks: 4,
    unique_clicks: 3,
    invalid_clicks: 1,
    conversions: 1,
    cr: 0.25,
    revenue: 800,
    payout: 500,
    profit: 300,
    epc: 125,
  };
  const day11 = {
    key: '2026-01-11',
    currency: 'USD',
    clicks: 1,
    unique_clicks: 1,
    invalid_clicks: 0,
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
        [[String(campA), 5]],
      );
    });

    test('affiliate scope: affiliate_id forced to self, revenue and profit hidden', async () => {
      const r = await t.call('get', `/reports?${qs}&affiliate_id=${aff2.id}`, { token: aff.token });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.data, [
        {
          key: '2026-01-10',
          currency: 'USD',
          clicks: 3,
          unique_clicks: 2,
          invalid_clicks: 1,
          conversions: 1,
          cr: 0.333333,
          payout: 500,
          epc: 166.6667,
        },
        {
          key: '2026-01-11',
          currency: 'USD',
          clicks: 1,
          unique_clicks: 1,
          invalid_clicks: 0,
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
          clicks: 9,
          unique_clicks: 8,
          invalid_clicks: 1,
          conversions: 2,
          cr: 0.222222,
          revenue: 1100,
          payout: 600,
          profit: 500,
          epc: 66.6667,
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
        'key,currency,clicks,unique_clicks,invalid_clicks,conversions,cr,revenue,payout,profit,epc\r\n' +
          'other,USD,5,5,0,1,0.2,300,100,200,20\r\n' +
          "'=cmd,USD,4,3,1,1,0.25,800,500,300,125\r\n" +
          'x,USD,1,1,0,0,0,0,0,0,0\r\n',
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
      assert.deepEqual(r.body, {
        success: false,
        error: {
          code: 'VALIDATION_ERROR',
          message: 'request validation failed',
          details: {
            group_by: [
              'Invalid option: expected one of "day"|"hour"|"campaign"|"affiliate"|"sub1"|"sub2"|"sub3"|"sub4"|"sub5"|"country"|"device"',
            ],
            from: ['not a calendar date'],
            tz: ['must be an IANA time zone'],
          },
        },
      });
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
      const bare = await startTestApi();
      try {
        const u = await bare.user('advertiser');
        for (const path of [`/reports?${qs}`, `/reports/clicks?${range}`]) {
          const r = await bare.call('get', path, { token: u.token });
          assert.equal(r.status, 503);
          assert.deepEqual(r.body, {
            success: false,
            error: { code: 'SERVICE_UNAVAILABLE', message: 'reports are not available' },
          });
        }
      } finally {
        await bare.close();
      }
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
      assert.deepEqual(r.body, {
        success: false,
        error: {
          code: 'VALIDATION_ERROR',
          message: 'request validation failed',
          details: {
            from: ['not a calendar date'],
            tz: ['must be an IANA time zone'],
            campaign_id: ['Invalid input: expected number, received NaN'],
            per_page: ['Too small: expected number to be >=1'],
          },
        },
      });
      const rev = await t.call('get', '/reports/clicks?from=2026-02-01&to=2026-01-01', { token: adv.token });
      assert.deepEqual(rev.body.error.details, { to: ['must not be before from'] });
    });
  });
});

describe('GET /conversions', () => {
  test('scoped by role; affiliates see payout but not revenue', async () => {
    const other = await t.user('advertiser');
    const ins = (id: string, advertiser: number, affiliate: number | null, campaign: number | null) =>
      t.env
        .sql`insert into conversions (id, advertiser_id, event_id, campaign_id, affiliate_id, status, payout, revenue, currency, event_time)
        values (${id}, ${advertiser}, ${`e-${id}`}, ${campaign}, ${affiliate}, 'approved', 500, 800, 'USD', now())`;
    await ins('00000000-0000-7000-8000-000000000001', adv.id, aff.id, campaignId);
    await ins('00000000-0000-7000-8000-000000000002', other.id, null, null);
    const a = await t.call('get', '/conversions', { token: adv.token });
    assert.deepEqual(
      a.body.data.map((c: { id: string }) => c.id),
      ['00000000-0000-7000-8000-000000000001'],
    );
    assert.equal(a.body.data[0].revenue, 800);
    const f = await t.call('get', '/conversions', { token: aff.token });
    assert.equal(f.body.meta.total, 1);
    assert.equal(f.body.data[0].payout, 500);
    assert.equal(f.body.data[0].revenue, undefined);
    assert.equal(f.body.data[0].event_id, undefined);
    assert.equal((await t.call('get', '/conversions', { token: other.token })).body.meta.total, 1);
    assert.equal((await t.call('get', '/conversions', { token: admin.token })).body.meta.total, 2);
    const bad = await t.call('get', '/conversions?status=paid', { token: adv.token });
    assert.equal(bad.body.error.code, 'VALIDATION_ERROR');
  });
});
