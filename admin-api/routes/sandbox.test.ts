/**
 * Test mode is a sandbox (issue #12 item 9): a `test_` API key sees and changes only test-mode campaigns, links and
 * conversions and moves no live money; live principals (sessions, live keys, admins) never see test-mode objects.
 * Real services: the API over the real ledger and chDB. That the pipeline posts no money for a test-mode campaign's clicks
 * and conversions: tracker/pipeline/sandbox.test.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { makeConversion, type Seeded } from '../../infra/testing/index.ts';
import {
  approvedWebsite,
  balanceOf,
  createBudgetedCampaign,
  fund,
  startTestApi,
  type TestApi,
  type TestUser,
  users,
} from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let aff: TestUser;
let websiteId: number;

before(async () => {
  t = await startTestApi({ ledger: true, clickhouse: true });
  ({ admin, adv, aff } = await users(t, { admin: 'admin', adv: 'advertiser', aff: 'affiliate' }));
  websiteId = await approvedWebsite(t, adv, admin);
  await fund(t, adv, 100_000);
});

after(async () => {
  await t?.close();
});

async function apiKey(owner: TestUser, mode: 'live' | 'test', scopes: string[]): Promise<string> {
  const r = await t.call('post', '/api-keys', { token: owner.token, body: { name: `${mode} key`, scopes, mode } });
  assert.equal(r.status, 201, r.text);
  return r.body.data.key;
}

/** Every ledger posting that concerns `advertiserId`, as `(type, status)` pairs. */
async function postingsOf(advertiserId: number): Promise<string[]> {
  const rows = await t.env.sql<{ type: string; status: string }[]>`
    select type, status from ledger_postings where advertiser_id = ${advertiserId} order by created_at, id`;
  return rows.map((r) => `${r.type}:${r.status}`);
}

/** A test-mode campaign of `adv` made and activated with `key` (budget 600.00), with a link of `aff`. */
async function sandboxCampaign(key: string, extra: Record<string, unknown> = {}): Promise<Seeded> {
  const r = await t.call('post', '/campaigns', {
    token: key,
    body: {
      website_id: websiteId,
      name: 'Sandbox',
      destination_url: 'https://shop.example.com/?c={click_id}',
      payout_model: 'CPA',
      payout: 700,
      revenue: 1000,
      currency: 'USD',
      budget: 60_000,
      ...extra,
    },
  });
  assert.equal(r.status, 201, r.text);
  const s = await t.call('post', `/campaigns/${r.body.data.id}/status`, { token: key, body: { status: 'active' } });
  assert.equal(s.status, 200, s.text);
  // Affiliates join campaigns with a session only (live), so the sandbox link is made here.
  const linkCode = `sbx${randomUUID().slice(0, 8)}`;
  await t.env
    .sql`insert into links (code, campaign_id, affiliate_id) values (${linkCode}, ${r.body.data.id}, ${aff.id})`;
  return { advertiserId: adv.id, affiliateId: aff.id, campaignId: r.body.data.id, linkCode };
}

describe('test-mode API keys are a sandbox', () => {
  test('a test key creates and activates a test-mode campaign that reserves nothing; live principals never see it', async () => {
    const key = await apiKey(adv, 'test', ['campaigns:read', 'campaigns:write']);
    const liveKey = await apiKey(adv, 'live', ['campaigns:read']);
    const liveId = await createBudgetedCampaign(t, adv, websiteId, 10_000);
    const balance = await balanceOf(t, adv);
    const postings = await postingsOf(adv.id);

    const created = await t.call('post', '/campaigns', {
      token: key,
      body: {
        website_id: websiteId,
        name: 'Sandbox',
        destination_url: 'https://shop.example.com/?c={click_id}',
        payout_model: 'CPA',
        payout: 700,
        revenue: 1000,
        currency: 'USD',
        // More than the wallet holds: the sandbox checks no live funds.
        budget: 500_000,
      },
    });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.data.mode, 'test');
    const id = created.body.data.id;
    const on = await t.call('post', `/campaigns/${id}/status`, { token: key, body: { status: 'active' } });
    assert.equal(on.status, 200, on.text);
    assert.equal(on.body.data.status, 'active');
    const raised = await t.call('patch', `/campaigns/${id}`, { token: key, body: { budget: 700_000 } });
    assert.equal(raised.status, 200, raised.text);
    const off = await t.call('post', `/campaigns/${id}/status`, { token: key, body: { status: 'paused' } });
    assert.equal(off.body.data.status, 'paused');
    // No live money moved: same balances, no new postings.
    assert.deepEqual(await balanceOf(t, adv), balance);
    assert.deepEqual(await postingsOf(adv.id), postings);

    for (const who of [adv.token, admin.token, liveKey]) {
      const one = await t.call('get', `/campaigns/${id}`, { token: who });
      assert.equal(one.status, 404, one.text);
      const list = await t.call('get', '/campaigns?per_page=100', { token: who });
      assert.equal(list.status, 200, list.text);
      assert.ok(!list.body.data.some((c: { id: number }) => c.id === id));
      assert.ok(list.body.data.some((c: { id: number }) => c.id === liveId));
    }
    const edit = await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'active' } });
    assert.equal(edit.status, 404, edit.text);

    // And the test key sees no live campaign.
    const mine = await t.call('get', '/campaigns?per_page=100', { token: key });
    assert.deepEqual(
      mine.body.data.map((c: { id: number; mode: string }) => [c.id, c.mode]),
      [[id, 'test']],
    );
    assert.equal((await t.call('get', `/campaigns/${liveId}`, { token: key })).status, 404);
    const touch = await t.call('post', `/campaigns/${liveId}/status`, { token: key, body: { status: 'active' } });
    assert.equal(touch.status, 404, touch.text);
    assert.deepEqual(await postingsOf(adv.id), postings);
  });

  test('a test-mode conversion shows only to test keys, and no one can move money for it', async () => {
    const key = await apiKey(adv, 'test', [
      'campaigns:read',
      'campaigns:write',
      'conversions:read',
      'conversions:write',
    ]);
    const affKey = await apiKey(aff, 'test', ['links:read']);
    const s = await sandboxCampaign(key);
    const cpc = await sandboxCampaign(key, { payout_model: 'CPC', payout: 30, revenue: 50 });
    const balance = await balanceOf(t, adv);
    const postings = await postingsOf(adv.id);

    // Stored as the pipeline stores a test-mode campaign's conversion: pending, never handed to the ledger.
    const clickId = randomUUID();
    await makeConversion(t.env.sql, {
      advertiserId: adv.id,
      campaignId: s.campaignId,
      affiliateId: aff.id,
      payout: 700,
      revenue: 1000,
      eventId: 'sandbox-order-1',
      clickId,
    });
    const [pg] = await t.env.sql<{ id: string; status: string; payout: number; revenue: number }[]>`
      select id, status, payout, revenue from conversions where campaign_id = ${s.campaignId}`;
    assert.deepEqual({ ...pg, id: undefined }, { id: undefined, status: 'pending', payout: 700, revenue: 1000 });
    assert.deepEqual(await balanceOf(t, adv), balance);
    assert.deepEqual(await postingsOf(adv.id), postings);

    // The test key sees it; live principals do not, and cannot change it.
    const sandboxList = await t.call('get', '/conversions', { token: key });
    assert.deepEqual(
      sandboxList.body.data.map((c: { id: string }) => c.id),
      [pg!.id],
    );
    for (const who of [adv.token, admin.token]) {
      const list = await t.call('get', '/conversions?per_page=100', { token: who });
      assert.ok(!list.body.data.some((c: { id: string }) => c.id === pg!.id), list.text);
      const approve = await t.call('post', `/conversions/${pg!.id}/approve`, { token: who });
      assert.equal(approve.status, 404, approve.text);
      const batch = await t.call('post', '/conversions/batch', {
        token: who,
        body: {
          rows: [
            { event_id: 'sandbox-order-1', status: 'approved' },
            { click_id: clickId, amount: 5000 },
          ],
        },
      });
      assert.equal(batch.status, 200, batch.text);
      assert.deepEqual(
        batch.body.data.map((r: { ok: boolean; error?: { code: string } }) => [r.ok, r.error?.code]),
        [
          [false, 'NOT_FOUND'],
          [false, 'NOT_FOUND'],
        ],
      );
    }
    // Status changes post money, so the test key is refused them.
    const viaKey = await t.call('post', `/conversions/${pg!.id}/approve`, { token: key });
    assert.equal(viaKey.status, 403, viaKey.text);
    assert.equal(viaKey.body.error.code, 'LIVE_MODE_REQUIRED');
    const batchKey = await t.call('post', '/conversions/batch', {
      token: key,
      body: { rows: [{ event_id: 'sandbox-order-1', status: 'approved' }] },
    });
    assert.equal(batchKey.status, 403, batchKey.text);
    assert.equal(batchKey.body.error.code, 'LIVE_MODE_REQUIRED');
    assert.deepEqual(await postingsOf(adv.id), postings);
    assert.equal((await t.env.sql`select status from conversions where id = ${pg!.id}`)[0]!.status, 'pending');

    // Links: the affiliate's test key lists the sandbox links; its session (live) does not, nor live links for the key.
    const liveLink = `live${randomUUID().slice(0, 8)}`;
    const liveId = await createBudgetedCampaign(t, adv, websiteId, null);
    await t.env.sql`insert into links (code, campaign_id, affiliate_id) values (${liveLink}, ${liveId}, ${aff.id})`;
    const testLinks = await t.call('get', '/affiliate/links?per_page=100', { token: affKey });
    assert.deepEqual(
      testLinks.body.data.map((l: { code: string }) => l.code).sort(),
      [s.linkCode, cpc.linkCode].sort(),
    );
    const liveLinks = await t.call('get', '/affiliate/links?per_page=100', { token: aff.token });
    assert.deepEqual(
      liveLinks.body.data.map((l: { code: string }) => l.code),
      [liveLink],
    );
  });

  test('wallet calls with a test key are refused (session tokens only): a test key moves no money', async () => {
    const key = await apiKey(adv, 'test', ['campaigns:write']);
    for (const [method, path, body] of [
      ['post', '/wallet/fund', { amount: 1000, currency: 'USD', reference: 'x' }],
      ['get', '/wallet/balance', undefined],
      ['get', '/wallet/transactions', undefined],
    ] as const) {
      const r = await t.call(method, path, { token: key, body });
      assert.equal(r.status, 403, r.text);
      assert.equal(r.body.error.message, 'API keys cannot call this route');
    }
  });

  test('reports: a test key sees only test-mode traffic, live principals none of it', async () => {
    const key = await apiKey(adv, 'test', ['campaigns:read', 'campaigns:write', 'reports:read']);
    const liveKey = await apiKey(adv, 'live', ['reports:read']);
    const s = await sandboxCampaign(key);
    const liveId = await createBudgetedCampaign(t, adv, websiteId, null);
    const at = '2026-01-10 10:00:00.000';
    const click = (campaign: number) => ({
      click_id: randomUUID(),
      ts: at,
      received: at,
      link_code: `l${campaign}`,
      campaign_id: campaign,
      affiliate_id: aff.id,
      advertiser_id: adv.id,
      currency: 'USD',
      ip: '192.0.2.1',
      method: 'GET',
      user_agent: 'Mozilla/5.0',
      fraud_score: 0,
      fraud_reasons: [],
      is_invalid: 0,
    });
    await t.env.ch!.insert({
      table: 'clicks',
      format: 'JSONEachRow',
      values: [click(s.campaignId), click(liveId), click(liveId)],
    });
    const q = 'group_by=campaign&from=2026-01-10&to=2026-01-10&tz=UTC';
    const keys = async (token: string) =>
      (await t.call('get', `/reports?${q}`, { token })).body.data.map((r: { key: string; clicks: number }) => [
        r.key,
        r.clicks,
      ]);
    assert.deepEqual(await keys(key), [[String(s.campaignId), 1]]);
    for (const who of [adv.token, liveKey, admin.token]) assert.deepEqual(await keys(who), [[String(liveId), 2]]);
    const log = async (token: string) =>
      (await t.call('get', `/reports/clicks?from=2026-01-10&to=2026-01-10`, { token })).body.data.map(
        (r: { campaign_id: number }) => r.campaign_id,
      );
    assert.deepEqual(await log(key), [s.campaignId]);
    assert.deepEqual(await log(adv.token), [liveId, liveId]);
    const byId = await t.call('get', `/reports?${q}&campaign_id=${s.campaignId}`, { token: adv.token });
    assert.equal(byId.status, 404, byId.text);
  });
});
