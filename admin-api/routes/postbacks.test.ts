/** `/postbacks` over the real admin API with the real deliveries engine. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Deliveries } from '../../tracker/index.ts';
import { startWithDeliveries, type TestApi, type TestUser, users } from '../test-helpers.ts';

let t: TestApi;
let deliveries: Deliveries;
let affiliate: TestUser;
let otherAffiliate: TestUser;
let advertiser: TestUser;

before(async () => {
  ({ t, deliveries } = await startWithDeliveries());
  ({ affiliate, otherAffiliate, advertiser } = await users(t, {
    affiliate: 'affiliate',
    otherAffiliate: 'affiliate',
    advertiser: 'advertiser',
  }));
});
after(async () => {
  await deliveries.stop();
  await t.close();
});

describe('/postbacks', () => {
  test('affiliates create and list theirs; advertisers are refused by role', async () => {
    const created = await t.call('post', '/postbacks', {
      token: affiliate.token,
      body: { url: 'https://tracker.example/pb?cid={click_id}&p={payout}', events: ['conversion.approved'] },
    });
    assert.equal(created.status, 201, created.text);
    const logs = await t.call('get', `/postbacks/${created.body.data.id}/logs`, { token: affiliate.token });
    assert.deepEqual(logs.body, { success: true, data: [], meta: { page: 1, per_page: 20, total: 0, total_pages: 0 } });
    const denied = await t.call('get', '/postbacks', { token: advertiser.token });
    assert.equal(denied.status, 403);
  });

  test('advertisers are FORBIDDEN; affiliates manage theirs and read logs', async () => {
    const denied = await t.call('get', '/postbacks', { token: advertiser.token });
    // The admin API's role check answers before the engine (the stand-in app's message was 'not allowed for your role').
    assert.deepEqual(
      { status: denied.status, body: denied.body },
      {
        status: 403,
        body: { success: false, error: { code: 'FORBIDDEN', message: 'your role cannot call this route' } },
      },
    );
    const created = await t.call('post', '/postbacks', {
      token: affiliate.token,
      body: { url: 'http://127.0.0.1:9/pb?c={click_id}', events: ['conversion.created'] },
    });
    assert.equal(created.status, 201);
    const id = created.body.data.id as number;
    const logs = await t.call('get', `/postbacks/${id}/logs`, { token: affiliate.token });
    assert.deepEqual(logs.body, {
      success: true,
      data: [],
      meta: { page: 1, per_page: 20, total: 0, total_pages: 0 },
    });
    const other = await t.call('get', `/postbacks/${id}/logs`, { token: otherAffiliate.token });
    assert.equal(other.status, 404);
    const patched = await t.call('patch', `/postbacks/${id}`, { token: affiliate.token, body: { method: 'POST' } });
    assert.equal(patched.body.data.method, 'POST');
    assert.equal((await t.call('delete', `/postbacks/${id}`, { token: affiliate.token })).status, 200);
  });
});
