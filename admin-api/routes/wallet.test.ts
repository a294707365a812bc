/**
 * The wallet routes over the real ledger (Postgres, Redis): funding, balances, transactions, payout wallets and
 * withdrawals, with bad input and other tenants; and the OpenAPI document of the wallet and conversion-status routes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../infra/index.ts';
import { createLedger } from '../../ledger/index.ts';
import {
  activateCampaign,
  balanceOf as balanceOfUser,
  bookConversion,
  createBudgetedCampaign,
  startLedgerApi,
  type TestApi,
  type TestUser,
  validationFailed,
  withBareApi,
} from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let adv2: TestUser;
let aff: TestUser;
let aff2: TestUser;
let websiteId: number;
let activeCampaign: number;

before(async () => {
  ({ t, admin, adv, adv2, aff, aff2, websiteId } = await startLedgerApi());
});
after(async () => {
  await t.close();
});

const balanceOf = (u: TestUser, cur = 'USD') => balanceOfUser(t, u, cur);
const bookedConversion = (campaignId: number, advertiserId = adv.id, affiliateId = aff.id) =>
  bookConversion(t, { campaignId, advertiserId, affiliateId });

describe('without a ledger', () => {
  test('wallet and conversion-status routes answer 503', async () => {
    await withBareApi('advertiser', async (bare, u) => {
      for (const [m, p, body] of [
        ['post', '/wallet/fund', { amount: 100, currency: 'USD', reference: 'x' }],
        ['get', '/wallet/balance', undefined],
        ['post', `/conversions/${randomUUID()}/approve`, undefined],
        ['post', '/conversions/batch', { rows: [{ event_id: 'e' }] }],
      ] as const) {
        const r = await bare.call(m, p, { token: u.token, body });
        assert.equal(r.status, 503, `${p}: ${r.text}`);
        assert.deepEqual(r.body, {
          success: false,
          error: { code: 'SERVICE_UNAVAILABLE', message: 'the wallet is not available' },
        });
      }
    });
  });
});

describe('funding', () => {
  test('advertiser funds: credited at once; Idempotency-Key replays; another body → 409', async () => {
    const key = randomUUID();
    const body = { amount: 50_000, currency: 'USD', reference: 'wire 1' };
    const r = await t.call('post', '/wallet/fund', { token: adv.token, body, headers: { 'idempotency-key': key } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.data.type, 'deposit');
    assert.equal(r.body.data.status, 'posted');
    assert.equal(r.body.data.amount, 50_000);
    assert.equal(r.body.data.replayed, false);
    const again = await t.call('post', '/wallet/fund', { token: adv.token, body, headers: { 'idempotency-key': key } });
    assert.equal(again.status, 200);
    assert.equal(again.body.data.id, r.body.data.id);
    assert.equal(again.body.data.replayed, true);
    const other = await t.call('post', '/wallet/fund', {
      token: adv.token,
      body: { ...body, amount: 1 },
      headers: { 'idempotency-key': key },
    });
    assert.equal(other.status, 409, other.text);
    assert.equal(other.body.error.code, 'IDEMPOTENCY_CONFLICT');
    const b = await balanceOf(adv);
    assert.deepEqual(
      { available: b.available, total: b.total, reserved: b.reserved, spent: b.spent },
      { available: 50_000, total: 50_000, reserved: 0, spent: 0 },
    );
  });

  test('bad input → 400 with the whole error body', async () => {
    const r = await t.call('post', '/wallet/fund', {
      token: adv.token,
      body: { amount: -5, currency: 'usd', reference: '' },
    });
    assert.equal(r.status, 400);
    assert.deepEqual(
      r.body,
      validationFailed({
        amount: ['Too small: expected number to be >=1'],
        currency: ['must be an ISO 4217 code such as USD'],
        reference: ['Too small: expected string to have >=1 characters'],
      }),
    );
    const f = await t.call('post', '/wallet/fund', {
      token: adv.token,
      body: { amount: 1.5, currency: 'USD', reference: 'x' },
    });
    assert.deepEqual(f.body.error.details, { amount: ['Invalid input: expected int, received number'] });
  });

  test('affiliates and admins cannot fund', async () => {
    for (const u of [aff, admin]) {
      const r = await t.call('post', '/wallet/fund', {
        token: u.token,
        body: { amount: 100, currency: 'USD', reference: 'x' },
      });
      assert.equal(r.status, 403);
      assert.equal(r.body.error.code, 'FORBIDDEN');
    }
  });

  test('manual deposits: pending until an admin confirms (partly); unknown id → 404', async () => {
    // A second ledger over the same database with manual deposits, as a deployment with WALLET_TEST_DEPOSITS=false.
    const manual = createLedger({
      sql: t.env.sql,
      config: { ...t.env.config, WALLET_TEST_DEPOSITS: false },
      logger: createLogger({ level: 'silent' }),
    });
    const d = await manual.fund({
      advertiserId: adv2.id,
      amount: 10_000,
      currency: 'EUR',
      reference: 'wire eur',
      idempotencyKey: 'eur-1',
    });
    assert.equal(d.status, 'pending');
    assert.equal((await balanceOf(adv2, 'EUR')).pending_deposits, 10_000);
    assert.equal((await balanceOf(adv2, 'EUR')).available, 0);
    const denied = await t.call('post', `/wallet/deposits/${d.id}/confirm`, { token: adv2.token, body: {} });
    assert.equal(denied.status, 403);
    const c = await t.call('post', `/wallet/deposits/${d.id}/confirm`, { token: admin.token, body: { amount: 8_000 } });
    assert.equal(c.status, 200, c.text);
    assert.equal(c.body.data.type, 'deposit_confirm');
    assert.equal(c.body.data.amount, 8_000);
    const b = await balanceOf(adv2, 'EUR');
    assert.deepEqual([b.available, b.pending_deposits], [8_000, 0]);
    const twice = await t.call('post', `/wallet/deposits/${d.id}/void`, { token: admin.token });
    assert.equal(twice.status, 422);
    assert.equal(twice.body.error.code, 'INVALID_STATE');
    for (const id of [randomUUID(), 'not-a-uuid']) {
      const r = await t.call('post', `/wallet/deposits/${id}/confirm`, { token: admin.token, body: {} });
      assert.equal(r.status, 404, r.text);
      assert.equal(r.body.error.code, 'NOT_FOUND');
    }
  });
});

describe('payout wallets and withdrawals', () => {
  before(async () => {
    // aff's commissions to withdraw: an active campaign of adv (funded above) and three approved conversions of 700.
    activeCampaign = await createBudgetedCampaign(t, adv, websiteId, 30_000);
    await activateCampaign(t, adv, activeCampaign);
    for (let i = 0; i < 3; i++) {
      const c = await bookedConversion(activeCampaign);
      await t.call('post', `/conversions/${c.id}/approve`, { token: adv.token });
    }
  });

  let walletId: number;
  const btc = 'bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq';

  test('add (usable 24 h later), list, invalid address → 400, duplicate → 409', async () => {
    const r = await t.call('post', '/wallet/wallets', {
      token: aff.token,
      body: { network: 'BTC', address: btc, label: 'cold' },
    });
    assert.equal(r.status, 201, r.text);
    walletId = r.body.data.id;
    const usableInMs = Date.parse(r.body.data.usable_at) - Date.parse(r.body.data.created_at);
    assert.equal(usableInMs, 24 * 3600_000);
    const list = await t.call('get', '/wallet/wallets', { token: aff.token });
    assert.deepEqual(
      list.body.data.map((w: { id: number; label: string }) => [w.id, w.label]),
      [[walletId, 'cold']],
    );
    const bad = await t.call('post', '/wallet/wallets', {
      token: aff.token,
      body: { network: 'ETH', address: '0x123' },
    });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, validationFailed({ address: ['not a valid ETH address'] }, 'not a valid ETH address'));
    const net = await t.call('post', '/wallet/wallets', { token: aff.token, body: { network: 'DOGE', address: 'x' } });
    assert.equal(net.status, 400);
    assert.deepEqual(Object.keys(net.body.error.details), ['network']);
    const dup = await t.call('post', '/wallet/wallets', { token: aff.token, body: { network: 'BTC', address: btc } });
    assert.equal(dup.status, 409, dup.text);
  });

  test('withdraw: too young wallet → 422; below minimum → 400; advertisers → 403', async () => {
    const young = await t.call('post', '/wallet/withdraw', {
      token: aff.token,
      body: { amount: 1_000, currency: 'USD', wallet_id: walletId },
    });
    assert.equal(young.status, 422, young.text);
    assert.equal(young.body.error.code, 'INVALID_STATE');
    assert.equal(young.body.error.message, 'this payout wallet can be used 24 hours after it was added');
    const small = await t.call('post', '/wallet/withdraw', {
      token: aff.token,
      body: { amount: 999, currency: 'USD', wallet_id: walletId },
    });
    assert.equal(small.status, 400);
    assert.deepEqual(small.body, validationFailed({ min_amount: 1000 }, 'the minimum withdrawal is 1000'));
    const advr = await t.call('post', '/wallet/withdraw', {
      token: adv.token,
      body: { amount: 1_000, currency: 'USD', wallet_id: walletId },
    });
    assert.equal(advr.status, 403);
  });

  test('request → admin approves (paid) / rejects (back to approved); others cannot see or use them', async () => {
    await t.env.sql`update payout_wallets set usable_at = now() - interval '1 minute' where id = ${walletId}`;
    // Approve enough commissions: 2 × 700.
    for (let i = 0; i < 2; i++) {
      const c = await bookedConversion(activeCampaign);
      await t.call('post', `/conversions/${c.id}/approve`, { token: adv.token });
    }
    // Approved so far, 700 each: the three of this describe's setup and these two.
    const approvedBefore = (await balanceOf(aff)).approved!;
    assert.equal(approvedBefore, 3_500);
    const broke = await t.call('post', '/wallet/withdraw', {
      token: aff.token,
      body: { amount: approvedBefore + 1, currency: 'USD', wallet_id: walletId },
    });
    assert.equal(broke.status, 422);
    assert.equal(broke.body.error.code, 'INSUFFICIENT_FUNDS');
    const foreign = await t.call('post', '/wallet/withdraw', {
      token: aff2.token,
      body: { amount: 1_000, currency: 'USD', wallet_id: walletId },
    });
    assert.equal(foreign.status, 404);
    assert.deepEqual(foreign.body.error, { code: 'NOT_FOUND', message: 'payout wallet not found' });

    const w1 = await t.call('post', '/wallet/withdraw', {
      token: aff.token,
      body: { amount: 1_000, currency: 'USD', wallet_id: walletId },
    });
    assert.equal(w1.status, 201, w1.text);
    assert.equal(w1.body.data.status, 'pending');
    let b = await balanceOf(aff);
    assert.equal(b.withdrawal_pending, 1_000);

    const mine = await t.call('get', '/wallet/withdrawals', { token: aff.token });
    assert.equal(mine.body.meta.total, 1);
    assert.equal(mine.body.data[0].id, w1.body.data.id);
    assert.equal((await t.call('get', '/wallet/withdrawals', { token: aff2.token })).body.meta.total, 0);
    const all = await t.call('get', `/wallet/withdrawals?user_id=${aff.id}&status=pending`, { token: admin.token });
    assert.deepEqual(
      all.body.data.map((w: { id: string }) => w.id),
      [w1.body.data.id],
    );

    const ok = await t.call('post', `/wallet/withdrawals/${w1.body.data.id}/approve`, {
      token: admin.token,
      body: { tx_hash: '0xabc' },
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.data.type, 'withdrawal_paid');
    b = await balanceOf(aff);
    assert.deepEqual([b.paid, b.withdrawal_pending, b.approved], [1_000, 0, approvedBefore - 1_000]);

    const w2 = await t.call('post', '/wallet/withdraw', {
      token: aff.token,
      body: { amount: 1_000, currency: 'USD', wallet_id: walletId },
    });
    assert.equal(w2.status, 201, w2.text);
    assert.equal((await balanceOf(aff)).withdrawal_pending, 1_000);
    const no = await t.call('post', `/wallet/withdrawals/${w2.body.data.id}/reject`, {
      token: admin.token,
      body: { reason: 'compliance' },
    });
    assert.equal(no.status, 200, no.text);
    assert.equal(no.body.data.type, 'withdrawal_rejected');
    b = await balanceOf(aff);
    assert.deepEqual([b.approved, b.withdrawal_pending, b.paid], [approvedBefore - 1_000, 0, 1_000]);
    const twice = await t.call('post', `/wallet/withdrawals/${w1.body.data.id}/reject`, {
      token: admin.token,
      body: {},
    });
    assert.equal(twice.status, 422);
    assert.equal(twice.body.error.code, 'INVALID_STATE');
  });

  test('delete: own only; afterwards gone from the list', async () => {
    const foreign = await t.call('delete', `/wallet/wallets/${walletId}`, { token: aff2.token });
    assert.equal(foreign.status, 404);
    assert.deepEqual(foreign.body.error, { code: 'NOT_FOUND', message: 'payout wallet not found' });
    const r = await t.call('delete', `/wallet/wallets/${walletId}`, { token: aff.token });
    assert.deepEqual(r.body, { success: true, data: { id: walletId, deleted: true } });
    assert.deepEqual((await t.call('get', '/wallet/wallets', { token: aff.token })).body.data, []);
  });
});

describe('balances and transactions', () => {
  test('admins read anyone’s balance with ?user_id=, the platform margin without', async () => {
    const r = await t.call('get', `/wallet/balance?user_id=${adv.id}`, { token: admin.token });
    assert.equal(r.body.data.role, 'advertiser');
    assert.equal(r.body.data.user_id, adv.id);
    assert.deepEqual(r.body.data.balances, await t.ledger!.advertiserBalances(adv.id));
    const p = await t.call('get', '/wallet/balance', { token: admin.token });
    assert.equal(p.body.data.role, 'admin');
    assert.ok(p.body.data.balances.some((x: { currency: string; revenue: number }) => x.currency === 'USD'));
    const none = await t.call('get', '/wallet/balance?user_id=99999999', { token: admin.token });
    assert.equal(none.status, 404);
  });

  test('paginated, filtered by type and dates; bad filters → 400', async () => {
    const all = await t.call('get', '/wallet/transactions?per_page=2', { token: adv.token });
    assert.equal(all.status, 200, all.text);
    assert.equal(all.body.data.length, 2);
    assert.ok(all.body.meta.total > 2);
    assert.equal(all.body.meta.total_pages, Math.ceil(all.body.meta.total / 2));
    const deposits = await t.call('get', '/wallet/transactions?type=deposit', { token: adv.token });
    assert.deepEqual(
      deposits.body.data.map((d: { type: string }) => d.type),
      ['deposit'],
    );
    assert.deepEqual(deposits.body.data[0].entries, [
      { account: 'available', currency: 'USD', amount: 50_000, phase: 'posted' },
    ]);
    const today = new Date().toISOString().slice(0, 10);
    const inRange = await t.call('get', `/wallet/transactions?from=${today}&to=${today}`, { token: adv.token });
    assert.equal(inRange.body.meta.total, all.body.meta.total);
    const past = await t.call('get', '/wallet/transactions?from=2020-01-01&to=2020-12-31', { token: adv.token });
    assert.equal(past.body.meta.total, 0);
    const byAdmin = await t.call('get', `/wallet/transactions?user_id=${aff.id}&type=withdrawal`, {
      token: admin.token,
    });
    assert.ok(byAdmin.body.data.length >= 1);
    const bad = await t.call('get', '/wallet/transactions?type=gift&from=2026-02-30&per_page=101', {
      token: adv.token,
    });
    assert.equal(bad.status, 400);
    assert.deepEqual(Object.keys(bad.body.error.details).sort(), ['from', 'per_page', 'type']);
    const backwards = await t.call('get', '/wallet/transactions?from=2026-02-02&to=2026-02-01', { token: adv.token });
    assert.deepEqual(backwards.body.error.details, { to: ['must not be before from'] });
    const adminNoUser = await t.call('get', '/wallet/transactions', { token: admin.token });
    assert.deepEqual(adminNoUser.body.error.details, { user_id: ['required for admins: whose transactions'] });
  });
});

describe('OpenAPI', () => {
  test('documents UUID path params and the CSV body of the batch route', async () => {
    const doc = (await t.call('get', '/openapi.json')).body;
    const approve = doc.paths['/api/v1/conversions/{id}/approve'].post;
    assert.deepEqual(approve.parameters[0].schema, { type: 'string', format: 'uuid' });
    assert.deepEqual(doc.paths['/api/v1/wallet/wallets/{id}'].delete.parameters[0].schema, {
      type: 'integer',
      minimum: 1,
    });
    const batch = doc.paths['/api/v1/conversions/batch'].post.requestBody.content;
    assert.deepEqual(Object.keys(batch), ['application/json', 'text/csv']);
    for (const p of ['/wallet/fund', '/wallet/balance', '/wallet/transactions', '/wallet/withdraw'])
      assert.ok(doc.paths[`/api/v1${p}`], p);
  });
});
