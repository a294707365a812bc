/** `/publishable-keys` over the real admin API: create with validated origins, list whole, change origins, revoke. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestApi, type TestApi, type TestUser, users } from '../test-helpers.ts';

let t: TestApi;
let u: Record<'adv' | 'adv2' | 'aff', TestUser>;

before(async () => {
  t = await startTestApi();
  u = await users(t, { adv: 'advertiser', adv2: 'advertiser', aff: 'affiliate' });
});
after(async () => {
  await t.close();
});

const create = (body: unknown, token = u.adv.token) => t.call('post', '/publishable-keys', { token, body });

describe('publishable keys', () => {
  test('created per mode with normalised origins, listed whole, stored as listed', async () => {
    const live = await create({
      name: 'shop',
      allowed_origins: ['https://Shop.Example.com/', 'https://shop.example.com:443', 'http://localhost:3000'],
    });
    assert.equal(live.status, 201, live.text);
    assert.match(live.body.data.key, /^pk_live_[A-Za-z0-9_-]{43}$/);
    assert.equal(live.body.data.mode, 'live');
    assert.deepEqual(live.body.data.allowed_origins, ['https://shop.example.com', 'http://localhost:3000']);
    const test = await create({ name: 'staging', mode: 'test', allowed_origins: ['http://127.0.0.1:8081'] });
    assert.match(test.body.data.key, /^pk_test_/);
    const list = await t.call('get', '/publishable-keys', { token: u.adv.token });
    assert.deepEqual(
      list.body.data.map((k: { key: string; mode: string }) => [k.key, k.mode]),
      [
        [test.body.data.key, 'test'],
        [live.body.data.key, 'live'],
      ],
    );
    assert.equal(list.body.meta.total, 2);
    const [row] = await t.env.sql<{ key: string; advertiser_id: number }[]>`
      select key, advertiser_id from publishable_keys where id = ${live.body.data.id}`;
    assert.deepEqual(row, { key: live.body.data.key, advertiser_id: u.adv.id });
    assert.equal((await t.call('get', '/publishable-keys', { token: u.adv2.token })).body.data.length, 0);
  });

  test('origins must be bare https origins (http only on loopback), 1 to 20 of them', async () => {
    for (const origin of [
      'http://shop.example.com',
      'https://shop.example.com/checkout',
      'https://shop.example.com?x',
      'https://shop.example.com#x',
      'https://user@shop.example.com',
      'https:shop.example.com',
      'shop.example.com',
      'ftp://shop.example.com',
      'https://shop.exam\nple.com',
      'https://shop.exa mple.com',
      'http://localhost.evil.example',
      '*',
    ]) {
      const r = await create({ name: 'x', allowed_origins: [origin] });
      assert.equal(r.status, 400, `${JSON.stringify(origin)}: ${r.text}`);
      assert.equal(r.body.error.code, 'VALIDATION_ERROR');
      assert.ok(r.body.error.details['allowed_origins.0'], r.text);
    }
    assert.equal((await create({ name: 'x', allowed_origins: [] })).status, 400);
    const many = Array.from({ length: 21 }, (_, i) => `https://s${i}.example.com`);
    assert.equal((await create({ name: 'x', allowed_origins: many })).status, 400);
    assert.equal((await create({ name: 'x', allowed_origins: ['http://[::1]:8080'] })).status, 201);
  });

  test('origins and name change with PATCH; revoke; other advertisers and affiliates cannot', async () => {
    const k = (await create({ name: 'a', allowed_origins: ['https://a.example.com'] })).body.data;
    const p = await t.call('patch', `/publishable-keys/${k.id}`, {
      token: u.adv.token,
      body: { allowed_origins: ['https://b.example.com', 'https://b.example.com/'] },
    });
    assert.equal(p.status, 200, p.text);
    assert.deepEqual([p.body.data.name, p.body.data.allowed_origins], ['a', ['https://b.example.com']]);
    assert.equal((await t.call('patch', `/publishable-keys/${k.id}`, { token: u.adv.token, body: {} })).status, 400);
    const foreign = await t.call('patch', `/publishable-keys/${k.id}`, { token: u.adv2.token, body: { name: 'z' } });
    assert.deepEqual(foreign.body.error, { code: 'NOT_FOUND', message: 'publishable key not found' });
    assert.equal((await t.call('delete', `/publishable-keys/${k.id}`, { token: u.adv2.token })).status, 404);
    assert.equal((await create({ name: 'x', allowed_origins: ['https://a.example.com'] }, u.aff.token)).status, 403);
    const del = await t.call('delete', `/publishable-keys/${k.id}`, { token: u.adv.token });
    assert.ok(del.body.data.revoked_at, del.text);
    const [row] = await t.env.sql`select revoked_at from publishable_keys where id = ${k.id}`;
    assert.ok(row!.revoked_at);
  });
});
