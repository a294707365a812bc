/**
 * A tier-2 payout end to end (the README walk-through's step): a recruit registered with its parent's referral code
 * joins a campaign with a 10 % tier-2 share, a click and a postback go through the real tracker and the pipeline into
 * the ledger; the parent's tier-2 reward is a leg of the conversion's posting, `reward_created` reaches its SSE stream
 * once, its balances move pending → approved, and a chargeback through the API takes every leg back.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../infra/testing/index.ts';
import { checkInvariants } from '../../ledger/index.ts';
import { type Stack, startStack } from '../test-helpers.ts';

let stack: Stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.close();
});

test('a recruit’s conversion through the tracker pays its parent 10 % of the payout as a tier-2 leg', async () => {
  const { t, admin, adv, aff: parent, campaignId, tracker } = stack;
  const set = await t.call('put', `/campaigns/${campaignId}/tiers`, {
    token: admin.token,
    body: { tier2_share_bp: 1000 },
  });
  assert.equal(set.status, 200, set.text);
  const code = (await t.call('get', '/auth/me', { token: parent.token })).body.data.referral_code;
  const reg = await t.call('post', '/auth/register', {
    body: {
      name: 'Sam Sub',
      email: 'sam@example.com',
      password: 'affiliate-pass-2',
      role: 'affiliate',
      referral_code: code,
    },
  });
  assert.equal(reg.status, 201, reg.text);
  const sub = (
    await t.call('post', '/auth/login', { body: { email: 'sam@example.com', password: 'affiliate-pass-2' } })
  ).body.data.access_token as string;
  const join = await t.call('post', `/campaigns/${campaignId}/join`, { token: sub });
  assert.equal(join.status, 201, join.text);
  const token = (await t.call('post', '/postback-tokens', { token: adv.token })).body.data.token as string;

  // The parent's live events while the conversion goes through.
  const ac = new AbortController();
  const res = await fetch(`${t.url}/events/stream?token=${encodeURIComponent(parent.token)}`, { signal: ac.signal });
  const reader = res.body!.getReader();
  let text = '';
  const reading = (async () => {
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done) return;
        text += new TextDecoder().decode(r.value);
      }
    } catch {}
  })();
  await waitFor('SSE connected', async () => text.includes(': connected'));

  const click = await fetch(`${tracker.url}/c/${join.body.data.link.code}`, {
    redirect: 'manual',
    headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0', 'x-forwarded-for': '198.51.100.7' },
  });
  assert.equal(click.status, 302);
  const clickId = /[?&]c=([0-9a-f-]+)/.exec(click.headers.get('location') ?? '')![1]!;
  const pb = await fetch(`${tracker.url}/api/v1/track/conversion?click_id=${clickId}&event_id=order-t2`, {
    headers: { 'x-postback-token': token },
  });
  const convId = ((await pb.json()) as { data: { conversion_id: string } }).data.conversion_id;
  await waitFor('the tier-2 reward', async () => {
    const r = await t.call('get', `/rewards?conversion_id=${convId}`, { token: parent.token });
    return r.body.meta?.total === 1;
  });
  const r = await t.call('get', `/rewards?conversion_id=${convId}`, { token: parent.token });
  assert.deepEqual([r.body.data[0].tier_level, r.body.data[0].amount, r.body.data[0].currency], [2, 70, 'USD']);
  const legs = await t.env.sql<{ key: string; amount: number }[]>`
    select a.key, e.amount from ledger_entries e join ledger_postings p on p.id = e.posting_id
    join ledger_accounts a on a.id = e.account_id where p.conversion_id = ${convId} and a.owner_type <> 'advertiser'
    order by a.key`;
  assert.deepEqual(Object.fromEntries(legs.map((l) => [l.key, Number(l.amount)])), {
    [`affiliate:${parent.id}:pending:USD:0`]: 70,
    [`affiliate:${reg.body.data.id}:pending:USD:0`]: 700,
    [`platform:${adv.id}:revenue:USD:0`]: 230,
    [`platform:${adv.id}:spend_offset:USD:0`]: -1000,
  });
  await waitFor('reward_created on SSE', async () => text.includes('"reward_created"'));
  await new Promise((res) => setTimeout(res, 300));
  const events = text.split('\n').filter((l) => l.startsWith('data:') && l.includes('"reward_created"'));
  assert.equal(events.length, 1, text);
  const e = JSON.parse(events[0]!.slice(5));
  assert.deepEqual([e.data.tier_level, e.data.amount, e.data.unit], [2, 70, 'cash']);
  ac.abort();
  await reading;

  const before = (await t.call('get', '/rewards/balance', { token: parent.token })).body.data;
  assert.deepEqual(before.earnings_balance.cash, { USD: 70 });
  const approve = await t.call('post', `/conversions/${convId}/approve`, { token: adv.token });
  assert.equal(approve.body.data.changed, true, approve.text);
  const approved = (await t.call('get', '/rewards/balance', { token: parent.token })).body.data;
  assert.deepEqual(approved.current_balance.cash, { USD: 70 });
  const reverse = await t.call('post', `/conversions/${convId}/reverse`, {
    token: adv.token,
    body: { reason: 'chargeback' },
  });
  assert.equal(reverse.body.data.status, 'reversed', reverse.text);
  const after = (await t.call('get', '/rewards/balance', { token: parent.token })).body.data;
  assert.deepEqual(after.earnings_balance.cash, { USD: 0 });
  const st = await t.call('get', `/rewards?conversion_id=${convId}`, { token: parent.token });
  assert.equal(st.body.data[0].status, 'reversed');
  assert.deepEqual(await checkInvariants(t.env.sql), []);
});
