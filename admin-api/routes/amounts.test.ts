/**
 * Money fields are capped at MAX_MINOR_UNITS (infra/contracts.ts §6) over the real API and ledger: one minor unit
 * more is a 400 VALIDATION_ERROR on campaign create / PATCH and on wallet fund / withdraw, and changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MAX_MINOR_UNITS } from '../../infra/index.ts';
import { balanceOf, startLedgerApi, type TestApi, type TestUser } from '../test-helpers.ts';

let t: TestApi;
let adv: TestUser;
let aff: TestUser;
let websiteId: number;

before(async () => {
  ({ t, adv, aff, websiteId } = await startLedgerApi());
});
after(async () => {
  await t.close();
});

const over = MAX_MINOR_UNITS + 1;

function assertTooBig(
  r: { status: number; body: { error: { code: string; details?: Record<string, unknown> } }; text: string },
  field: string,
) {
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'VALIDATION_ERROR');
  assert.ok(r.body.error.details?.[field], `${field} named in ${r.text}`);
}

describe('money fields past MAX_MINOR_UNITS', () => {
  test('wallet fund and withdrawal: 10^12 + 1 refused, 10^12 accepted', async () => {
    const before = await balanceOf(t, adv);
    const r = await t.call('post', '/wallet/fund', {
      token: adv.token,
      body: { amount: over, currency: 'USD', reference: 'too much' },
    });
    assertTooBig(r, 'amount');
    assert.deepEqual(await balanceOf(t, adv), before, 'nothing credited');
    const ok = await t.call('post', '/wallet/fund', {
      token: adv.token,
      body: { amount: MAX_MINOR_UNITS, currency: 'USD', reference: 'the most' },
    });
    assert.equal(ok.status, 201, ok.text);
    const w = await t.call('post', '/wallet/withdraw', {
      token: aff.token,
      body: { amount: over, currency: 'USD', wallet_id: 1 },
    });
    assertTooBig(w, 'amount');
  });

  test('campaign create and PATCH: payout, revenue, budget, daily cap, goal amounts of 10^12 + 1 refused', async () => {
    const body = {
      website_id: websiteId,
      name: 'Capped',
      destination_url: 'https://shop.example.com/?c={click_id}',
      payout_model: 'CPA',
      payout: 500,
      revenue: 800,
      currency: 'USD',
    };
    const count = async () => (await t.env.sql<{ n: number }[]>`select count(*)::int as n from campaigns`)[0]!.n;
    const campaignsBefore = await count();
    for (const [patch, field] of [
      [{ payout: over }, 'payout'],
      [{ revenue: over }, 'revenue'],
      [{ budget: over }, 'budget'],
      [{ daily_cap: over }, 'daily_cap'],
      [{ goals: [{ goal: 'sale', payout: over }] }, 'goals.0.payout'],
      [{ goals: [{ goal: 'sale', revenue: over }] }, 'goals.0.revenue'],
    ] as const) {
      const r = await t.call('post', '/campaigns', { token: adv.token, body: { ...body, ...patch } });
      assertTooBig(r, field);
    }
    assert.equal(await count(), campaignsBefore, 'no campaign created');

    const c = await t.call('post', '/campaigns', {
      token: adv.token,
      body: { ...body, payout: MAX_MINOR_UNITS, revenue: MAX_MINOR_UNITS },
    });
    assert.equal(c.status, 201, c.text);
    const p = await t.call('patch', `/campaigns/${c.body.data.id}`, { token: adv.token, body: { revenue: over } });
    assertTooBig(p, 'revenue');
    const [row] = await t.env.sql<{ revenue_amount: number }[]>`
      select revenue_amount from campaigns where id = ${c.body.data.id}`;
    assert.equal(row!.revenue_amount, MAX_MINOR_UNITS, 'unchanged');
  });
});
