/**
 * The reward routes over the real ledger (Postgres, Redis): recruiting by referral code with `promoter_signed_up`
 * on SSE, tier shares per campaign, rewards per role, the three balance states, non-cash fulfilments marked done by
 * their advertiser only, recruits, and an admin's parent change refused when it makes a cycle.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  activateCampaign,
  bookConversion,
  createBudgetedCampaign,
  fund,
  startLedgerApi,
  type TestApi,
  type TestUser,
} from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let adv2: TestUser;
let parent: TestUser;
let websiteId: number;

before(async () => {
  ({ t, admin, adv, adv2, aff: parent, websiteId } = await startLedgerApi());
});
after(async () => {
  await t.close();
});

/** Registers an affiliate with `referralCode` and logs it in. */
async function recruitOf(referralCode: string): Promise<TestUser & { view: Record<string, unknown> }> {
  const email = `sub-${randomUUID().slice(0, 8)}@example.com`;
  const password = 'correct-horse-9';
  const r = await t.call('post', '/auth/register', {
    body: { name: 'Sub', email, password, role: 'affiliate', referral_code: referralCode },
  });
  assert.equal(r.status, 201, r.text);
  const login = await t.call('post', '/auth/login', { body: { email, password } });
  assert.equal(login.status, 200, login.text);
  return {
    id: r.body.data.id,
    role: 'affiliate',
    email,
    password,
    token: login.body.data.access_token,
    cookie: '',
    view: r.body.data,
  };
}

/** Everything an SSE stream of `token` sends within `ms`. */
async function sse(token: string, during: () => Promise<void>, ms = 1500): Promise<string> {
  const ac = new AbortController();
  const res = await fetch(`${t.url}/events/stream?token=${encodeURIComponent(token)}`, { signal: ac.signal });
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = '';
  const reading = (async () => {
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done) return;
        text += dec.decode(r.value, { stream: true });
      }
    } catch {}
  })();
  for (let i = 0; i < 100 && !text.includes(': connected'); i++) await new Promise((r) => setTimeout(r, 20));
  await during();
  await new Promise((r) => setTimeout(r, ms));
  ac.abort();
  await reading;
  return text;
}

describe('recruiting', () => {
  test('a referral code makes the new affiliate a recruit; its parent is told once on SSE', async () => {
    const me = await t.call('get', '/auth/me', { token: parent.token });
    const code = me.body.data.referral_code as string;
    assert.match(code, /^[0-9a-f]{12}$/);
    let sub!: Awaited<ReturnType<typeof recruitOf>>;
    const text = await sse(parent.token, async () => {
      sub = await recruitOf(code);
    });
    assert.equal(sub.view.parent_affiliate_id, parent.id);
    const events = text.split('\n').filter((l) => l.startsWith('data:') && l.includes('promoter_signed_up'));
    assert.equal(events.length, 1, text);
    const e = JSON.parse(events[0]!.slice(5));
    assert.equal(e.data.promoter.id, sub.id);
    assert.equal(e.data.promoter.parent_promoter_id, parent.id);
    const recruits = await t.call('get', '/affiliate/recruits', { token: parent.token });
    assert.deepEqual(
      recruits.body.data.map((r: { id: number; level: number }) => [r.id, r.level]),
      [[sub.id, 1]],
    );
  });

  test('an unknown code, or a code given by an advertiser, is 400', async () => {
    const body = { name: 'X', email: 'x@example.com', password: 'correct-horse-9', role: 'affiliate' };
    const r = await t.call('post', '/auth/register', { body: { ...body, referral_code: 'nope-nope' } });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body.error.code, 'VALIDATION_ERROR');
    const me = await t.call('get', '/auth/me', { token: parent.token });
    const a = await t.call('post', '/auth/register', {
      body: { ...body, role: 'advertiser', referral_code: me.body.data.referral_code },
    });
    assert.equal(a.status, 400, a.text);
  });

  test("an admin may change a parent, never into a cycle; others can't", async () => {
    const me = await t.call('get', '/auth/me', { token: parent.token });
    const sub = await recruitOf(me.body.data.referral_code);
    const cycle = await t.call('put', `/affiliates/${parent.id}/parent`, {
      token: admin.token,
      body: { parent_affiliate_id: sub.id },
    });
    assert.equal(cycle.status, 400, cycle.text);
    const self = await t.call('put', `/affiliates/${sub.id}/parent`, {
      token: admin.token,
      body: { parent_affiliate_id: sub.id },
    });
    assert.equal(self.status, 400, self.text);
    const byAff = await t.call('put', `/affiliates/${sub.id}/parent`, {
      token: parent.token,
      body: { parent_affiliate_id: null },
    });
    assert.equal(byAff.status, 403);
    const ok = await t.call('put', `/affiliates/${sub.id}/parent`, {
      token: admin.token,
      body: { parent_affiliate_id: null },
    });
    assert.equal(ok.status, 200, ok.text);
    const [u] = await t.env.sql`select parent_affiliate_id from users where id = ${sub.id}`;
    assert.equal(u!.parent_affiliate_id, null);
  });
});

describe('tier rewards and balances', () => {
  test('a recruit’s conversion pays its parent a tier-2 reward each one sees as its own', async () => {
    await fund(t, adv, 100_000);
    const camp = await createBudgetedCampaign(t, adv, websiteId, 10_000);
    await activateCampaign(t, adv, camp);
    const byAdv = await t.call('put', `/campaigns/${camp}/tiers`, {
      token: adv.token,
      body: { tier2_share_bp: 1000 },
    });
    assert.equal(byAdv.status, 403, 'the share comes out of the platform margin: admins only');
    const set = await t.call('put', `/campaigns/${camp}/tiers`, { token: admin.token, body: { tier2_share_bp: 1000 } });
    assert.equal(set.status, 200, set.text);
    const shown = await t.call('get', `/campaigns/${camp}`, { token: adv.token });
    assert.deepEqual([shown.body.data.tier2_share_bp, shown.body.data.tier3_share_bp], [1000, null]);
    const me = await t.call('get', '/auth/me', { token: parent.token });
    const sub = await recruitOf(me.body.data.referral_code);
    const conv = await bookConversion(t, { campaignId: camp, advertiserId: adv.id, affiliateId: sub.id });
    const mine = await t.call('get', `/rewards?conversion_id=${conv.id}`, { token: parent.token });
    assert.deepEqual(
      mine.body.data.map((r: Record<string, unknown>) => [r.tier_level, r.amount, r.kind, r.status, r.advertiser_id]),
      [[2, 70, 'cash', 'pending', undefined]],
    );
    const subs = await t.call('get', `/rewards?conversion_id=${conv.id}`, { token: sub.token });
    assert.deepEqual(
      subs.body.data.map((r: Record<string, unknown>) => [r.tier_level, r.amount]),
      [[1, 700]],
    );
    const advs = await t.call('get', `/rewards?conversion_id=${conv.id}`, { token: adv.token });
    assert.equal(advs.body.meta.total, 2);
    const other = await t.call('get', `/rewards?conversion_id=${conv.id}`, { token: adv2.token });
    assert.equal(other.body.meta.total, 0);

    const bal = await t.call('get', '/rewards/balance', { token: parent.token });
    assert.deepEqual(
      [bal.body.data.earnings_balance, bal.body.data.current_balance, bal.body.data.paid_balance],
      [{ cash: { USD: 70 } }, { cash: { USD: 0 } }, { cash: { USD: 0 } }],
    );
    await t.ledger!.approveConversion(conv.id);
    const approved = await t.call('get', '/rewards/balance', { token: parent.token });
    assert.deepEqual(approved.body.data.current_balance, { cash: { USD: 70 } });
    const r = await t.call('get', `/rewards?conversion_id=${conv.id}`, { token: parent.token });
    assert.equal(r.body.data[0].status, 'approved');
    const noId = await t.call('get', '/rewards/balance', { token: admin.token });
    assert.equal(noId.status, 400);
    const byAdmin = await t.call('get', `/rewards/balance?affiliate_id=${parent.id}`, { token: admin.token });
    assert.deepEqual(byAdmin.body.data.earnings_balance, { cash: { USD: 70 } });
  });

  test('a non-cash reward is fulfilled by its advertiser only, once', async () => {
    const camp = await createBudgetedCampaign(t, adv, websiteId, 10_000, {
      goals: [{ goal: 'signup', revenue: 500, reward: { unit: 'free_months', quantity: 3 } }],
    });
    await activateCampaign(t, adv, camp);
    const aff = await t.user('affiliate');
    const id = randomUUID();
    await t.env.sql`
      insert into conversions (id, advertiser_id, event_id, click_id, campaign_id, affiliate_id, goal, status, currency,
        payout, revenue, event_time)
      values (${id}, ${adv.id}, ${`e-${id}`}, ${randomUUID()}, ${camp}, ${aff.id}, 'signup', 'pending', 'USD', 0, 500, now())`;
    assert.equal((await t.ledger!.conversionRecorded({ id })).type, 'posted');
    const list = await t.call('get', '/fulfilments?status=fulfilment_pending', { token: adv.token });
    const f = list.body.data.find((x: { conversion_id: string }) => x.conversion_id === id);
    assert.deepEqual([f.unit, f.amount, f.status], ['free_months', 3, 'fulfilment_pending']);
    const seen = await t.call('get', '/fulfilments', { token: aff.token });
    assert.equal(seen.body.meta.total, 1);
    assert.equal((await t.call('post', `/fulfilments/${f.id}/fulfill`, { token: adv2.token })).status, 404);
    assert.equal((await t.call('post', `/fulfilments/${f.id}/fulfill`, { token: aff.token })).status, 403);
    const done = await t.call('post', `/fulfilments/${f.id}/fulfill`, { token: adv.token, body: { note: 'added' } });
    assert.equal(done.status, 200, done.text);
    assert.deepEqual([done.body.data.status, done.body.data.changed], ['fulfilled', true]);
    const again = await t.call('post', `/fulfilments/${f.id}/fulfill`, { token: adv.token });
    assert.equal(again.body.data.changed, false);
    const bal = await t.call('get', '/rewards/balance', { token: aff.token });
    assert.deepEqual(bal.body.data.paid_balance, { cash: {}, free_months: 3 });
    assert.deepEqual(bal.body.data.current_balance, { cash: {}, free_months: 0 });
    const cash = await t.env.sql`
      select 1 from ledger_entries e join ledger_accounts a on a.id = e.account_id
      where a.owner_type = 'affiliate' and a.owner_id = ${aff.id}`;
    assert.equal(cash.length, 0, 'no cash for the affiliate');
    const camps = await t.call('get', `/campaigns/${camp}`, { token: adv.token });
    assert.deepEqual(camps.body.data.goals[0].reward, { unit: 'free_months', quantity: 3 });
  });

  test('every reward route is in the OpenAPI document', async () => {
    const doc = await t.call('get', '/openapi.json');
    for (const p of [
      '/rewards',
      '/rewards/balance',
      '/fulfilments',
      '/fulfilments/{id}/fulfill',
      '/affiliate/recruits',
      '/affiliates/{id}/parent',
      '/campaigns/{id}/tiers',
    ]) {
      assert.ok(doc.body.paths[`/api/v1${p}`], `${p} in openapi.json`);
    }
  });
});
