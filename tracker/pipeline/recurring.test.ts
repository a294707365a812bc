/** Renewal pricing and the month arithmetic of recurring commissions (pure; end to end: admin-api/routes/campaigns-recurring-stack.test.ts). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestEnv, type TestEnv } from '../../infra/testing/index.ts';
import type { ConversionEvent } from '../events.ts';
import type { CampaignTerms } from './campaigns.ts';
import {
  addMonthsUtc,
  attributeCustomer,
  type CustomerBinding,
  customerEntriesProcessedBefore,
  priceRenewal,
  viaCustomer,
} from './recurring.ts';
import { GROUP } from './streams.ts';

const campaign: CampaignTerms = {
  id: 1,
  advertiser_id: 3,
  status: 'active',
  payout_model: 'RevShare',
  currency: 'USD',
  attribution_window_days: 30,
  hold_days: 0,
  payout_amount: 0,
  revenue_amount: 0,
  payout_percent_bp: 2000,
  revenue_percent_bp: 3000,
  goals: [],
  mode: 'live',
  recurring_percent_bp: 1000,
  recurring_months: 12,
};
const first = Date.UTC(2025, 0, 31, 10);
const binding = {
  advertiser_id: 3,
  customer_id: 'cus_1',
  click_id: '0190f2c4-1111-7abc-8def-0123456789ab',
  click: { campaign_id: 1, affiliate_id: 9, advertiser_id: 3, ts_ms: first - 1000, fraud_score: 0, fraud_reasons: [] },
  first_event_time_ms: first,
} as unknown as CustomerBinding;
const renewal = (at: number, extra: Partial<ConversionEvent> = {}): ConversionEvent => ({
  conversion_id: '0190f2c4-1111-7abc-8def-0123456789ac',
  event_id: 'r',
  click_id: '',
  advertiser_id: 3,
  goal: 'renewal',
  amount_minor: 10_000,
  currency: 'USD',
  status: 'approved',
  event_time_ms: at,
  received_ms: at,
  ip: '',
  customer_id: 'cus_1',
  ...extra,
});

describe('recurring commissions', () => {
  it('adds calendar months in UTC, clamping to the month end', () => {
    assert.equal(addMonthsUtc(first, 1), Date.UTC(2025, 1, 28, 10));
    assert.equal(addMonthsUtc(Date.UTC(2024, 0, 31), 1), Date.UTC(2024, 1, 29));
    assert.equal(addMonthsUtc(first, 12), Date.UTC(2026, 0, 31, 10));
    assert.equal(addMonthsUtc(Date.UTC(2025, 10, 15), 3), Date.UTC(2026, 1, 15));
  });

  it('pays the recurring share of a renewal, charges by the revenue rules, until N months after the first conversion', () => {
    assert.deepEqual(priceRenewal(renewal(first + 1), binding, campaign), { type: 'ok', payout: 1000, revenue: 3000 });
    const lastMs = addMonthsUtc(first, 12);
    assert.equal(priceRenewal(renewal(lastMs - 1), binding, campaign).type, 'ok');
    assert.deepEqual(priceRenewal(renewal(lastMs), binding, campaign), { type: 'reject', reason: 'recurring_expired' });
    const forever = { ...campaign, recurring_months: null };
    assert.equal(priceRenewal(renewal(addMonthsUtc(first, 600)), binding, forever).type, 'ok');
    const none = { ...campaign, recurring_percent_bp: null };
    assert.deepEqual(priceRenewal(renewal(first), binding, none), { type: 'reject', reason: 'recurring_not_offered' });
    assert.deepEqual(priceRenewal(renewal(first, { amount_minor: -1, currency: '' }), binding, campaign), {
      type: 'reject',
      reason: 'amount_required',
    });
    assert.deepEqual(priceRenewal(renewal(first, { currency: 'EUR' }), binding, campaign), {
      type: 'reject',
      reason: 'currency_mismatch',
    });
    // A fixed-revenue (CPA) campaign charges its revenue per renewal.
    const cpa = { ...campaign, payout_model: 'CPA' as const, payout_amount: 700, revenue_amount: 1000 };
    assert.deepEqual(priceRenewal(renewal(first), binding, cpa), { type: 'ok', payout: 1000, revenue: 1000 });
  });

  it('attributes through the binding, never past the window rule, and refuses an unknown customer', () => {
    const late = renewal(addMonthsUtc(first, 6));
    const a = attributeCustomer(late, binding, campaign);
    assert.equal(a.type, 'ok');
    assert.equal(a.type === 'ok' && a.click.affiliate_id, 9);
    assert.deepEqual(attributeCustomer(late, null, campaign), {
      type: 'reject',
      reason: 'unknown_customer',
      click: null,
      campaign: null,
    });
    assert.equal(attributeCustomer({ ...late, advertiser_id: 4 }, binding, campaign).type, 'reject');
    assert.equal(attributeCustomer({ ...late, mode: 'test' }, binding, campaign).type, 'reject');
    const sale = attributeCustomer(renewal(addMonthsUtc(first, 6), { goal: '' }), binding, campaign);
    assert.deepEqual(sale.type === 'ok' && [sale.payout, sale.revenue], [2000, 3000]);
    assert.equal(viaCustomer({ click_id: 'x', customer_id: 'c', goal: 'renewal' }), true);
    assert.equal(viaCustomer({ click_id: 'x', customer_id: 'c', goal: '' }), false);
    assert.equal(viaCustomer({ click_id: '', customer_id: 'c', goal: '' }), true);
  });
});

describe('a customer unknown so far waits for earlier entries of its stream that another consumer holds', () => {
  let env: TestEnv;
  before(async () => {
    env = await createTestEnv();
  });
  after(() => env.close());

  it('is decided only once every earlier entry outside the batch is acknowledged', async () => {
    const stream = env.keys.conversions(0);
    await env.redis.xgroup('CREATE', stream, GROUP, '0', 'MKSTREAM');
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await env.redis.xadd(stream, '*', 'd', String(i))) as string);
    // Consumer A holds entry 0 (the lead that binds the customer); consumer B reads entries 1..3 as one batch.
    await env.redis.xreadgroup('GROUP', GROUP, 'A', 'COUNT', 1, 'STREAMS', stream, '>');
    await env.redis.xreadgroup('GROUP', GROUP, 'B', 'COUNT', 3, 'STREAMS', stream, '>');
    assert.equal(await customerEntriesProcessedBefore(env.redis, stream, ids[1]!), false);
    // A's batch starts at entry 0: nothing before it holds it back (B's pending entries come after).
    assert.equal(await customerEntriesProcessedBefore(env.redis, stream, ids[0]!), true);
    await env.redis.xack(stream, GROUP, ids[0]!);
    // B's own pending entries do not hold it back (they are recorded in order within the batch).
    assert.equal(await customerEntriesProcessedBefore(env.redis, stream, ids[1]!), true);
  });
});
