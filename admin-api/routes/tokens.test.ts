/** `/postback-tokens` and `/api-keys` over the real admin API: secrets shown once, hashed at rest, scopes, revocation. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sha256 } from '../security.ts';
import { startTestApi, type TestApi, type TestUser } from '../test-helpers.ts';

let t: TestApi;
let adv: TestUser;

before(async () => {
  t = await startTestApi();
  adv = await t.user('advertiser');
});
after(async () => {
  await t.close();
});

describe('postback tokens', () => {
  test('created once (SHA-256 at rest), listed without secret, revoked', async () => {
    const c = await t.call('post', '/postback-tokens', { token: adv.token });
    assert.equal(c.status, 201);
    const token = c.body.data.token as string;
    assert.match(token, /^pbt_[A-Za-z0-9_-]{43}$/);
    const [row] = await t.env.sql<
      { token_hash: string }[]
    >`select token_hash from postback_tokens where id = ${c.body.data.id}`;
    assert.equal(row!.token_hash, sha256(token));
    const list = await t.call('get', '/postback-tokens', { token: adv.token });
    assert.equal(list.body.data.length, 1);
    assert.equal(list.body.data[0].token, undefined);
    assert.equal(list.body.data[0].prefix, token.slice(0, 8));
    const del = await t.call('delete', `/postback-tokens/${c.body.data.id}`, { token: adv.token });
    assert.ok(del.body.data.revoked_at);
    const other = await t.user('advertiser');
    const denied = await t.call('delete', `/postback-tokens/${c.body.data.id}`, { token: other.token });
    assert.deepEqual(denied.body, {
      success: false,
      error: { code: 'NOT_FOUND', message: 'postback token not found' },
    });
  });
});

describe('API keys', () => {
  test('create with scopes, use as Bearer, scope enforced, last-used recorded, revoke', async () => {
    const c = await t.call('post', '/api-keys', {
      token: adv.token,
      body: { name: 'job', scopes: ['campaigns:read'], mode: 'live' },
    });
    assert.equal(c.status, 201);
    const key = c.body.data.key as string;
    assert.match(key, /^live_[A-Za-z0-9_-]{43}$/);
    const r = await t.call('get', '/campaigns', { token: key });
    assert.equal(r.status, 200);
    const noScope = await t.call('get', '/reports?group_by=day&from=2026-01-01&to=2026-01-02', { token: key });
    assert.deepEqual(noScope.body, {
      success: false,
      error: { code: 'FORBIDDEN', message: 'API key lacks scope reports:read' },
    });
    const noKeys = await t.call('get', '/auth/me', { token: key });
    assert.deepEqual(noKeys.body, {
      success: false,
      error: { code: 'FORBIDDEN', message: 'API keys cannot call this route' },
    });
    const list = await t.call('get', '/api-keys', { token: adv.token });
    assert.ok(list.body.data[0].last_used_at);
    assert.equal(list.body.data[0].key, undefined);
    const bad = await t.call('post', '/api-keys', { token: adv.token, body: { name: 'x', scopes: ['root'] } });
    assert.equal(bad.body.error.code, 'VALIDATION_ERROR');
    await t.call('delete', `/api-keys/${c.body.data.id}`, { token: adv.token });
    const revoked = await t.call('get', '/campaigns', { token: key });
    assert.deepEqual(revoked.body, { success: false, error: { code: 'UNAUTHORIZED', message: 'invalid API key' } });
  });
});
