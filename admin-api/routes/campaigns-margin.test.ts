/**
 * Issue #12 item 1 over the real admin API and ledger: an advertiser cannot set terms paying an affiliate more than
 * the advertiser pays (create, PATCH on the merged terms, every goal and model, reconcile rows); an admin may, with a
 * reason that is recorded; a refused request changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  approvedWebsite,
  bookConversion,
  createBudgetedCampaign,
  fund,
  startTestApi,
  type TestApi,
  type TestUser,
  users,
  validationFailed,
} from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let aff: TestUser;
let websiteId: number;

before(async () => {
  t = await startTestApi({ ledger: true });
  ({ admin, adv, aff } = await users(t, { admin: 'admin', adv: 'advertiser', aff: 'affiliate' }));
  await fund(t, adv, 1_000_000);
  websiteId = await approvedWebsite(t, adv, admin);
});
after(async () => {
  await t.close();
});

const body = (o: Record<string, unknown>) => ({
  website_id: websiteId,
  name: 'Margin',
  destination_url: 'https://shop.example.com/?c={click_id}',
  payout_model: 'CPA',
  currency: 'USD',
  ...o,
});

const MSG = 'payout must not exceed revenue';

/** The stored terms of campaign `id`. */
async function stored(id: number) {
  const [c] = await t.env.sql`
    select payout_amount, revenue_amount, payout_percent_bp, revenue_percent_bp, goals, margin_override
    from campaigns where id = ${id}`;
  return { ...c };
}

async function campaignCount(): Promise<number> {
  const [r] = await t.env.sql<{ n: number }[]>`select count(*)::int as n from campaigns`;
  return r!.n;
}

describe('campaign margin: payout ≤ revenue unless an admin sets the terms', () => {
  test('create: refused for every model and goal whose payout exceeds its revenue; nothing is stored', async () => {
    const before = await campaignCount();
    const cases: Array<[Record<string, unknown>, Record<string, unknown>]> = [
      [{ payout: 500, revenue: 0 }, { payout: ['must not exceed revenue (500 > 0 minor units)'] }],
      [{ payout: 500 }, { payout: ['must not exceed revenue (500 > 0 minor units)'] }],
      [
        { payout_model: 'CPL', payout: 300, revenue: 200 },
        { payout: ['must not exceed revenue (300 > 200 minor units)'] },
      ],
      [{ payout_model: 'CPC', payout: 5, revenue: 0 }, { payout: ['must not exceed revenue (5 > 0 minor units)'] }],
      [
        { payout_model: 'RevShare', payout: 30, revenue: 20 },
        { payout: ['must not exceed revenue (30% > 20% of the sale)'] },
      ],
      [
        {
          payout: 500,
          revenue: 800,
          goals: [
            { goal: 'ok', payout: 100, revenue: 100 },
            { goal: 'big', payout: 900 },
          ],
        },
        { 'goals.1.payout': ['must not exceed revenue (900 > 800 minor units)'] },
      ],
      [
        // A fixed goal on a RevShare campaign has no revenue of its own: 0.
        { payout_model: 'RevShare', payout: 10, revenue: 20, goals: [{ goal: 'lead', payout: 100 }] },
        { 'goals.0.payout': ['must not exceed revenue (100 > 0 minor units)'] },
      ],
    ];
    for (const [terms, details] of cases) {
      const r = await t.call('post', '/campaigns', { token: adv.token, body: body(terms) });
      assert.equal(r.status, 400, `${JSON.stringify(terms)}: ${r.text}`);
      assert.deepEqual(r.body, validationFailed(details, MSG), JSON.stringify(terms));
    }
    assert.equal(await campaignCount(), before);
    // Payout equal to revenue is allowed (margin 0).
    const ok = await t.call('post', '/campaigns', { token: adv.token, body: body({ payout: 500, revenue: 500 }) });
    assert.equal(ok.status, 201, ok.text);
  });

  test('PATCH: the merged terms are checked; a refused PATCH changes nothing; an admin may, with a reason', async () => {
    const id = await createBudgetedCampaign(t, adv, websiteId, null, {
      goals: [{ goal: 'purchase', payout: 800, revenue: 1200 }],
    });
    const was = await stored(id);
    for (const [patch, details] of [
      [{ revenue: 600 }, { payout: ['must not exceed revenue (700 > 600 minor units)'] }],
      [{ payout: 1001 }, { payout: ['must not exceed revenue (1001 > 1000 minor units)'] }],
      [
        { goals: [{ goal: 'purchase', payout: 1100 }] },
        { 'goals.0.payout': ['must not exceed revenue (1100 > 1000 minor units)'] },
      ],
      [
        { name: 'renamed', payout: 2000, revenue: 1500 },
        { payout: ['must not exceed revenue (2000 > 1500 minor units)'] },
      ],
    ] as const) {
      const r = await t.call('patch', `/campaigns/${id}`, { token: adv.token, body: patch });
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(r.body, validationFailed(details, MSG), JSON.stringify(patch));
    }
    const sneak = await t.call('patch', `/campaigns/${id}`, {
      token: adv.token,
      body: { payout: 2000, margin_override_reason: 'please' },
    });
    assert.equal(sneak.status, 400);
    assert.deepEqual(await stored(id), was, 'refused PATCHes changed nothing');
    const [name] = await t.env.sql`select name from campaigns where id = ${id}`;
    assert.equal(name!.name, 'Budgeted');

    // An admin without a reason is refused too; with one, the terms and the override are stored.
    const bare = await t.call('patch', `/campaigns/${id}`, { token: admin.token, body: { revenue: 0 } });
    assert.equal(bare.status, 400, bare.text);
    assert.deepEqual(await stored(id), was);
    const r = await t.call('patch', `/campaigns/${id}`, {
      token: admin.token,
      body: { revenue: 0, margin_override_reason: 'launch bonus' },
    });
    assert.equal(r.status, 200, r.text);
    const now = await stored(id);
    assert.equal(now.revenue_amount, 0);
    const ov = now.margin_override as { by: number; reason: string; at: string };
    assert.deepEqual({ by: ov.by, reason: ov.reason }, { by: admin.id, reason: 'launch bonus' });
    // Fair terms again clear the override.
    const fair = await t.call('patch', `/campaigns/${id}`, { token: adv.token, body: { revenue: 1500 } });
    assert.equal(fair.status, 200, fair.text);
    assert.equal((await stored(id)).margin_override, null);
  });

  test('POST /conversions/batch: a row raising payout above revenue fails alone; an admin override is recorded', async () => {
    const id = await createBudgetedCampaign(t, adv, websiteId, null);
    const conv = await bookConversion(t, { campaignId: id, advertiserId: adv.id, affiliateId: aff.id });
    const rows = [
      { event_id: conv.eventId, payout: 1_200 },
      { event_id: conv.eventId, revenue: 1_100 },
    ];
    const r = await t.call('post', '/conversions/batch', { token: adv.token, body: { rows } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data[0], {
      index: 0,
      ok: false,
      error: { code: 'VALIDATION_ERROR', message: MSG },
    });
    assert.equal(r.body.data[1].ok, true);
    const [after1] = await t.env.sql`select payout, revenue from conversions where id = ${conv.id}`;
    assert.deepEqual({ ...after1 }, { payout: 700, revenue: 1_100 });

    const sneak = await t.call('post', '/conversions/batch', {
      token: adv.token,
      body: { rows: [rows[0]], margin_override_reason: 'mine' },
    });
    assert.equal(sneak.status, 400, sneak.text);

    const byAdmin = await t.call('post', '/conversions/batch', {
      token: admin.token,
      body: { rows: [rows[0]], margin_override_reason: 'goodwill' },
    });
    assert.equal(byAdmin.status, 200, byAdmin.text);
    assert.equal(byAdmin.body.data[0].ok, true, byAdmin.text);
    const [p] = await t.env.sql<{ meta: { override?: unknown } }[]>`
      select meta from ledger_postings where conversion_id = ${conv.id} and type = 'conversion_adjust'
      order by created_at desc limit 1`;
    assert.deepEqual(p!.meta.override, { by: admin.id, reason: 'goodwill' });
  });
});
