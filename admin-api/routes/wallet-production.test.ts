/**
 * Deposits under the production configuration (`NODE_ENV=production`, nothing else about deposits set, as
 * infra/Dockerfile and infra/docker-compose.yml run it): `POST /wallet/fund` only asks for money. The deposit stays
 * pending, moves nothing an advertiser can spend, until an admin (or a payment integration calling the same
 * confirm) confirms it. Issue #12, item 2.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  activateCampaign,
  approvedWebsite,
  balanceOf,
  createBudgetedCampaign,
  startTestApi,
  type TestApi,
  type TestUser,
  users,
} from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;

before(async () => {
  t = await startTestApi({
    ledger: true,
    // What production requires; WALLET_TEST_DEPOSITS is deliberately left unset (its production default applies).
    env: {
      NODE_ENV: 'production',
      JWT_SECRET: randomBytes(32).toString('hex'),
      DELIVERY_SECRET_KEY: randomBytes(32).toString('hex'),
      TOTP_SECRET_KEY: randomBytes(32).toString('hex'),
    },
  });
  ({ admin, adv } = await users(t, { admin: 'admin', adv: 'advertiser' }));
});
after(async () => {
  await t?.close();
});

test('production: a fund request stays pending, spends nothing, until an admin confirms it', async () => {
  const websiteId = await approvedWebsite(t, adv, admin);
  const key = randomUUID();
  const body = { amount: 50_000, currency: 'USD', reference: 'wire 2026-12-02' };
  const r = await t.call('post', '/wallet/fund', { token: adv.token, body, headers: { 'idempotency-key': key } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.data.type, 'deposit');
  assert.equal(r.body.data.status, 'pending', 'production credits no deposit at once');
  assert.equal(r.body.data.amount, 50_000);
  const depositId: string = r.body.data.id;

  const pending = await balanceOf(t, adv);
  assert.deepEqual(
    { available: pending.available ?? 0, total: pending.total ?? 0, pending_deposits: pending.pending_deposits },
    { available: 0, total: 0, pending_deposits: 50_000 },
  );
  // Pending money cannot be reserved: a campaign with a budget from it is refused, and nothing changes.
  const campaign = {
    website_id: websiteId,
    name: 'Spent before paid',
    destination_url: 'https://shop.example.com/?c={click_id}',
    payout_model: 'CPA',
    payout: 700,
    revenue: 1000,
    currency: 'USD',
    budget: 30_000,
  };
  const refused = await t.call('post', '/campaigns', { token: adv.token, body: campaign });
  assert.equal(refused.status, 422, refused.text);
  assert.equal(refused.body.error.code, 'INSUFFICIENT_FUNDS');
  assert.deepEqual(await balanceOf(t, adv), pending);

  // A retry with the same key is the same pending deposit, not a second one.
  const again = await t.call('post', '/wallet/fund', { token: adv.token, body, headers: { 'idempotency-key': key } });
  assert.equal(again.status, 200, again.text);
  assert.deepEqual([again.body.data.id, again.body.data.status], [depositId, 'pending']);
  assert.deepEqual(await balanceOf(t, adv), pending);

  // The advertiser cannot confirm its own deposit.
  const self = await t.call('post', `/wallet/deposits/${depositId}/confirm`, { token: adv.token, body: {} });
  assert.equal(self.status, 403, self.text);
  assert.deepEqual(await balanceOf(t, adv), pending);

  const c = await t.call('post', `/wallet/deposits/${depositId}/confirm`, { token: admin.token, body: {} });
  assert.equal(c.status, 200, c.text);
  assert.deepEqual([c.body.data.type, c.body.data.amount], ['deposit_confirm', 50_000]);
  const confirmed = await balanceOf(t, adv);
  assert.deepEqual(
    { available: confirmed.available, total: confirmed.total, pending_deposits: confirmed.pending_deposits },
    { available: 50_000, total: 50_000, pending_deposits: 0 },
  );
  // Confirmed money is spendable: the same campaign is now created and activated from it.
  const campaignId = await createBudgetedCampaign(t, adv, websiteId, 30_000);
  await activateCampaign(t, adv, campaignId);
  assert.equal((await balanceOf(t, adv)).available, 20_000);
});
