/** `/approved-hosts` over the real admin API: admin only, host names normalised and checked, no duplicates. */
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

describe('approved hosts', () => {
  test('an admin adds (normalised), lists and withdraws hosts; duplicates are 409', async () => {
    const c = await t.call('post', '/approved-hosts', {
      token: admin.token,
      body: { host: ' Go.Partner.EXAMPLE ', reason: 'partner landing pages' },
    });
    assert.equal(c.status, 201, c.text);
    assert.equal(c.body.data.host, 'go.partner.example');
    assert.equal(c.body.data.created_by, admin.id);
    const dup = await t.call('post', '/approved-hosts', {
      token: admin.token,
      body: { host: 'go.partner.example', reason: 'again' },
    });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'CONFLICT');
    const list = await t.call('get', '/approved-hosts', { token: admin.token });
    assert.deepEqual(
      list.body.data.map((h: { host: string }) => h.host),
      ['example.com', 'go.partner.example'], // example.com: the test fixture's
    );
    const del = await t.call('delete', `/approved-hosts/${c.body.data.id}`, { token: admin.token });
    assert.deepEqual(del.body, { success: true, data: { deleted: true } });
    assert.equal((await t.call('delete', `/approved-hosts/${c.body.data.id}`, { token: admin.token })).status, 404);
  });

  test('only host names: no scheme, port, path, user info, macros or single labels', async () => {
    for (const host of [
      'https://go.partner.example',
      'go.partner.example:8443',
      'go.partner.example/x',
      'u@go.partner.example',
      '{sub1}.partner.example',
      'localhost',
      'go.partner\r\n.example',
      'go partner.example',
    ]) {
      const r = await t.call('post', '/approved-hosts', { token: admin.token, body: { host, reason: 'x' } });
      assert.deepEqual(
        r.body,
        validationFailed({ host: ['must be a host name such as go.example.com (no scheme, port or path)'] }),
        host,
      );
    }
  });

  test('advertisers cannot see or change the list', async () => {
    assert.equal((await t.call('get', '/approved-hosts', { token: adv.token })).status, 403);
    const r = await t.call('post', '/approved-hosts', {
      token: adv.token,
      body: { host: 'mine.example.org', reason: 'please' },
    });
    assert.equal(r.status, 403);
  });
});
