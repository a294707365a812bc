/** `/auth/*` over the real admin API: registration, login, sessions, lockout, two-factor and TOTP secrets at rest. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generate, generateSecret } from 'otplib';
import { createLogger, decryptSecret, loadSecretKey } from '../../infra/index.ts';
import { startApi } from '../index.ts';
import { passwordCheckCount } from '../security.ts';
import { refreshCookieOf, startTestApi, type TestApi, type TestUser, validationFailed } from '../test-helpers.ts';

let t: TestApi;
let key: Buffer;
/** Login attempts per client IP in this file's API; the tests below that fail logins each use their own IP. */
const IP_BUDGET = 40;
before(async () => {
  t = await startTestApi({
    env: { LOGIN_MAX_FAILURES: '5', LOGIN_LOCK_S: '600', LOGIN_IP_MAX_FAILURES: String(IP_BUDGET) },
  });
  // The development key the API generated under this environment's DATA_DIR.
  key = loadSecretKey(t.env.config, 'TOTP_SECRET_KEY', 'totp-secret.key');
});
after(async () => {
  await t.close();
});

const PASSWORD = 'correct-horse-battery';

describe('POST /api/v1/auth/register', () => {
  test('creates an advertiser; password is stored as argon2id', async () => {
    const r = await t.call('post', '/auth/register', {
      body: { name: 'Acme', email: 'Acme@Example.com', password: PASSWORD, role: 'advertiser' },
    });
    assert.equal(r.status, 201);
    assert.equal(r.body.success, true);
    assert.equal(r.body.data.role, 'advertiser');
    assert.equal(r.body.data.email, 'Acme@Example.com');
    assert.equal(r.body.data.password_hash, undefined);
    const [u] = await t.env.sql<
      { password_hash: string }[]
    >`select password_hash from users where id = ${r.body.data.id}`;
    assert.match(u!.password_hash, /^\$argon2id\$/);
  });

  test('an email that already has an account gets the same answer as a new one, and changes nothing', async () => {
    // Register used to answer 409 "email already registered": an oracle of which emails exist.
    const fresh = await t.call('post', '/auth/register', {
      body: { name: 'Fresh', email: 'fresh-reg@example.com', password: PASSWORD, role: 'affiliate' },
    });
    const taken = await t.call('post', '/auth/register', {
      body: { name: 'Acme 2', email: 'acme@example.COM', password: 'another-password-1', role: 'affiliate' },
    });
    assert.equal(taken.status, fresh.status);
    assert.equal(taken.status, 201);
    assert.deepEqual(Object.keys(taken.body.data).sort(), Object.keys(fresh.body.data).sort());
    for (const k of Object.keys(fresh.body.data)) assert.equal(typeof taken.body.data[k], typeof fresh.body.data[k], k);
    assert.deepEqual(
      { ...taken.body.data, id: 0, created_at: 0, referral_code: 0 },
      {
        id: 0,
        role: 'affiliate',
        name: 'Acme 2',
        email: 'acme@example.COM',
        status: 'active',
        two_factor_enabled: false,
        created_at: 0,
        referral_code: 0,
        parent_affiliate_id: null,
      },
    );
    assert.ok(taken.body.data.id > fresh.body.data.id, 'ids keep rising as for a new account');
    // nothing changed: one account, the owner's password still logs in, the intruder's does not
    const rows = await t.env.sql<{ name: string }[]>`select name from users where lower(email) = 'acme@example.com'`;
    assert.deepEqual(
      rows.map((r) => r.name),
      ['Acme'],
    );
    const intruder = await t.call('post', '/auth/login', {
      body: { email: 'acme@example.com', password: 'another-password-1' },
      headers: { 'x-forwarded-for': '192.0.2.10' },
    });
    assert.equal(intruder.status, 401);
    const owner = await t.call('post', '/auth/login', { body: { email: 'acme@example.com', password: PASSWORD } });
    assert.equal(owner.status, 200);
  });

  const bad: Array<[string, unknown, Record<string, string[]>]> = [
    [
      'admin role refused',
      { name: 'x', email: 'x@example.com', password: PASSWORD, role: 'admin' },
      { role: ['Invalid option: expected one of "advertiser"|"affiliate"'] },
    ],
    [
      'short password, bad email',
      { name: 'x', email: 'nope', password: 'short', role: 'affiliate' },
      { email: ['must be a valid email address'], password: ['must be at least 10 characters'] },
    ],
    [
      'missing fields',
      {},
      {
        name: ['Invalid input: expected string, received undefined'],
        email: ['must be a valid email address'],
        password: ['Invalid input: expected string, received undefined'],
        role: ['Invalid option: expected one of "advertiser"|"affiliate"'],
      },
    ],
  ];
  for (const [name, body, details] of bad) {
    test(`400 VALIDATION_ERROR: ${name}`, async () => {
      const r = await t.call('post', '/auth/register', { body });
      assert.equal(r.status, 400);
      assert.deepEqual(r.body, validationFailed(details));
    });
  }
});

describe('login, me, refresh, logout, sessions', () => {
  test('login returns an access token and an HttpOnly SameSite=Strict refresh cookie', async () => {
    const l = await t.call('post', '/auth/login', { body: { email: 'acme@example.com', password: PASSWORD } });
    assert.equal(l.status, 200);
    assert.equal(l.body.data.expires_in, 1800);
    assert.equal(l.body.data.user.email, 'Acme@Example.com');
    const set = l.headers.getSetCookie().join('\n');
    assert.match(set, /refresh_token=[^;]+; Path=\/api\/v1\/auth; Max-Age=\d+; HttpOnly; SameSite=Strict/);
    assert.doesNotMatch(set, /Secure/, 'COOKIE_SECURE defaults to false outside production');
    const me = await t.call('get', '/auth/me', { token: l.body.data.access_token });
    assert.equal(me.status, 200);
    assert.equal(me.body.data.email, 'Acme@Example.com');
    assert.equal(me.body.data.two_factor_enabled, false);
  });

  test('wrong password → 401 with the same message as an unknown email', async () => {
    const a = await t.call('post', '/auth/login', { body: { email: 'acme@example.com', password: 'wrong-password' } });
    const b = await t.call('post', '/auth/login', {
      body: { email: 'nobody@example.com', password: 'wrong-password' },
    });
    assert.equal(a.status, 401);
    assert.deepEqual(a.body, b.body);
    assert.deepEqual(a.body, { success: false, error: { code: 'UNAUTHORIZED', message: 'invalid email or password' } });
  });

  test('missing / bad / forged tokens are refused', async () => {
    const none = await t.call('get', '/auth/me');
    assert.deepEqual(none.body, {
      success: false,
      error: { code: 'UNAUTHORIZED', message: 'authentication required' },
    });
    const bad = await t.call('get', '/auth/me', { token: 'abc.def.ghi' });
    assert.equal(bad.status, 401);
    assert.deepEqual(bad.body, {
      success: false,
      error: { code: 'INVALID_TOKEN', message: 'invalid or expired token' },
    });
    // alg=none token with a valid-looking payload
    const u = await t.user('affiliate');
    const [, payload] = u.token.split('.');
    const none2 = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${payload}.`;
    assert.equal((await t.call('get', '/auth/me', { token: none2 })).status, 401);
  });

  test('refresh rotates; a reused refresh token revokes the whole session family', async () => {
    const u = await t.user('affiliate');
    const r1 = await t.call('post', '/auth/refresh', { cookie: u.cookie });
    assert.equal(r1.status, 200);
    const c2 = refreshCookieOf(r1);
    assert.notEqual(c2, u.cookie);
    const access2 = r1.body.data.access_token as string;
    assert.equal((await t.call('get', '/auth/me', { token: access2 })).status, 200);
    // the old cookie comes back: reuse
    const reuse = await t.call('post', '/auth/refresh', { cookie: u.cookie });
    assert.equal(reuse.status, 401);
    assert.deepEqual(reuse.body, {
      success: false,
      error: { code: 'UNAUTHORIZED', message: 'refresh token reuse detected; session revoked' },
    });
    // every token of the family is dead now
    assert.equal((await t.call('get', '/auth/me', { token: access2 })).status, 401);
    assert.equal((await t.call('get', '/auth/me', { token: u.token })).status, 401);
    assert.equal((await t.call('post', '/auth/refresh', { cookie: c2 })).status, 401);
  });

  test('an expired refresh token is refused', async () => {
    const u = await t.user('advertiser');
    await t.env.sql`update refresh_tokens set created_at = now() - interval '31 days'
      where session_id in (select id from sessions where user_id = ${u.id})`;
    const r = await t.call('post', '/auth/refresh', { cookie: u.cookie });
    assert.deepEqual(r.body, {
      success: false,
      error: { code: 'UNAUTHORIZED', message: 'refresh token expired; log in again' },
    });
  });

  test('refresh without a cookie → 401', async () => {
    const r = await t.call('post', '/auth/refresh');
    assert.deepEqual(r.body, { success: false, error: { code: 'UNAUTHORIZED', message: 'refresh cookie missing' } });
  });

  test('logout revokes the session at once and clears the cookie', async () => {
    const u = await t.user('advertiser');
    const r = await t.call('post', '/auth/logout', { token: u.token });
    assert.equal(r.status, 200);
    assert.match(r.headers.getSetCookie().join('\n'), /refresh_token=; .*Max-Age=0/);
    assert.equal((await t.call('get', '/auth/me', { token: u.token })).status, 401);
    assert.equal((await t.call('post', '/auth/refresh', { cookie: u.cookie })).status, 401);
  });

  test('sessions: list with current flag, revoke another one, cannot revoke others’ sessions', async () => {
    const u = await t.user('affiliate');
    const second = await t.call('post', '/auth/login', {
      body: { email: u.email, password: u.password },
      headers: { 'user-agent': 'phone/1.0' },
    });
    const list = await t.call('get', '/auth/sessions', { token: u.token });
    assert.equal(list.status, 200);
    assert.equal(list.body.data.length, 2);
    assert.equal(list.body.data.filter((s: { current: boolean }) => s.current).length, 1);
    const other = list.body.data.find((s: { current: boolean }) => !s.current);
    assert.equal(other.device, 'phone/1.0');
    assert.equal(other.ip, '127.0.0.1');
    const stranger = await t.user('affiliate');
    const denied = await t.call('delete', `/auth/sessions/${other.id}`, { token: stranger.token });
    assert.deepEqual(denied.body, { success: false, error: { code: 'NOT_FOUND', message: 'session not found' } });
    const del = await t.call('delete', `/auth/sessions/${other.id}`, { token: u.token });
    assert.equal(del.status, 200);
    assert.equal((await t.call('get', '/auth/me', { token: second.body.data.access_token })).status, 401);
    assert.equal((await t.call('get', '/auth/me', { token: u.token })).status, 200);
  });
});

describe('login lockout', () => {
  test('5 consecutive failures lock the account (keyed by account, not IP) with Retry-After; success resets', async () => {
    const u = await t.user('advertiser');
    for (let i = 0; i < 4; i++) {
      const r = await t.call('post', '/auth/login', { body: { email: u.email, password: 'bad-password' } });
      assert.equal(r.status, 401);
    }
    const fifth = await t.call('post', '/auth/login', { body: { email: u.email, password: 'bad-password' } });
    assert.equal(fifth.status, 423);
    assert.equal(fifth.headers.get('retry-after'), '600');
    assert.deepEqual(fifth.body, {
      success: false,
      error: { code: 'ACCOUNT_LOCKED', message: 'too many failed attempts; account temporarily locked' },
    });
    // even the right password is refused while locked
    const good = await t.call('post', '/auth/login', { body: { email: u.email, password: u.password } });
    assert.equal(good.status, 423);
    assert.ok(Number(good.headers.get('retry-after')) > 0);

    const v = await t.user('advertiser');
    for (let i = 0; i < 4; i++)
      await t.call('post', '/auth/login', { body: { email: v.email, password: 'bad-password' } });
    assert.equal((await t.call('post', '/auth/login', { body: { email: v.email, password: v.password } })).status, 200);
    // counter was reset by the success: 4 more failures do not lock
    for (let i = 0; i < 4; i++)
      await t.call('post', '/auth/login', { body: { email: v.email, password: 'bad-password' } });
    assert.equal((await t.call('post', '/auth/login', { body: { email: v.email, password: v.password } })).status, 200);
  });
});

/** One login from client address `ip` (127.0.0.1 is a trusted proxy in tests, so X-Forwarded-For counts). */
function loginFrom(ip: string, email: string, password: string) {
  return t.call('post', '/auth/login', { body: { email, password }, headers: { 'x-forwarded-for': ip } });
}

const answer = (r: { status: number; body: unknown }) => ({ status: r.status, body: r.body });

describe('login lockout cannot be raced and reveals nothing', () => {
  test('12 parallel wrong passwords: exactly 5 reach argon2, 4 answer 401, the rest are locked', async () => {
    const u = await t.user('affiliate');
    const before = passwordCheckCount();
    const rs = await Promise.all(
      Array.from({ length: 12 }, (_, i) => loginFrom(`198.51.100.${i + 1}`, u.email, 'bad-password')),
    );
    assert.equal(passwordCheckCount() - before, 5, 'no more argon2 checks than LOGIN_MAX_FAILURES');
    const statuses = rs.map((r) => r.status).sort();
    assert.deepEqual(statuses, [...Array(4).fill(401), ...Array(8).fill(423)]);
    for (const r of rs.filter((x) => x.status === 423)) {
      assert.equal(r.body.error.code, 'ACCOUNT_LOCKED');
      assert.ok(Number(r.headers.get('retry-after')) > 0);
    }
    // locked: the right password is refused too, without an argon2 check
    const mid = passwordCheckCount();
    assert.equal((await loginFrom('198.51.100.99', u.email, u.password)).status, 423);
    assert.equal(passwordCheckCount(), mid);
  });

  test('an unknown email answers exactly like a known one: wrong password, then the lock', async () => {
    const u = await t.user('advertiser');
    const ghost = `ghost-${Date.now()}@example.com`;
    const run = async (email: string, ip: string) => {
      const out = [];
      for (let i = 0; i < 6; i++) {
        const r = await loginFrom(ip, email, 'bad-password');
        out.push({ ...answer(r), retry: i === 4 ? r.headers.get('retry-after') : r.headers.has('retry-after') });
      }
      return out;
    };
    const known = await run(u.email, '198.51.100.200');
    const unknown = await run(ghost, '198.51.100.201');
    assert.deepEqual(unknown, known);
    assert.deepEqual(
      known.map((k) => k.status),
      [401, 401, 401, 401, 423, 423],
    );
    assert.equal(known[4]!.retry, '600');
    assert.deepEqual(known[0]!.body, {
      success: false,
      error: { code: 'UNAUTHORIZED', message: 'invalid email or password' },
    });
    assert.deepEqual(known[5]!.body, {
      success: false,
      error: { code: 'ACCOUNT_LOCKED', message: 'too many failed attempts; account temporarily locked' },
    });
    // the right password of the locked real account answers like any guess on the locked ghost
    const real = await loginFrom('198.51.100.202', u.email, u.password);
    const fake = await loginFrom('198.51.100.203', ghost, u.password);
    assert.deepEqual(answer(real), answer(fake));
  });

  test('per-IP throttle: one address spraying many emails is refused with 429 after its budget', async () => {
    const ip = '203.0.113.9';
    for (let i = 0; i < IP_BUDGET; i++) {
      const r = await loginFrom(ip, `spray-${i}-${Date.now()}@example.com`, 'bad-password');
      assert.equal(r.status, 401, `attempt ${i + 1}`);
    }
    const u = await t.user('affiliate');
    const before = passwordCheckCount();
    const over = await loginFrom(ip, u.email, u.password);
    assert.equal(over.status, 429);
    assert.equal(over.body.error.code, 'RATE_LIMITED');
    assert.ok(Number(over.headers.get('retry-after')) > 0);
    assert.equal(passwordCheckCount(), before, 'refused before argon2');
    // the account is not punished for the address: from elsewhere it logs in
    assert.equal((await loginFrom('203.0.113.10', u.email, u.password)).status, 200);
  });

  test('successful logins give their IP point back, but bank no credit beyond the budget', async () => {
    const u = await t.user('advertiser');
    const ip = '203.0.113.20';
    for (let i = 0; i < IP_BUDGET + 5; i++)
      assert.equal((await loginFrom(ip, u.email, u.password)).status, 200, `login ${i + 1}`);
    for (let i = 0; i < IP_BUDGET; i++)
      assert.equal((await loginFrom(ip, `bank-${i}-${Date.now()}@example.com`, 'bad-password')).status, 401);
    assert.equal((await loginFrom(ip, u.email, u.password)).status, 429);
  });
});

describe('two-factor authentication', () => {
  test('setup → verify → login needs the code; a TOTP code and a backup code work once only', async () => {
    const u = await t.user('affiliate');
    const setup = await t.call('post', '/auth/2fa/setup', { token: u.token });
    assert.equal(setup.status, 200);
    const { secret, otpauth_url, qr_code, backup_codes } = setup.body.data;
    assert.match(otpauth_url, /^otpauth:\/\/totp\//);
    assert.match(qr_code, /^data:image\/png;base64,/);
    assert.equal(backup_codes.length, 10);
    assert.equal(new Set(backup_codes).size, 10);
    const stored = await t.env.sql<
      { code_hash: string }[]
    >`select code_hash from two_factor_backup_codes where user_id = ${u.id}`;
    assert.equal(stored.length, 10);
    assert.ok(stored.every((s) => !backup_codes.includes(s.code_hash)));

    const bad = await t.call('post', '/auth/2fa/verify', { token: u.token, body: { code: '12345' } });
    assert.deepEqual(bad.body, validationFailed({ code: ['must be 6 digits'] }));
    const code = await generate({ secret });
    assert.equal((await t.call('post', '/auth/2fa/verify', { token: u.token, body: { code } })).status, 200);

    const login = await t.call('post', '/auth/login', { body: { email: u.email, password: u.password } });
    assert.equal(login.status, 200);
    assert.equal(login.body.data.two_factor_required, true);
    assert.equal(login.body.data.access_token, undefined);
    assert.equal(login.headers.getSetCookie().length, 0, 'no session before the second factor');
    const challenge = login.body.data.challenge_token as string;

    // the code used to enable 2FA is spent: replay refused
    const replay = await t.call('post', '/auth/2fa/verify-login', { body: { challenge_token: challenge, code } });
    assert.equal(replay.status, 401);
    assert.deepEqual(replay.body, {
      success: false,
      error: { code: 'UNAUTHORIZED', message: 'invalid two-factor code' },
    });

    const backup = backup_codes[0];
    const ok = await t.call('post', '/auth/2fa/verify-login', {
      body: { challenge_token: challenge, backup_code: backup },
    });
    assert.equal(ok.status, 200);
    assert.ok(ok.body.data.access_token);
    const again = await t.call('post', '/auth/2fa/verify-login', {
      body: { challenge_token: challenge, backup_code: backup },
    });
    assert.equal(again.status, 401);

    const both = await t.call('post', '/auth/2fa/verify-login', { body: { challenge_token: challenge } });
    assert.deepEqual(both.body.error.details, { code: ['give exactly one of code or backup_code'] });
    const forged = await t.call('post', '/auth/2fa/verify-login', {
      body: { challenge_token: u.token, code: '123456' },
    });
    assert.deepEqual(forged.body, {
      success: false,
      error: { code: 'INVALID_TOKEN', message: 'invalid or expired token' },
    });

    // disabling needs the password and a fresh code
    const tok = ok.body.data.access_token as string;
    const wrongPw = await t.call('post', '/auth/2fa/disable', {
      token: tok,
      body: { password: 'nope-nope-nope', code },
    });
    assert.deepEqual(wrongPw.body, { success: false, error: { code: 'UNAUTHORIZED', message: 'invalid password' } });
    // a code of the next time step is within the ±1 step window and not yet used
    const next = await generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 });
    const dis = await t.call('post', '/auth/2fa/disable', { token: tok, body: { password: u.password, code: next } });
    assert.equal(dis.status, 200);
    const plain = await t.call('post', '/auth/login', { body: { email: u.email, password: u.password } });
    assert.ok(plain.body.data.access_token);
  });
});

async function storedRow(userId: number) {
  const [r] = await t.env.sql<{ secret: string | null; secret_enc: string | null; enabled: boolean }[]>`
    select secret, secret_enc, enabled from user_two_factor where user_id = ${userId}`;
  assert.ok(r, 'a user_two_factor row');
  return r;
}

/** Sets 2FA up and turns it on; returns the plain secret answered by setup. */
async function enable(u: TestUser): Promise<string> {
  const setup = await t.call('post', '/auth/2fa/setup', { token: u.token });
  assert.equal(setup.status, 200);
  const secret = setup.body.data.secret as string;
  const on = await t.call('post', '/auth/2fa/verify', { token: u.token, body: { code: await generate({ secret }) } });
  assert.equal(on.status, 200);
  return secret;
}

async function challenge(u: TestUser): Promise<string> {
  const login = await t.call('post', '/auth/login', { body: { email: u.email, password: u.password } });
  assert.equal(login.body.data.two_factor_required, true);
  return login.body.data.challenge_token as string;
}

/** A code of the next time step: inside the ±1 window and not yet consumed by `enable`. */
const nextCode = (secret: string) => generate({ secret, epoch: Math.floor(Date.now() / 1000) + 30 });

describe('TOTP secrets at rest', () => {
  test('the row holds AES-GCM ciphertext of the secret, never the plain secret', async () => {
    const u = await t.user('affiliate');
    const setup = await t.call('post', '/auth/2fa/setup', { token: u.token });
    const secret = setup.body.data.secret as string;
    const row = await storedRow(u.id);
    assert.equal(row.secret, null);
    assert.ok(row.secret_enc);
    assert.match(row.secret_enc, /^v1\./);
    assert.ok(!row.secret_enc.includes(secret));
    assert.equal(decryptSecret(key, row.secret_enc), secret);

    // setup again (not yet enabled) replaces it with a new encrypted secret
    const again = await t.call('post', '/auth/2fa/setup', { token: u.token });
    const row2 = await storedRow(u.id);
    assert.equal(row2.secret, null);
    assert.equal(decryptSecret(key, row2.secret_enc!), again.body.data.secret);
    assert.notEqual(again.body.data.secret, secret);
  });

  test('a tampered ciphertext fails closed: verify-login and disable answer 401, never 500', async () => {
    const u = await t.user('advertiser');
    const secret = await enable(u);
    const row = await storedRow(u.id);
    const [v, iv, tag, ct] = row.secret_enc!.split('.');
    const bytes = Buffer.from(ct!, 'base64');
    bytes[0]! ^= 0x01;
    await t.env.sql`update user_two_factor set secret_enc = ${[v, iv, tag, bytes.toString('base64')].join('.')}
                    where user_id = ${u.id}`;

    const r = await t.call('post', '/auth/2fa/verify-login', {
      body: { challenge_token: await challenge(u), code: await nextCode(secret) },
    });
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { success: false, error: { code: 'UNAUTHORIZED', message: 'invalid two-factor code' } });
    const dis = await t.call('post', '/auth/2fa/disable', {
      token: u.token,
      body: { password: u.password, code: await nextCode(secret) },
    });
    assert.equal(dis.status, 401);
    assert.equal(dis.body.error.code, 'UNAUTHORIZED');

    // garbage that is not even our encoding: same answer
    await t.env.sql`update user_two_factor set secret_enc = 'not-a-ciphertext' where user_id = ${u.id}`;
    const g = await t.call('post', '/auth/2fa/verify-login', {
      body: { challenge_token: await challenge(u), code: await nextCode(secret) },
    });
    assert.equal(g.status, 401);
    // refusing does not switch 2FA off or drop the row
    assert.equal((await storedRow(u.id)).enabled, true);
  });

  test('an untampered row still logs in with a code (control for the test above)', async () => {
    const u = await t.user('advertiser');
    const secret = await enable(u);
    const r = await t.call('post', '/auth/2fa/verify-login', {
      body: { challenge_token: await challenge(u), code: await nextCode(secret) },
    });
    assert.equal(r.status, 200);
    assert.ok(r.body.data.access_token);
  });

  test('plain secrets left from before the migration are encrypted when the API starts', async () => {
    const u = await t.user('affiliate');
    const plain = generateSecret();
    // A row as the pre-00005 code wrote it: plain secret, 2FA on.
    await t.env.sql`insert into user_two_factor (user_id, secret, enabled, enabled_at)
                    values (${u.id}, ${plain}, true, now())`;
    assert.equal((await storedRow(u.id)).secret, plain);

    const second = await startApi(
      { config: t.env.config, logger: createLogger({ level: 'silent' }), sql: t.env.sql, redis: t.env.redis },
      { port: 0 },
    );
    await second.close();

    const row = await storedRow(u.id);
    assert.equal(row.secret, null);
    assert.equal(row.enabled, true);
    assert.equal(decryptSecret(key, row.secret_enc!), plain);
    const [{ n }] = (await t.env.sql`select count(*)::int as n from user_two_factor where secret is not null`) as [
      { n: number },
    ];
    assert.equal(n, 0, 'no plain secret remains');

    // and the migrated secret keeps working
    const r = await t.call('post', '/auth/2fa/verify-login', {
      body: { challenge_token: await challenge(u), code: await generate({ secret: plain }) },
    });
    assert.equal(r.status, 200);
  });

  test('a row never holds both a plain and an encrypted secret', async () => {
    const u = await t.user('affiliate');
    await assert.rejects(
      t.env.sql`insert into user_two_factor (user_id, secret, secret_enc) values (${u.id}, 'X', 'v1.a.b.c')`,
      /user_two_factor_one_secret/,
    );
  });
});
