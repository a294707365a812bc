import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type CampaignTerms, cpcCharges, percentOf, priceConversion } from './campaigns.ts';

const base: CampaignTerms = {
  id: 1,
  advertiser_id: 2,
  status: 'active',
  payout_model: 'CPA',
  currency: 'USD',
  attribution_window_days: 30,
  hold_days: 0,
  payout_amount: 500,
  revenue_amount: 700,
  payout_percent_bp: null,
  revenue_percent_bp: null,
  goals: [],
  mode: 'live',
  recurring_percent_bp: null,
  recurring_months: null,
};

test('percentOf rounds half down in integer arithmetic, exact for large amounts', () => {
  assert.equal(percentOf(1004, 1250), 125); // 125.5 → 125
  assert.equal(percentOf(1004, 2000), 201); // 200.8 → 201
  assert.equal(percentOf(2, 2500), 0); // 0.5 → 0
  assert.equal(percentOf(6, 2500), 1); // 1.5 → 1
  assert.equal(percentOf(7, 2500), 2); // 1.75 → 2
  assert.equal(percentOf(Number.MAX_SAFE_INTEGER, 10_000), Number.MAX_SAFE_INTEGER);
  assert.equal(percentOf(Number.MAX_SAFE_INTEGER, 3), 2_702_159_776_422); // 9007199254740991 × 3 / 10000 = 2702159776422.2973
});

describe('priceConversion', () => {
  const cases: Array<[string, Partial<CampaignTerms>, string, number, string, unknown]> = [
    ['CPA pays fixed amounts, ignoring the sale', {}, '', 99_999, 'EUR', { type: 'ok', payout: 500, revenue: 700 }],
    ['CPL pays fixed amounts', { payout_model: 'CPL' }, '', -1, '', { type: 'ok', payout: 500, revenue: 700 }],
    [
      'CPC pays per click, not per conversion',
      { payout_model: 'CPC' },
      '',
      -1,
      '',
      { type: 'ok', payout: 0, revenue: 0 },
    ],
    [
      'RevShare takes basis points of the sale',
      { payout_model: 'RevShare', payout_percent_bp: 1000, revenue_percent_bp: 1500 },
      '',
      12_345,
      'USD',
      { type: 'ok', payout: 1234, revenue: 1852 },
    ],
    [
      'RevShare without an amount is rejected',
      { payout_model: 'RevShare', payout_percent_bp: 1000 },
      '',
      -1,
      '',
      { type: 'reject', reason: 'amount_required' },
    ],
    [
      'RevShare in another currency is rejected',
      { payout_model: 'RevShare', payout_percent_bp: 1000 },
      '',
      100,
      'EUR',
      { type: 'reject', reason: 'currency_mismatch' },
    ],
    [
      'a sale amount past MAX_MINOR_UNITS is refused, not clamped',
      { payout_model: 'RevShare', payout_percent_bp: 10_000, revenue_percent_bp: 10_000 },
      '',
      1_000_000_000_001,
      'USD',
      { type: 'reject', reason: 'amount_out_of_range' },
    ],
    [
      '100 % of MAX_MINOR_UNITS is the most a share prices at',
      { payout_model: 'RevShare', payout_percent_bp: 10_000, revenue_percent_bp: 10_000 },
      '',
      1_000_000_000_000,
      'USD',
      { type: 'ok', payout: 1_000_000_000_000, revenue: 1_000_000_000_000 },
    ],
    [
      'fixed terms past MAX_MINOR_UNITS (a campaign stored before the cap) are refused',
      { revenue_amount: Number.MAX_SAFE_INTEGER },
      '',
      -1,
      '',
      { type: 'reject', reason: 'amount_out_of_range' },
    ],
    [
      'a goal override replaces the fixed amounts',
      { goals: [{ goal: 'purchase', payout_amount: 900 }] },
      'purchase',
      -1,
      '',
      { type: 'ok', payout: 900, revenue: 700 },
    ],
    [
      'a CPS-style goal on a CPA campaign takes a share',
      { goals: [{ goal: 'sale', payout_percent_bp: 500, revenue_percent_bp: 800 }] },
      'sale',
      10_000,
      'USD',
      { type: 'ok', payout: 500, revenue: 800 },
    ],
    [
      'other goals keep the campaign terms',
      { goals: [{ goal: 'sale', payout_percent_bp: 500 }] },
      'lead',
      10_000,
      'USD',
      { type: 'ok', payout: 500, revenue: 700 },
    ],
  ];
  for (const [name, over, goal, amount, currency, want] of cases) {
    test(name, () => assert.deepEqual(priceConversion({ ...base, ...over }, goal, amount, currency), want));
  }
});

test('cpcCharges counts valid clicks of CPC campaigns per campaign and affiliate', () => {
  const terms = new Map([
    [1, { payout_model: 'CPC' as const }],
    [2, { payout_model: 'CPA' as const }],
  ]);
  const row = (campaign_id: number, affiliate_id: number, is_invalid = 0) => ({
    campaign_id,
    affiliate_id,
    is_invalid,
  });
  assert.deepEqual(
    cpcCharges([row(1, 7), row(1, 7), row(1, 8), row(1, 7, 1), row(2, 7), row(3, 7), row(0, 0, 1)], terms),
    [
      { campaign_id: 1, affiliate_id: 7, count: 2 },
      { campaign_id: 1, affiliate_id: 8, count: 1 },
    ],
  );
  assert.deepEqual(cpcCharges([], terms), []);
});
