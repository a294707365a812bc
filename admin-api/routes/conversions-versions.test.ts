/**
 * Reports follow every status change (issue 13, item 2), through the whole stack: clicks and postbacks through a
 * real tracker, the pipeline into chDB and the real ledger, then approve, reverse (chargeback), reject and a
 * reconciliation amount change through the admin API; after each, `/api/v1/reports` (hourly aggregates and raw
 * rows) must equal Postgres within seconds. Re-shipping every version changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../infra/testing/index.ts';
import { type Stack, startStack, type TestApi, type TestUser } from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let aff: TestUser;
let campaignId: number;
let tracker: Stack['tracker'];
let pipeline: Stack['pipeline'];
let stack: Stack | undefined;
/** The conversions' ids, in the order they were posted. */
const ids: string[] = [];
const today = new Date().toISOString().slice(0, 10);

before(async () => {
  stack = await startStack();
  ({ t, admin, adv, aff, campaignId, tracker, pipeline } = stack);
});
after(async () => {
  await stack?.close();
});

/** Accepted conversions of the campaign in Postgres (count, revenue, payout): the truth. */
async function truth(): Promise<[number, number, number]> {
  const [r] = await t.env.sql<{ n: number; revenue: number; payout: number }[]>`
    select count(*)::int8 as n, coalesce(sum(revenue), 0)::int8 as revenue, coalesce(sum(payout), 0)::int8 as payout
    from conversions where campaign_id = ${campaignId} and status in ('pending', 'approved')`;
  return [r!.n, r!.revenue, r!.payout];
}

/** `/reports` totals (conversions, revenue, payout) of the campaign, grouped by `group_by`. */
async function reported(group_by: 'campaign' | 'sub1'): Promise<[number, number, number]> {
  const r = await t.call(
    'get',
    `/reports?group_by=${group_by}&from=${today}&to=${today}&tz=UTC&campaign_id=${campaignId}`,
    { token: admin.token },
  );
  assert.equal(r.status, 200, r.text);
  const rows = r.body.data as Array<{ conversions: number; revenue: number; payout: number; clicks: number }>;
  return [
    rows.reduce((s, x) => s + x.conversions, 0),
    rows.reduce((s, x) => s + x.revenue, 0),
    rows.reduce((s, x) => s + x.payout, 0),
  ];
}

/** Waits until both report paths equal Postgres; @returns how long that took, ms. */
async function reportsAgree(what: string): Promise<number> {
  const start = Date.now();
  const want = await truth();
  await waitFor(
    `${what}: /reports equals Postgres ${JSON.stringify(want)}`,
    async () =>
      JSON.stringify(await reported('campaign')) === JSON.stringify(want) &&
      JSON.stringify(await reported('sub1')) === JSON.stringify(want),
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  return Date.now() - start;
}

test('four conversions through the tracker and the pipeline reach the reports', async () => {
  const join = await t.call('post', `/campaigns/${campaignId}/join`, { token: aff.token });
  assert.equal(join.status, 201, join.text);
  const code: string = join.body.data.link.code;
  const pbt = await t.call('post', '/postback-tokens', { token: adv.token });
  const token: string = pbt.body.data.token;
  for (let i = 0; i < 4; i++) {
    const click = await fetch(`${tracker.url}/c/${code}?sub1=s${i % 2}`, {
      redirect: 'manual',
      headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0', 'x-forwarded-for': `198.51.100.${i}` },
    });
    assert.equal(click.status, 302);
    const clickId = /[?&]c=([0-9a-f-]+)/.exec(click.headers.get('location') ?? '')![1]!;
    const conv = await fetch(
      `${tracker.url}/api/v1/track/conversion?click_id=${clickId}&event_id=order-${i}&status=pending`,
      { headers: { 'x-postback-token': token } },
    );
    const body = (await conv.json()) as { data: { conversion_id: string } };
    assert.equal(conv.status, 200, JSON.stringify(body));
    ids.push(body.data.conversion_id);
  }
  await waitFor('the four conversions in Postgres', async () => (await truth())[0] === 4);
  assert.deepEqual(await truth(), [4, 4000, 2800]);
  await reportsAgree('recorded');
});

test('approve, chargeback, reject and a reconciled amount: the reports follow each within seconds', async (ctx) => {
  const [a, b, c] = ids as [string, string, string];
  const approve = await t.call('post', `/conversions/${a}/approve`, { token: adv.token });
  assert.equal(approve.body.data.changed, true, approve.text);
  await reportsAgree('approved');
  const reverse = await t.call('post', `/conversions/${a}/reverse`, {
    token: adv.token,
    body: { reason: 'chargeback' },
  });
  assert.equal(reverse.body.data.status, 'reversed', reverse.text);
  const chargebackMs = await reportsAgree('chargeback');
  assert.ok(chargebackMs < 30_000, `chargeback took ${chargebackMs} ms to show`);
  ctx.diagnostic(`chargeback visible in /reports after ${chargebackMs} ms`);
  assert.deepEqual(await truth(), [3, 3000, 2100]);
  const reject = await t.call('post', `/conversions/${b}/reject`, { token: adv.token, body: { reason: 'duplicate' } });
  assert.equal(reject.body.data.status, 'rejected', reject.text);
  await reportsAgree('rejected');
  const batch = await t.call('post', '/conversions/batch', {
    token: adv.token,
    body: { rows: [{ event_id: 'order-2', revenue: 1500, payout: 900 }] },
  });
  assert.equal(batch.body.data[0].changed, true, batch.text);
  await reportsAgree('reconciled');
  assert.deepEqual(await truth(), [2, 2500, 1600]);
  // Every change is one version, each shipped once: conversion a went pending → approved → reversed.
  const versions = await t.env.sql<{ conversion_id: string; version: number; shipped: boolean }[]>`
    select conversion_id, version, shipped_at is not null as shipped from conversion_versions order by id`;
  assert.deepEqual(
    versions.map((v) => [ids.indexOf(v.conversion_id), v.version, v.shipped]),
    [
      [0, 1, true],
      [0, 2, true],
      [1, 1, true],
      [2, 1, true],
    ],
  );
  assert.ok(c);
});

test('shipping every version again (a shipper that died before marking them) counts nothing twice', async () => {
  const want = await truth();
  // As if each batch's insert had landed but its shipper died before the mark: claimed long ago, unshipped.
  await t.env.sql`update conversion_versions set shipped_at = null, claimed_at = now() - interval '1 hour'`;
  await waitFor(
    'the versions shipped again',
    async () => {
      const [r] = await t.env.sql<{ n: number }[]>`
        select count(*)::int as n from conversion_versions where shipped_at is null`;
      return r!.n === 0;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  assert.deepEqual(await reported('campaign'), want);
  assert.deepEqual(await reported('sub1'), want);
  assert.ok(pipeline.stats().versions_shipped >= 8, 'each of the 4 versions shipped twice');
});
