/** Session lifetime and revocation rules of `/auth/*` (issue #12 item 10) over the real admin API. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { refreshCookieOf, startTestApi, type TestApi } from '../test-helpers.ts';

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
