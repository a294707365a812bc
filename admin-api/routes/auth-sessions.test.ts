/** Session lifetime and revocation rules of `/auth/*` (issue #12 item 10) over the real admin API. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generate } from 'otplib';
import { refreshCookieOf, startTestApi, type TestApi, type TestUser } from '../test-helpers.ts';

let t: TestApi;
before(async () => {
  t = await startTestApi();
});
after(async () => {
  await t.close();
});

describe('absolute session lifetime (SESSION_MAX_AGE_S, default 30 days)', () => {
  test('a session older than the max age cannot be refreshed, even with a fresh refresh token', async () => {
    const u = await t.user('affiliate');
    // A session kept alive by refreshes: its refresh token is new, the login 31 days old.
    await t.env.sql`update sessions set created_at = now() - interval '31 days' where user_id = ${u.id}`;
    const r = await t.call('post', '/auth/refresh', { cookie: u.cookie });
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, {
      success: false,
      error: { code: 'UNAUTHORIZED', message: 'session expired; log in again' },
    });
    assert.match(r.headers.getSetCookie().join('\n'), /refresh_token=; .*Max-Age=0/);
    // the session is over: its access token is refused too
    assert.equal((await t.call('get', '/auth/me', { token: u.token })).status, 401);
  });

  test('a session younger than the max age still refreshes (control)', async () => {
    const u = await t.user('affiliate');
    await t.env.sql`update sessions set created_at = now() - interval '29 days' where user_id = ${u.id}`;
    const r = await t.call('post', '/auth/refresh', { cookie: u.cookie });
    assert.equal(r.status, 200);
    const again = await t.call('post', '/auth/refresh', { cookie: refreshCookieOf(r) });
    assert.equal(again.status, 200);
  });
});

/** Logs `u` in again (no 2FA yet): a second session with its own access token and refresh cookie. */
async function secondSession(u: TestUser): Promise<{ token: string; cookie: string }> {
  const l = await t.call('post', '/auth/login', { body: { email: u.email, password: u.password } });
  assert.equal(l.status, 200);
  return { token: l.body.data.access_token as string, cookie: refreshCookieOf(l) };
}

describe('turning 2FA on or off revokes the other sessions of the user', () => {
  test('verify (on) and disable (off) each end every other session; the current one and other users stay', async () => {
    const u = await t.user('advertiser');
    const bystander = await t.user('advertiser');
    const other = await secondSession(u);
    const setup = await t.call('post', '/auth/2fa/setup', { token: u.token });
    const secret = setup.body.data.secret as string;
    const on = await t.call('post', '/auth/2fa/verify', { token: u.token, body: { code: await generate({ secret }) } });
    assert.equal(on.status, 200);
    assert.equal((await t.call('get', '/auth/me', { token: other.token })).status, 401);
    assert.equal((await t.call('post', '/auth/refresh', { cookie: other.cookie })).status, 401);
    assert.equal((await t.call('get', '/auth/me', { token: u.token })).status, 200, 'current session stays');
    assert.equal((await t.call('get', '/auth/me', { token: bystander.token })).status, 200);
    const [why] = await t.env.sql<{ revoke_reason: string }[]>`
      select revoke_reason from sessions where user_id = ${u.id} and revoked_at is not null`;
    assert.equal(why?.revoke_reason, '2fa enabled');

    // a second login (through the second factor) is the "other" session when 2FA goes off
    const l = await t.call('post', '/auth/login', { body: { email: u.email, password: u.password } });
    const backup = setup.body.data.backup_codes[0] as string;
    const second = await t.call('post', '/auth/2fa/verify-login', {
      body: { challenge_token: l.body.data.challenge_token, backup_code: backup },
    });
    assert.equal(second.status, 200);
    const secondToken = second.body.data.access_token as string;
    const code = await generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 });
    const off = await t.call('post', '/auth/2fa/disable', { token: u.token, body: { password: u.password, code } });
    assert.equal(off.status, 200);
    assert.equal((await t.call('get', '/auth/me', { token: secondToken })).status, 401);
    assert.equal((await t.call('get', '/auth/me', { token: u.token })).status, 200, 'current session stays');
    assert.equal((await t.call('get', '/auth/me', { token: bystander.token })).status, 200);
  });

  test('a refused verify (wrong code) revokes nothing', async () => {
    const u = await t.user('affiliate');
    const other = await secondSession(u);
    await t.call('post', '/auth/2fa/setup', { token: u.token });
    const bad = await t.call('post', '/auth/2fa/verify', { token: u.token, body: { code: '000000' } });
    assert.equal(bad.status, 401);
    assert.equal((await t.call('get', '/auth/me', { token: other.token })).status, 200);
  });
});

describe('ADMIN_REQUIRE_2FA', () => {
  let strict: TestApi;
  before(async () => {
    strict = await startTestApi({ env: { ADMIN_REQUIRE_2FA: 'true' } });
  });
  after(async () => {
    await strict.close();
  });
  const refused = {
    success: false,
    error: { code: 'TWO_FACTOR_SETUP_REQUIRED', message: 'admins must turn on two-factor authentication first' },
  };

  test('an admin without 2FA logs in but may only set 2FA up, verify it and log out; then the API opens', async () => {
    const admin = await strict.user('admin');
    const users = await strict.call('get', '/websites', { token: admin.token });
    assert.equal(users.status, 403);
    assert.deepEqual(users.body, refused);
    assert.deepEqual((await strict.call('get', '/auth/me', { token: admin.token })).body, refused);
    const setup = await strict.call('post', '/auth/2fa/setup', { token: admin.token });
    assert.equal(setup.status, 200);
    const code = await generate({ secret: setup.body.data.secret as string });
    const on = await strict.call('post', '/auth/2fa/verify', { token: admin.token, body: { code } });
    assert.equal(on.status, 200);
    assert.equal((await strict.call('get', '/websites', { token: admin.token })).status, 200);
    assert.equal((await strict.call('post', '/auth/logout', { token: admin.token })).status, 200);
  });

  test('a refused admin call changes nothing; logout stays open; other roles are not gated', async () => {
    const admin = await strict.user('admin');
    const adv = await strict.user('advertiser');
    const w = await strict.call('post', '/websites', {
      token: adv.token,
      body: { url: 'https://shop.example.com', name: 'Shop' },
    });
    assert.equal(w.status, 201, 'an advertiser is not gated');
    const approve = await strict.call('post', `/websites/${w.body.data.id}/approve`, { token: admin.token });
    assert.equal(approve.status, 403);
    assert.deepEqual(approve.body, refused);
    const [row] = await strict.env.sql<{ status: string }[]>`select status from websites where id = ${w.body.data.id}`;
    assert.equal(row?.status, 'pending');
    assert.equal((await strict.call('post', '/auth/logout', { token: admin.token })).status, 200);
  });

  test('off by default: an admin without 2FA calls admin routes', async () => {
    const admin = await t.user('admin');
    assert.equal((await t.call('get', '/websites', { token: admin.token })).status, 200);
  });
});
