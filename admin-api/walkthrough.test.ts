/**
 * The README walk-through, as a test: the exact request bodies of register → login → website →
 * approve → campaign → activate → join → postback token → publishable key → recurring terms → report (the
 * renewal postbacks themselves run through a real tracker in routes/campaigns-recurring-stack.test.ts), and the tier-2
 * step's registration with a referral code and the campaign's tier share.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createAdmin } from './create-admin.ts';
import { startTestApi, type TestApi } from './test-helpers.ts';

let t: TestApi;
before(async () => {
  t = await startTestApi({ clickhouse: true });
});
after(async () => {
  await t.close();
});

test('walk-through', async () => {
  await createAdmin(t.env.sql, { email: 'admin@example.com', password: 'admin-password-1' });
  const admin = (
    await t.call('post', '/auth/login', { body: { email: 'admin@example.com', password: 'admin-password-1' } })
  ).body.data.access_token;

  const reg = await t.call('post', '/auth/register', {
    body: { name: 'Acme Ads', email: 'ads@example.com', password: 'advertiser-pass-1', role: 'advertiser' },
  });
  assert.equal(reg.status, 201);
  await t.call('post', '/auth/register', {
    body: { name: 'Pat Publisher', email: 'pub@example.com', password: 'affiliate-pass-1', role: 'affiliate' },
  });
  const adv = (
    await t.call('post', '/auth/login', { body: { email: 'ads@example.com', password: 'advertiser-pass-1' } })
  ).body.data.access_token;
  const aff = (
    await t.call('post', '/auth/login', { body: { email: 'pub@example.com', password: 'affiliate-pass-1' } })
  ).body.data.access_token;

  const site = await t.call('post', '/websites', {
    token: adv,
    body: { url: 'https://shop.example.com', name: 'Example shop' },
  });
  assert.equal(site.status, 201);
  const siteId = site.body.data.id;
  assert.equal((await t.call('post', `/websites/${siteId}/approve`, { token: admin })).body.data.status, 'approved');

  const camp = await t.call('post', '/campaigns', {
    token: adv,
    body: {
      website_id: siteId,
      name: 'Spring sale',
      destination_url: 'https://shop.example.com/landing?cid={click_id}&s1={sub1}',
      payout_model: 'CPA',
      payout: 500,
      revenue: 800,
      currency: 'USD',
    },
  });
  assert.equal(camp.status, 201, camp.text);
  const campId = camp.body.data.id;
  assert.equal(
    (await t.call('post', `/campaigns/${campId}/status`, { token: adv, body: { status: 'active' } })).body.data.status,
    'active',
  );

  const join = await t.call('post', `/campaigns/${campId}/join`, { token: aff });
  assert.equal(join.status, 201);
  assert.match(join.body.data.link.url, /^http:\/\/localhost:8080\/c\/\w+$/);

  const pbt = await t.call('post', '/postback-tokens', { token: adv });
  assert.equal(pbt.status, 201);
  assert.match(pbt.body.data.token, /^pbt_/);

  const pk = await t.call('post', '/publishable-keys', {
    token: adv,
    body: { name: 'shop pages', allowed_origins: ['https://shop.example.com'] },
  });
  assert.equal(pk.status, 201, pk.text);
  assert.match(pk.body.data.key, /^pk_live_/);

  // Recurring commissions: the README's PATCH, as sent.
  const rec = await t.call('patch', `/campaigns/${campId}`, {
    token: adv,
    body: { recurring_percent_bp: 1000, recurring_months: 12 },
  });
  assert.equal(rec.status, 200, rec.text);
  assert.equal(rec.body.data.recurring_percent_bp, 1000);

  const rep = await t.call('get', `/reports?group_by=day&from=2026-11-01&to=2026-11-30&tz=UTC&campaign_id=${campId}`, {
    token: adv,
  });
  // Real reports over ClickHouse: no traffic went through the link yet, so the report is empty.
  assert.equal(rep.status, 200, rep.text);
  assert.deepEqual(rep.body, {
    success: true,
    data: [],
    meta: { page: 1, per_page: 100, total: 0, total_pages: 0 },
  });
  // Tier 2 (README "Tiers, rewards and balances"; the payout itself: admin-api/routes/rewards-stack.test.ts).
  const code = (await t.call('get', '/auth/me', { token: aff })).body.data.referral_code;
  const sam = await t.call('post', '/auth/register', {
    body: {
      name: 'Sam Sub',
      email: 'sam@example.com',
      password: 'affiliate-pass-2',
      role: 'affiliate',
      referral_code: code,
    },
  });
  const pat = (await t.call('get', '/auth/me', { token: aff })).body.data.id;
  assert.equal(sam.body.data.parent_affiliate_id, pat, sam.text);
  const tiers = await t.call('put', `/campaigns/${campId}/tiers`, { token: admin, body: { tier2_share_bp: 1000 } });
  assert.equal(tiers.body.data.tier2_share_bp, 1000, tiers.text);

  const clicks = await t.call('get', `/reports/clicks?from=2026-11-01&to=2026-11-30&campaign_id=${campId}`, {
    token: aff,
  });
  assert.deepEqual(clicks.body, {
    success: true,
    data: [],
    meta: { page: 1, per_page: 100, total: 0, total_pages: 0 },
  });
});
