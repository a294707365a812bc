/**
 * `/campaigns` over the real admin API and the real ledger: create (wallet check), bad input, status transitions with
 * link invalidations, PATCH, private campaigns' join approval, and campaign budgets reserved through the ledger.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../infra/testing/index.ts';
import {
  approvedWebsite,
  balanceOf as balanceOfUser,
  createBudgetedCampaign,
  fund,
  startTestApi,
  type TestApi,
  type TestUser,
  users,
  validationFailed,
  watchInvalidations,
} from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let aff: TestUser;
let watch: Awaited<ReturnType<typeof watchInvalidations>>;
let invalidations: string[];
let websiteId: number;

before(async () => {
  t = await startTestApi({ ledger: true });
  ({ admin, adv, aff } = await users(t, { admin: 'admin', adv: 'advertiser', aff: 'affiliate' }));
  await fund(t, adv, 1_000_000);
  watch = await watchInvalidations(t);
  invalidations = watch.messages;
  websiteId = await approvedWebsite(t, adv, admin);
});
after(async () => {
  watch.close();
  await t.close();
});

let campaignId: number;

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
      assert.deepEqual(r.body, validationFailed(details), JSON.stringify(patch));
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
    await waitFor('invalidation', () => invalidations.includes(JSON.stringify({ campaign_id: campaignId })));
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
    await waitFor('invalidation', () => invalidations.includes(JSON.stringify({ campaign_id: campaignId })));
    const bad = await t.call('patch', `/campaigns/${campaignId}`, { token: adv.token, body: { status: 'archived' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'VALIDATION_ERROR');
  });

  test('targeting: OS and browser families are stored, shown, patched and validated', async () => {
    const c = await t.call('post', '/campaigns', {
      token: adv.token,
      body: {
        ...campaignBody(),
        allowed_devices: ['mobile'],
        allowed_os: ['ios', 'android'],
        allowed_browsers: ['safari', 'chrome'],
      },
    });
    assert.equal(c.status, 201, c.text);
    assert.deepEqual(c.body.data.allowed_countries, ['US']);
    assert.deepEqual(c.body.data.allowed_devices, ['mobile']);
    assert.deepEqual(c.body.data.allowed_os, ['ios', 'android']);
    assert.deepEqual(c.body.data.allowed_browsers, ['safari', 'chrome']);
    const plain = await t.call('post', '/campaigns', { token: adv.token, body: campaignBody() });
    assert.deepEqual([plain.body.data.allowed_os, plain.body.data.allowed_browsers], [[], []]);

    invalidations.length = 0;
    const id = c.body.data.id;
    const p = await t.call('patch', `/campaigns/${id}`, {
      token: adv.token,
      body: { allowed_os: ['windows'], allowed_browsers: [] },
    });
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(p.body.data.allowed_os, ['windows']);
    assert.deepEqual(p.body.data.allowed_browsers, []);
    // The trackers reload the campaign's links, so the new targeting applies to the next click.
    await waitFor('invalidation', () => invalidations.includes(JSON.stringify({ campaign_id: id })));
    const got = await t.call('get', `/campaigns/${id}`, { token: adv.token });
    assert.deepEqual(got.body.data.allowed_os, ['windows']);

    const bad = await t.call('post', '/campaigns', {
      token: adv.token,
      body: { ...campaignBody(), allowed_os: ['beos'], allowed_browsers: ['netscape'], allowed_devices: ['fridge'] },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'VALIDATION_ERROR');
    assert.deepEqual(Object.keys(bad.body.error.details).sort(), [
      'allowed_browsers.0',
      'allowed_devices.0',
      'allowed_os.0',
    ]);
    const badPatch = await t.call('patch', `/campaigns/${id}`, { token: adv.token, body: { allowed_os: 'ios' } });
    assert.equal(badPatch.status, 400);
    assert.deepEqual(Object.keys(badPatch.body.error.details), ['allowed_os']);
  });
});

describe('join', () => {
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
    // Was 403; a private campaign is now hidden (404, as an unknown id) until the advertiser approves (issue #12).
    assert.equal(noLink.status, 404);
    // A pending request to a private campaign does not list it (issue #12: only approved affiliates see it).
    const listed = await t.call('get', '/campaigns', { token: aff.token });
    assert.ok(!listed.body.data.some((c: { id: number }) => c.id === id));
    const members = await t.call('get', `/campaigns/${id}/affiliates`, { token: adv.token });
    assert.equal(members.body.data[0].status, 'pending');
    const ap = await t.call('post', `/campaigns/${id}/affiliates/${aff.id}/approve`, { token: adv.token });
    assert.equal(ap.body.data.status, 'approved');
    assert.ok(ap.body.data.link.code);
  });
});

describe('campaign budgets go through the ledger', () => {
  // A fresh advertiser of its own, holding exactly the 50 000 USD these tests count with.
  let adv: TestUser;
  let websiteId: number;
  let activeCampaign: number;
  let secondCampaign: number;
  const balanceOf = (u: TestUser) => balanceOfUser(t, u);
  const createCampaign = (budget: number | null) => createBudgetedCampaign(t, adv, websiteId, budget);

  before(async () => {
    adv = await t.user('advertiser');
    await fund(t, adv, 50_000);
    websiteId = await approvedWebsite(t, adv, admin, { url: 'https://budgets.example.com', name: 'Budgets' });
  });

  test('fund → create with budget → activate → balance shows reserved; pause releases', async () => {
    const id = await createCampaign(30_000);
    // Creation checks the free balance too (50 000 now), so this one is created before the first activation.
    secondCampaign = await createCampaign(20_001);
    const act = await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'active' } });
    assert.equal(act.status, 200, act.text);
    assert.equal(act.body.data.status, 'active');
    let b = await balanceOf(adv);
    assert.deepEqual(
      { total: b.total, available: b.available, reserved: b.reserved, spent: b.spent },
      { total: 50_000, available: 20_000, reserved: 30_000, spent: 0 },
    );
    const pause = await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'paused' } });
    assert.equal(pause.body.data.status, 'paused');
    b = await balanceOf(adv);
    assert.deepEqual([b.available, b.reserved], [50_000, 0]);
    const events = await t.env.sql`select from_status, to_status from campaign_status_events
      where campaign_id = ${id} order by id`;
    assert.deepEqual(
      events.map((e) => `${e.from_status}>${e.to_status}`),
      ['draft>active', 'active>paused'],
    );
    const re = await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'active' } });
    assert.equal(re.status, 200);
    activeCampaign = id;
    assert.equal((await balanceOf(adv)).reserved, 30_000);
  });

  test('INSUFFICIENT_FUNDS on activation: nothing changes', async () => {
    const id = secondCampaign;
    const r = await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'active' } });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.body.success, false);
    assert.equal(r.body.error.code, 'INSUFFICIENT_FUNDS');
    const [c] = await t.env.sql`select status from campaigns where id = ${id}`;
    assert.equal(c!.status, 'draft');
    const b = await balanceOf(adv);
    assert.deepEqual([b.available, b.reserved], [20_000, 30_000]);
    const created = await t.call('post', '/campaigns', {
      token: adv.token,
      body: {
        website_id: websiteId,
        name: 'Too big',
        destination_url: 'https://shop.example.com/',
        payout_model: 'CPA',
        payout: 1,
        currency: 'USD',
        budget: 20_001,
      },
    });
    assert.equal(created.status, 422);
    assert.deepEqual(created.body.error.details, { budget: 20_001, available: 20_000, currency: 'USD' });
  });

  test('PATCH of an active campaign’s budget re-syncs the reservation; too big → 422, unchanged', async () => {
    const up = await t.call('patch', `/campaigns/${activeCampaign}`, { token: adv.token, body: { budget: 40_000 } });
    assert.equal(up.status, 200, up.text);
    let b = await balanceOf(adv);
    assert.deepEqual([b.available, b.reserved], [10_000, 40_000]);
    const down = await t.call('patch', `/campaigns/${activeCampaign}`, { token: adv.token, body: { budget: 35_000 } });
    assert.equal(down.status, 200, down.text);
    b = await balanceOf(adv);
    assert.deepEqual([b.available, b.reserved], [15_000, 35_000]);
    const tooBig = await t.call('patch', `/campaigns/${activeCampaign}`, {
      token: adv.token,
      body: { budget: 60_000 },
    });
    assert.equal(tooBig.status, 422, tooBig.text);
    assert.equal(tooBig.body.error.code, 'INSUFFICIENT_FUNDS');
    const [c] = await t.env.sql`select budget from campaigns where id = ${activeCampaign}`;
    assert.equal(c!.budget, 35_000);
    const unbudget = await t.call('patch', `/campaigns/${activeCampaign}`, {
      token: adv.token,
      body: { budget: null },
    });
    assert.equal(unbudget.status, 422);
    assert.equal(unbudget.body.error.code, 'INVALID_STATE');
    b = await balanceOf(adv);
    assert.deepEqual([b.available, b.reserved], [15_000, 35_000]);
  });

  test('archived campaigns cannot be activated (transition rules kept)', async () => {
    const id = await createCampaign(1_000);
    const arch = await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'archived' } });
    assert.equal(arch.status, 200, arch.text);
    const r = await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'active' } });
    assert.equal(r.status, 422);
    assert.deepEqual(r.body.error.details, { from: 'archived', to: 'active', allowed: [] });
  });
});
