import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generate, generateSecret } from 'otplib';
import { createLogger, decryptSecret, loadSecretKey } from '../infra/index.ts';
import { startApi } from './app.ts';
import { startTestApi, type TestApi, type TestUser } from './test-helpers.ts';

let t: TestApi;
let key: Buffer;
before(async () => {
  t = await startTestApi();
  // The development key the API generated under this environment's DATA_DIR.
  key = loadSecretKey(t.env.config, 'TOTP_SECRET_KEY', 'totp-secret.key');
});
after(async () => {
  await t.close();
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
