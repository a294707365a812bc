/** `GET /users` over the real admin API: admins only, every account with role, status and 2FA, filters, paging. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestApi, type TestApi, type TestUser, users } from '../test-helpers.ts';

let t: TestApi;
let u: Record<'admin' | 'adv' | 'aff', TestUser>;

before(async () => {
  t = await startTestApi();
  u = await users(t, { admin: 'admin', adv: 'advertiser', aff: 'affiliate' });
  await t.env
    .sql`insert into user_two_factor (user_id, secret_enc, enabled) values (${u.adv.id}, 'not-a-real-secret', true)`;
});
after(async () => {
  await t.close();
});

test('an admin lists every account, newest first, with role, status and 2FA (no password hash)', async () => {
  const r = await t.call('get', '/users', { token: u.admin.token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(
    r.body.data.map((x: { id: number; role: string; two_factor_enabled: boolean; status: string }) => [
      x.id,
      x.role,
      x.two_factor_enabled,
      x.status,
    ]),
    [
      [u.aff.id, 'affiliate', false, 'active'],
      [u.adv.id, 'advertiser', true, 'active'],
      [u.admin.id, 'admin', false, 'active'],
    ],
  );
  assert.equal(r.body.data[0].email, u.aff.email);
  assert.equal(r.body.data[0].password_hash, undefined);
  assert.equal(r.body.meta.total, 3);
});

test('role and a name or email substring filter (LIKE wildcards literal); pages', async () => {
  const byRole = await t.call('get', '/users?role=advertiser', { token: u.admin.token });
  assert.deepEqual(
    byRole.body.data.map((x: { id: number }) => x.id),
    [u.adv.id],
  );
  const byEmail = await t.call('get', `/users?q=${encodeURIComponent(u.aff.email.slice(0, 12).toUpperCase())}`, {
    token: u.admin.token,
  });
  assert.deepEqual(
    byEmail.body.data.map((x: { id: number }) => x.id),
    [u.aff.id],
  );
  const wildcard = await t.call('get', '/users?q=%25', { token: u.admin.token });
  assert.equal(wildcard.body.meta.total, 0);
  const page = await t.call('get', '/users?per_page=1&page=2', { token: u.admin.token });
  assert.deepEqual([page.body.data[0].id, page.body.meta.total_pages], [u.adv.id, 3]);
  const bad = await t.call('get', '/users?role=owner', { token: u.admin.token });
  assert.equal(bad.status, 400);
});

test('other roles are refused', async () => {
  for (const who of [u.adv, u.aff]) {
    const r = await t.call('get', '/users', { token: who.token });
    assert.equal(r.status, 403, r.text);
  }
});
