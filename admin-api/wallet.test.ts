/**
 * The wallet and conversion-status routes over the real ledger (Postgres, Redis): funding, campaign
 * budgets reserved on activation, balances, transactions, payout wallets, withdrawals, conversion
 * approve/reject/reverse and batch reconciliation (JSON and CSV), with bad input and other tenants.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../infra/index.ts';
import { createLedger } from '../ledger/index.ts';
import { startTestApi, type TestApi, type TestUser } from './test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let adv2: TestUser;
let aff: TestUser;
let aff2: TestUser;
let websiteId: number;

before(async () => {
  t = await startTestApi({ ledger: true });
  admin = await t.user('admin');
  adv = await t.user('advertiser');
  adv2 = await t.user('advertiser');
  aff = await t.user('affiliate');
  aff2 = await t.user('affiliate');
  const w = await t.call('post', '/websites', {
    token: adv.token,
    body: { url: 'https://shop.example.com', name: 'Shop' },
  });
  websiteId = w.body.data.id;
  await t.call('post', `/websites/${websiteId}/approve`, { token: admin.token });
});
after(async () => {
  await t.close();
});

async function balanceOf(u: TestUser, cur = 'USD'): Promise<Record<string, number>> {
  const r = await t.call('get', `/wallet/balance?currency=${cur}`, { token: u.token });
  assert.equal(r.status, 200, r.text);
  return r.body.data.balances[0] ?? {};
}

async function createCampaign(budget: number | null, extra: Record<string, unknown> = {}): Promise<number> {
  const r = await t.call('post', '/campaigns', {
    token: adv.token,
    body: {
      website_id: websiteId,
      name: 'Budgeted',
      destination_url: 'https://shop.example.com/?c={click_id}',
      payout_model: 'CPA',
      payout: 700,
      revenue: 1000,
      currency: 'USD',
      budget,
      ...extra,
    },
  });
  assert.equal(r.status, 201, r.text);
  return r.body.data.id;
}

/** Stores a conversion as the pipeline would and books it through the ledger (infra/contracts.ts §4). */
async function bookedConversion(campaignId: number, advertiserId = adv.id, affiliateId = aff.id) {
  const id = randomUUID();
  const eventId = `order-${id.slice(0, 8)}`;
  const clickId = randomUUID();
  await t.env.sql`
    insert into conversions (id, advertiser_id, event_id, click_id, campaign_id, affiliate_id, status, currency,
      payout, revenue, event_time)
    values (${id}, ${advertiserId}, ${eventId}, ${clickId}, ${campaignId}, ${affiliateId}, 'pending', 'USD',
      700, 1000, now())`;
  const outcome = await t.ledger!.conversionRecorded({ id });
  assert.equal(outcome.type, 'posted', JSON.stringify(outcome));
  return { id, eventId, clickId };
}

describe('without a ledger', () => {
  test('wallet and conversion-status routes answer 503', async () => {
    const bare = await startTestApi();
    try {
      const u = await bare.user('advertiser');
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
    } finally {
      await bare.close();
    }
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
    assert.deepEqual(r.body, {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'request validation failed',
        details: {
          amount: ['Too small: expected number to be >=1'],
          currency: ['must be an ISO 4217 code such as USD'],
          reference: ['Too small: expected string to have >=1 characters'],
        },
      },
    });
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

let activeCampaign: number;
let secondCampaign: number;

describe('campaign budgets go through the ledger', () => {
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

describe('conversion status', () => {
  let convA: { id: string; eventId: string; clickId: string };
  let convB: { id: string; eventId: string; clickId: string };

  test('approve moves the payout to approved; idempotent', async () => {
    convA = await bookedConversion(activeCampaign);
    convB = await bookedConversion(activeCampaign);
    const before = await balanceOf(aff);
    assert.equal(before.pending, 1_400);
    const r = await t.call('post', `/conversions/${convA.id}/approve`, { token: adv.token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data, { id: convA.id, status: 'approved', changed: true });
    const again = await t.call('post', `/conversions/${convA.id}/approve`, { token: admin.token });
    assert.deepEqual(again.body.data, { id: convA.id, status: 'approved', changed: false });
    const b = await balanceOf(aff);
    assert.deepEqual([b.pending, b.approved], [700, 700]);
    assert.equal((await balanceOf(adv)).spent, 2_000);
  });

  test('reject needs a reason; an approved conversion cannot be rejected (reverse it)', async () => {
    const noReason = await t.call('post', `/conversions/${convB.id}/reject`, { token: adv.token, body: {} });
    assert.equal(noReason.status, 400);
    assert.deepEqual(noReason.body, {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'request validation failed',
        details: { reason: ['Invalid input: expected string, received undefined'] },
      },
    });
    const approved = await t.call('post', `/conversions/${convA.id}/reject`, {
      token: adv.token,
      body: { reason: 'dup' },
    });
    assert.equal(approved.status, 422);
    assert.deepEqual(approved.body, {
      success: false,
      error: {
        code: 'INVALID_STATE',
        message: 'conversion is approved; reverse it instead',
        details: { status: 'approved' },
      },
    });
    const r = await t.call('post', `/conversions/${convB.id}/reject`, { token: adv.token, body: { reason: 'dup' } });
    assert.deepEqual(r.body.data, { id: convB.id, status: 'rejected', changed: true });
    const [row] = await t.env.sql`select reject_reason from conversions where id = ${convB.id}`;
    assert.equal(row!.reject_reason, 'dup');
    assert.equal((await balanceOf(aff)).pending, 0);
  });

  test('reverse after approval claws the payout back and refunds the reservation', async () => {
    const before = await balanceOf(adv);
    const r = await t.call('post', `/conversions/${convA.id}/reverse`, {
      token: admin.token,
      body: { reason: 'chargeback' },
    });
    assert.deepEqual(r.body.data, { id: convA.id, status: 'reversed', changed: true });
    const after = await balanceOf(adv);
    assert.equal(after.spent, before.spent! - 1_000);
    assert.equal(after.reserved, before.reserved! + 1_000);
    assert.equal((await balanceOf(aff)).approved, 0);
  });

  test('API keys: conversions:write (live) may approve; test-mode keys and wallet routes are refused', async () => {
    const c = await bookedConversion(activeCampaign);
    const key = async (mode: 'live' | 'test') => {
      const r = await t.call('post', '/api-keys', {
        token: adv.token,
        body: { name: `k-${mode}`, scopes: ['conversions:write'], mode },
      });
      assert.equal(r.status, 201, r.text);
      return r.body.data.key as string;
    };
    const viaTestKey = await t.call('post', `/conversions/${c.id}/approve`, { token: await key('test') });
    assert.equal(viaTestKey.status, 403);
    assert.deepEqual(viaTestKey.body.error, {
      code: 'FORBIDDEN',
      message: 'test-mode API keys cannot change conversions',
    });
    const live = await key('live');
    const ok = await t.call('post', `/conversions/${c.id}/approve`, { token: live });
    assert.deepEqual(ok.body.data, { id: c.id, status: 'approved', changed: true });
    const bal = await t.call('get', '/wallet/balance', { token: live });
    assert.equal(bal.status, 403);
    assert.equal(bal.body.error.message, 'API keys cannot call this route');
  });

  test("another advertiser's conversion, unknown or malformed ids → 404; affiliates → 403", async () => {
    const c = await bookedConversion(activeCampaign);
    for (const [who, id] of [
      [adv2, c.id],
      [adv, randomUUID()],
      [adv, 'nope'],
    ] as const) {
      const r = await t.call('post', `/conversions/${id}/approve`, { token: who.token });
      assert.equal(r.status, 404, r.text);
      assert.equal(r.body.error.code, 'NOT_FOUND');
    }
    const r = await t.call('post', `/conversions/${c.id}/reverse`, { token: aff.token, body: { reason: 'x' } });
    assert.equal(r.status, 403);
    const [row] = await t.env.sql`select status from conversions where id = ${c.id}`;
    assert.equal(row!.status, 'pending');
  });
});

describe('batch reconciliation', () => {
  test('JSON rows: per-row results; foreign and unknown rows fail alone; re-applying changes nothing', async () => {
    const a = await bookedConversion(activeCampaign);
    const b = await bookedConversion(activeCampaign);
    const foreign = await t.env.sql`select event_id from conversions where advertiser_id <> ${adv.id} limit 1`;
    const rows = [
      { event_id: a.eventId, status: 'approved' },
      { click_id: b.clickId, status: 'reversed', reason: 'refund' },
      { event_id: 'no-such-order', status: 'approved' },
      ...foreign.map((f) => ({ event_id: f.event_id as string, status: 'approved' })),
    ];
    const r = await t.call('post', '/conversions/batch', { token: adv.token, body: { rows } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data.slice(0, 3), [
      { index: 0, ok: true, conversion_id: a.id, status: 'approved', changed: true },
      { index: 1, ok: true, conversion_id: b.id, status: 'reversed', changed: true },
      { index: 2, ok: false, error: { code: 'NOT_FOUND', message: 'conversion not found' } },
    ]);
    assert.equal(r.body.meta.rows, rows.length);
    assert.equal(r.body.meta.changed, 2);
    const again = await t.call('post', '/conversions/batch', { token: adv.token, body: { rows: rows.slice(0, 2) } });
    assert.deepEqual(
      again.body.data.map((x: { changed: boolean }) => x.changed),
      [false, false],
    );
  });

  test('CSV upload with the header line', async () => {
    const a = await bookedConversion(activeCampaign);
    const b = await bookedConversion(activeCampaign);
    const csv = `event_id,click_id,status,amount\r\n${a.eventId},,approved,\r\n,${b.clickId},"rejected",\r\nmissing-1,,approved,\r\n`;
    const r = await t.call('post', '/conversions/batch', {
      token: adv.token,
      raw: csv,
      headers: { 'content-type': 'text/csv' },
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data, [
      { index: 0, ok: true, conversion_id: a.id, status: 'approved', changed: true },
      { index: 1, ok: true, conversion_id: b.id, status: 'rejected', changed: true },
      { index: 2, ok: false, error: { code: 'NOT_FOUND', message: 'conversion not found' } },
    ]);
    assert.deepEqual(r.body.meta, { rows: 3, ok: 2, failed: 1, changed: 2 });
  });

  test('bad batches → 4xx with the whole error body', async () => {
    const cases: Array<[Record<string, unknown>, number, unknown]> = [
      [
        { raw: 'order_id,status\nx,approved\n', headers: { 'content-type': 'text/csv' } },
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'invalid CSV',
          details: { 'line 1': ['unknown column "order_id"; expected a header of event_id,click_id,status,amount'] },
        },
      ],
      [
        { raw: 'event_id,status\nx,approved,extra\n', headers: { 'content-type': 'text/csv' } },
        400,
        { code: 'VALIDATION_ERROR', message: 'invalid CSV', details: { 'line 2': ['expected 2 cells, got 3'] } },
      ],
      [
        { raw: 'event_id,status,amount\nx,paid,12.5\n', headers: { 'content-type': 'text/csv' } },
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'request validation failed',
          details: {
            'rows.0.status': ['Invalid option: expected one of "approved"|"rejected"|"reversed"'],
            'rows.0.amount': ['Invalid input: expected number, received string'],
          },
        },
      ],
      [
        { body: { rows: [] } },
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'request validation failed',
          details: { rows: ['Too small: expected array to have >=1 items'] },
        },
      ],
      [
        { body: { rows: [{ status: 'approved' }] } },
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'request validation failed',
          details: { 'rows.0': ['event_id or click_id is required'] },
        },
      ],
      [
        { raw: 'event_id\nx\n', headers: { 'content-type': 'text/plain' } },
        415,
        { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'request body must be application/json or text/csv' },
      ],
    ];
    for (const [opts, status, error] of cases) {
      const r = await t.call('post', '/conversions/batch', { token: adv.token, ...opts });
      assert.equal(r.status, status, r.text);
      assert.deepEqual(r.body, { success: false, error }, JSON.stringify(opts));
    }
    const many = { rows: Array.from({ length: 10_001 }, (_, i) => ({ event_id: `e${i}` })) };
    const r = await t.call('post', '/conversions/batch', { token: adv.token, body: many });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body.error.details, { rows: ['Too big: expected array to have <=10000 items'] });
    const csv = `event_id\n${Array.from({ length: 10_001 }, (_, i) => `e${i}`).join('\n')}\n`;
    const rc = await t.call('post', '/conversions/batch', {
      token: adv.token,
      raw: csv,
      headers: { 'content-type': 'text/csv' },
    });
    assert.deepEqual(rc.body.error, {
      code: 'VALIDATION_ERROR',
      message: 'invalid CSV',
      details: { 'line 10002': ['at most 10000 rows'] },
    });
    const huge = await t.call('post', '/conversions/batch', {
      token: adv.token,
      raw: `event_id\n${'x'.repeat(1024 * 1024)}\n`,
      headers: { 'content-type': 'text/csv' },
    });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error.code, 'PAYLOAD_TOO_LARGE');
  });
});

describe('payout wallets and withdrawals', () => {
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
    assert.deepEqual(bad.body, {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'not a valid ETH address',
        details: { address: ['not a valid ETH address'] },
      },
    });
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
    assert.deepEqual(small.body, {
      success: false,
      error: { code: 'VALIDATION_ERROR', message: 'the minimum withdrawal is 1000', details: { min_amount: 1000 } },
    });
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
    // Approved so far, 700 each: one through an API key, two batch rows (JSON, CSV) and these two.
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
