/**
 * Analysts read the fixed reports, the click log and conversions too (issue 19 §1): network-wide, or only their
 * scope's; never a test-mode (sandbox) campaign's traffic; and the analytics SQL leaves the sandbox out as well.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { makeCampaign } from '../../infra/testing/index.ts';
import { startTestApi, type TestApi, type TestUser } from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let analyst: TestUser;
let scoped: { token: string };
let campA: number;
let campB: number;
let campTest: number;

const at = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
const T = Date.UTC(2026, 0, 10, 10, 0, 0);
const range = 'from=2026-01-10&to=2026-01-10';

before(async () => {
  t = await startTestApi({ clickhouse: true });
  admin = await t.user('admin');
  const advA = await t.user('advertiser');
  const advB = await t.user('advertiser');
  analyst = await t.user('analyst');
  const terms = { destination_url: 'https://shop.example.com/', currency: 'USD', status: 'active' };
  campA = await makeCampaign(t.env.sql, advA.id, { name: 'A', ...terms });
  campB = await makeCampaign(t.env.sql, advB.id, { name: 'B', ...terms });
  campTest = await makeCampaign(t.env.sql, advA.id, { name: 'A sandbox', ...terms });
  await t.env.sql`update campaigns set mode = 'test' where id = ${campTest}`;
  const click = (advertiser: number, campaign: number, i: number) => ({
    click_id: randomUUID(),
    ts: at(T + i * 60_000),
    received: at(T + i * 60_000),
    link_code: `l${campaign}`,
    campaign_id: campaign,
    affiliate_id: 900,
    advertiser_id: advertiser,
    currency: 'USD',
    ip: `192.0.2.${i}`,
    is_invalid: 0,
  });
  await t.env.ch!.insert({
    table: 'clicks',
    format: 'JSONEachRow',
    values: [click(advA.id, campA, 1), click(advA.id, campA, 2), click(advB.id, campB, 3), click(advA.id, campTest, 4)],
  });
  for (const [camp, adv] of [
    [campA, advA.id],
    [campB, advB.id],
    [campTest, advA.id],
  ] as const) {
    await t.env.sql`
      insert into conversions (id, advertiser_id, event_id, click_id, campaign_id, affiliate_id, status, currency,
                               payout, revenue, event_time)
      values (${randomUUID()}, ${adv}, ${`order-${camp}`}, ${randomUUID()}, ${camp}, null, 'pending', 'USD', 100, 200,
              now())`;
  }
  const email = `scoped-${randomUUID().slice(0, 8)}@example.com`;
  const created = await t.call('post', '/analysts', {
    token: admin.token,
    body: { name: 'Scoped', email, password: 'correct-horse-battery', advertiser_ids: [advA.id] },
  });
  assert.equal(created.status, 201, created.text);
  const login = await t.call('post', '/auth/login', { body: { email, password: 'correct-horse-battery' } });
  scoped = { token: login.body.data.access_token };
});
after(() => t.close());

const campaignsOf = (rows: Array<{ campaign_id: number }>) =>
  [...new Set(rows.map((r) => Number(r.campaign_id)))].sort();

describe('analysts on the fixed reads', () => {
  test('the click log: a network analyst sees every live campaign, a scoped one only its advertiser’s', async () => {
    const net = await t.call('get', `/reports/clicks?${range}&per_page=100`, { token: analyst.token });
    assert.equal(net.status, 200, net.text);
    assert.deepEqual(campaignsOf(net.body.data), [campA, campB].sort());
    const own = await t.call('get', `/reports/clicks?${range}&per_page=100`, { token: scoped.token });
    assert.deepEqual(campaignsOf(own.body.data), [campA]);
    const other = await t.call('get', `/reports/clicks?${range}&campaign_id=${campB}`, { token: scoped.token });
    assert.equal(other.status, 404, 'a campaign outside the scope does not exist for it');
  });

  test('grouped reports follow the same scope', async () => {
    const r = await t.call('get', `/reports?group_by=campaign&${range}`, { token: scoped.token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(
      r.body.data.map((x: { key: string; clicks: number }) => [x.key, x.clicks]),
      [[String(campA), 2]],
    );
    const net = await t.call('get', `/reports?group_by=campaign&${range}`, { token: analyst.token });
    assert.deepEqual(net.body.data.map((x: { key: string }) => x.key).sort(), [String(campA), String(campB)].sort());
  });

  test('conversions: network analyst every live one, scoped analyst its scope’s', async () => {
    const net = await t.call('get', '/conversions?per_page=100', { token: analyst.token });
    assert.equal(net.status, 200, net.text);
    assert.deepEqual(campaignsOf(net.body.data), [campA, campB].sort());
    const own = await t.call('get', '/conversions?per_page=100', { token: scoped.token });
    assert.deepEqual(campaignsOf(own.body.data), [campA]);
  });

  test('analytics SQL never reads a test-mode campaign’s rows for a live caller', async () => {
    for (const token of [analyst.token, admin.token, scoped.token]) {
      const r = await t.call('post', '/analytics/query', {
        token,
        body: { sql: 'SELECT DISTINCT campaign_id FROM clicks ORDER BY campaign_id', params: {}, format: 'json' },
      });
      assert.equal(r.status, 200, r.text);
      const seen = (r.body.data as string[][]).map((row) => Number(row[0]));
      assert.ok(!seen.includes(campTest), `sandbox rows leaked: ${seen}`);
      assert.ok(seen.includes(campA));
    }
  });
});
