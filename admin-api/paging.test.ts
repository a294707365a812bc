/** `queryPage` over the real Postgres, and the lists built on it past their last page. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { queryPage } from './paging.ts';
import { startTestApi, type TestApi, type TestUser } from './test-helpers.ts';

let t: TestApi;
let adv: TestUser;

before(async () => {
  t = await startTestApi();
  adv = await t.user('advertiser');
  for (let i = 0; i < 3; i++)
    assert.equal((await t.call('post', '/postback-tokens', { token: adv.token })).status, 201);
  for (let i = 0; i < 3; i++) {
    const r = await t.call('post', '/api-keys', {
      token: adv.token,
      body: { name: `k${i}`, scopes: ['reports:read'] },
    });
    assert.equal(r.status, 201, r.text);
  }
});
after(() => t.close());

describe('queryPage', () => {
  const parts = () => {
    const { sql } = t.env;
    return {
      columns: sql`id, name`,
      from: sql`api_keys`,
      where: sql`user_id = ${adv.id}`,
      orderBy: sql`id`,
    };
  };

  test('a page holds its rows (without the count column) and the whole list total', async () => {
    const first = await queryPage<{ id: number; name: string }>(t.env.sql, { page: 1, per_page: 2 }, parts());
    assert.deepEqual(
      first.rows.map((r) => r.name),
      ['k0', 'k1'],
    );
    assert.deepEqual(Object.keys(first.rows[0]!).sort(), ['id', 'name']);
    assert.equal(first.total, 3);
    const last = await queryPage<{ name: string }>(t.env.sql, { page: 2, per_page: 2 }, parts());
    assert.deepEqual(
      last.rows.map((r) => r.name),
      ['k2'],
    );
    assert.equal(last.total, 3);
  });

  test('a page past the end has no rows and still the real total', async () => {
    const past = await queryPage(t.env.sql, { page: 7, per_page: 2 }, parts());
    assert.deepEqual(past, { rows: [], total: 3 });
  });

  test('an empty list has total 0 on every page', async () => {
    const empty = { ...parts(), where: t.env.sql`user_id = ${-1}` };
    assert.deepEqual(await queryPage(t.env.sql, { page: 1, per_page: 2 }, empty), { rows: [], total: 0 });
    assert.deepEqual(await queryPage(t.env.sql, { page: 3, per_page: 2 }, empty), { rows: [], total: 0 });
  });
});

describe('lists past their last page', () => {
  for (const path of ['/postback-tokens', '/api-keys'])
    test(`${path}: an empty page past the end reports the real total`, async () => {
      const r = await t.call('get', `${path}?page=5&per_page=2`, { token: adv.token });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.data, []);
      assert.deepEqual(r.body.meta, { page: 5, per_page: 2, total: 3, total_pages: 2 });
    });
});
