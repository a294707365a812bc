/** `/websites` over the real admin API: review by admins (reject with a reason, resubmit, approve), scoped lists. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestApi, type TestApi, type TestUser, validationFailed } from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;

before(async () => {
  t = await startTestApi();
  admin = await t.user('admin');
  adv = await t.user('advertiser');
});
after(async () => {
  await t.close();
});

let websiteId: number;

describe('websites', () => {
  test('POST /websites → pending; admin rejects with a reason; resubmit; approve; history recorded', async () => {
    const c = await t.call('post', '/websites', {
      token: adv.token,
      body: { url: 'https://shop.example.com', name: 'Shop' },
    });
    assert.equal(c.status, 201);
    assert.equal(c.body.data.status, 'pending');
    websiteId = c.body.data.id;

    const noReason = await t.call('post', `/websites/${websiteId}/reject`, {
      token: admin.token,
      body: { reason: ' ' },
    });
    assert.deepEqual(noReason.body, validationFailed({ reason: ['a reason is required'] }));
    const rej = await t.call('post', `/websites/${websiteId}/reject`, {
      token: admin.token,
      body: { reason: 'broken' },
    });
    assert.equal(rej.body.data.status, 'rejected');
    assert.equal(rej.body.data.reject_reason, 'broken');
    const again = await t.call('post', `/websites/${websiteId}/approve`, { token: admin.token });
    assert.equal(again.status, 422);
    assert.deepEqual(again.body, {
      success: false,
      error: { code: 'INVALID_STATE', message: 'website is rejected; cannot change it to approved' },
    });
    assert.equal(
      (await t.call('post', `/websites/${websiteId}/resubmit`, { token: adv.token })).body.data.status,
      'pending',
    );
    const ok = await t.call('post', `/websites/${websiteId}/approve`, { token: admin.token });
    assert.equal(ok.body.data.status, 'approved');
    const one = await t.call('get', `/websites/${websiteId}`, { token: adv.token });
    assert.deepEqual(
      one.body.data.history.map((h: { status: string; actor_id: number }) => [h.status, h.actor_id]),
      [
        ['pending', adv.id],
        ['rejected', admin.id],
        ['pending', adv.id],
        ['approved', admin.id],
      ],
    );
  });

  test('lists are scoped and paginated', async () => {
    const other = await t.user('advertiser');
    await t.call('post', '/websites', {
      token: other.token,
      body: { url: 'https://other.example.com', name: 'Other' },
    });
    const own = await t.call('get', '/websites?per_page=1', { token: adv.token });
    assert.deepEqual(own.body.meta, { page: 1, per_page: 1, total: 1, total_pages: 1 });
    assert.equal(own.body.data[0].id, websiteId);
    const all = await t.call('get', '/websites?per_page=1&page=2', { token: admin.token });
    assert.deepEqual(all.body.meta, { page: 2, per_page: 1, total: 2, total_pages: 2 });
    const bad = await t.call('get', '/websites?per_page=1000', { token: adv.token });
    assert.deepEqual(bad.body, validationFailed({ per_page: ['Too big: expected number to be <=100'] }));
  });

  test('bad input', async () => {
    const r = await t.call('post', '/websites', { token: adv.token, body: { url: 'javascript:alert(1)', name: '' } });
    assert.deepEqual(
      r.body,
      validationFailed({
        url: ['must be an absolute http(s) URL'],
        name: ['Too small: expected string to have >=1 characters'],
      }),
    );
  });
});
