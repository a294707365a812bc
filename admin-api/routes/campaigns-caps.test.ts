/**
 * Caps over the real admin API: a campaign's time_zone and click/conversion caps on create, PATCH and the views (bad
 * zones and caps → 400 VALIDATION_ERROR), and the per-affiliate caps the owner (or an admin) sets on a membership.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../infra/testing/index.ts';
import {
  approvedWebsite,
  startTestApi,
  type TestApi,
  type TestUser,
  users,
  validationFailed,
  watchInvalidations,
} from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let other: TestUser;
let aff: TestUser;
let websiteId: number;
let watch: Awaited<ReturnType<typeof watchInvalidations>>;

before(async () => {
  t = await startTestApi();
  ({ admin, adv, other, aff } = await users(t, {
    admin: 'admin',
    adv: 'advertiser',
    other: 'advertiser',
    aff: 'affiliate',
  }));
  websiteId = await approvedWebsite(t, adv, admin);
  watch = await watchInvalidations(t);
});
after(async () => {
  watch.close();
  await t.close();
});

const body = (extra: Record<string, unknown> = {}) => ({
  website_id: websiteId,
  name: 'Capped',
  destination_url: 'https://shop.example.com/l?cid={click_id}',
  payout_model: 'CPA',
  payout: 500,
  revenue: 800,
  currency: 'USD',
  ...extra,
});

const CAPS = ['time_zone', 'click_cap_daily', 'click_cap_total', 'conversion_cap_daily', 'conversion_cap_total'];
const capsOf = (v: Record<string, unknown>) => Object.fromEntries(CAPS.map((k) => [k, v[k]]));
const TZ_ERROR = { time_zone: ['must be an IANA time zone such as Europe/Berlin'] };

describe('campaign caps', () => {
  let id: number;

  test('create and read back time_zone and the caps (defaults: UTC, no caps)', async () => {
    const plain = await t.call('post', '/campaigns', { token: adv.token, body: body() });
    assert.equal(plain.status, 201, plain.text);
    assert.deepEqual(capsOf(plain.body.data), {
      time_zone: 'UTC',
      click_cap_daily: null,
      click_cap_total: null,
      conversion_cap_daily: null,
      conversion_cap_total: null,
    });
    const caps = {
      time_zone: 'America/New_York',
      click_cap_daily: 1000,
      click_cap_total: 50_000,
      conversion_cap_daily: 20,
      conversion_cap_total: 500,
    };
    const c = await t.call('post', '/campaigns', { token: adv.token, body: body(caps) });
    assert.equal(c.status, 201, c.text);
    assert.deepEqual(capsOf(c.body.data), caps);
    id = c.body.data.id;
    const got = await t.call('get', `/campaigns/${id}`, { token: adv.token });
    assert.deepEqual(capsOf(got.body.data), caps);
  });

  test('an unknown or non-IANA time zone and a cap below 1 are 400 VALIDATION_ERROR, nothing stored', async () => {
    for (const tz of ['Mars/Olympus', '+05:00', 'UTC+5', '', 'Europe/Berlin; drop table campaigns']) {
      const r = await t.call('post', '/campaigns', { token: adv.token, body: body({ time_zone: tz }) });
      assert.equal(r.status, 400, `${tz}: ${r.text}`);
      assert.deepEqual(r.body, validationFailed(TZ_ERROR), tz);
    }
    const p = await t.call('patch', `/campaigns/${id}`, { token: adv.token, body: { time_zone: 'Mars/Olympus' } });
    assert.equal(p.status, 400, p.text);
    assert.deepEqual(p.body, validationFailed(TZ_ERROR));
    for (const v of [0, -1, 1.5, '10']) {
      const r = await t.call('patch', `/campaigns/${id}`, { token: adv.token, body: { click_cap_daily: v } });
      assert.equal(r.status, 400, `${v}: ${r.text}`);
      assert.equal(r.body.error.code, 'VALIDATION_ERROR');
      assert.ok(r.body.error.details.click_cap_daily, r.text);
    }
    const got = await t.call('get', `/campaigns/${id}`, { token: adv.token });
    assert.equal(got.body.data.time_zone, 'America/New_York');
    assert.equal(got.body.data.click_cap_daily, 1000);
  });

  test('PATCH changes and clears caps and tells the trackers', async () => {
    const before = watch.messages.length;
    const r = await t.call('patch', `/campaigns/${id}`, {
      token: adv.token,
      body: { time_zone: 'Asia/Tokyo', click_cap_daily: null, conversion_cap_total: 7 },
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(capsOf(r.body.data), {
      time_zone: 'Asia/Tokyo',
      click_cap_daily: null,
      click_cap_total: 50_000,
      conversion_cap_daily: 20,
      conversion_cap_total: 7,
    });
    await waitFor('the invalidation', () => watch.messages.slice(before).includes(JSON.stringify({ campaign_id: id })));
    const [row] = await t.env.sql<{ time_zone: string; conversion_cap_total: number }[]>`
      select time_zone, conversion_cap_total from campaigns where id = ${id}`;
    assert.deepEqual({ ...row }, { time_zone: 'Asia/Tokyo', conversion_cap_total: 7 });
  });
});

describe('per-affiliate caps', () => {
  let id: number;

  before(async () => {
    const c = await t.call('post', '/campaigns', { token: adv.token, body: body({ name: 'Shared' }) });
    id = c.body.data.id;
    const s = await t.call('post', `/campaigns/${id}/status`, { token: adv.token, body: { status: 'active' } });
    assert.equal(s.status, 200, s.text);
    const j = await t.call('post', `/campaigns/${id}/join`, { token: aff.token });
    assert.equal(j.status, 201, j.text);
  });

  const path = () => `/campaigns/${id}/affiliates/${aff.id}`;

  test('the owner sets them; the membership list shows them; the trackers are told', async () => {
    const before = watch.messages.length;
    const r = await t.call('patch', path(), {
      token: adv.token,
      body: { click_cap_daily: 100, conversion_cap_total: 5 },
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data, {
      campaign_id: id,
      affiliate_id: aff.id,
      status: 'approved',
      click_cap_daily: 100,
      click_cap_total: null,
      conversion_cap_daily: null,
      conversion_cap_total: 5,
    });
    await waitFor('the invalidation', () => watch.messages.slice(before).includes(JSON.stringify({ campaign_id: id })));
    const list = await t.call('get', `/campaigns/${id}/affiliates`, { token: adv.token });
    const m = (list.body.data as Array<Record<string, unknown>>).find((x) => x.affiliate_id === aff.id)!;
    assert.equal(m.click_cap_daily, 100);
    assert.equal(m.conversion_cap_total, 5);
    // An admin may change them too; null clears one.
    const a = await t.call('patch', path(), { token: admin.token, body: { click_cap_daily: null } });
    assert.equal(a.status, 200, a.text);
    assert.equal(a.body.data.click_cap_daily, null);
    assert.equal(a.body.data.conversion_cap_total, 5);
  });

  test('only the owner or an admin; unknown memberships and bad caps are refused', async () => {
    const foreign = await t.call('patch', path(), { token: other.token, body: { click_cap_daily: 1 } });
    assert.equal(foreign.status, 404, foreign.text);
    const self = await t.call('patch', path(), { token: aff.token, body: { click_cap_daily: 1 } });
    assert.equal(self.status, 403, self.text);
    const none = await t.call('patch', `/campaigns/${id}/affiliates/${other.id}`, {
      token: adv.token,
      body: { click_cap_daily: 1 },
    });
    assert.equal(none.status, 404, none.text);
    assert.equal(none.body.error.code, 'NOT_FOUND');
    const bad = await t.call('patch', path(), { token: adv.token, body: { click_cap_daily: 0 } });
    assert.equal(bad.status, 400, bad.text);
    const unknown = await t.call('patch', path(), { token: adv.token, body: { daily: 1 } });
    assert.equal(unknown.status, 400, unknown.text);
    const [row] = await t.env.sql<{ click_cap_daily: number | null }[]>`
      select click_cap_daily from campaign_affiliates where campaign_id = ${id} and affiliate_id = ${aff.id}`;
    assert.equal(row!.click_cap_daily, null);
  });
});
