/**
 * The audit log over the real API and Postgres: one row per state-changing call (failed and anonymous ones too),
 * with who, action, object, IP, status and request id and never a secret; append-only in Postgres; a failed write
 * does not fail the call; `GET /audit-log` (admins) and `GET /me/audit-log` (one's own) with filters and cursors.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generate } from 'otplib';
import type { AuditRow } from '../audit.ts';
import { startTestApi, type TestApi, type TestUser } from '../test-helpers.ts';

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

type Row = AuditRow & { id: number };

/** The audit row of the call that answered `requestId`. */
async function rowOf(requestId: string | null): Promise<Row> {
  assert.ok(requestId, 'every answer carries X-Request-Id');
  const rows = await t.env.sql<Row[]>`
    select id, user_id, api_key_id, action, object_type, object_id, host(ip) as ip, status, request_id, detail
    from audit_log where request_id = ${requestId}`;
  assert.equal(rows.length, 1, `one row for ${requestId}`);
  return rows[0]!;
}

/** Every column of the table for that row, as text: what must not hold a secret. */
async function wholeRow(requestId: string): Promise<string> {
  const [r] = await t.env.sql<
    { t: string }[]
  >`select to_jsonb(a)::text as t from audit_log a where request_id = ${requestId}`;
  return r!.t;
}

describe('writing', () => {
  test('logins, failed and anonymous ones included; the password is never in the row', async () => {
    const ok = await t.call('post', '/auth/login', { body: { email: adv.email, password: adv.password } });
    assert.equal(ok.status, 200);
    const row = await rowOf(ok.headers.get('x-request-id'));
    assert.deepEqual(
      { ...row, id: 0 },
      {
        id: 0,
        user_id: adv.id,
        api_key_id: null,
        action: 'POST /api/v1/auth/login',
        object_type: null,
        object_id: null,
        ip: '127.0.0.1',
        status: 200,
        request_id: ok.headers.get('x-request-id'),
        detail: {},
      },
    );
    const text = await wholeRow(row.request_id);
    assert.ok(!text.includes(adv.password));
    assert.ok(!text.includes(ok.body.data.access_token));

    const bad = await t.call('post', '/auth/login', { body: { email: adv.email, password: 'wrong-password-123' } });
    assert.equal(bad.status, 401);
    const badRow = await rowOf(bad.headers.get('x-request-id'));
    assert.equal(badRow.user_id, null);
    assert.equal(badRow.status, 401);
    assert.deepEqual(badRow.detail, { error: 'UNAUTHORIZED' });
    assert.ok(!(await wholeRow(badRow.request_id)).includes('wrong-password-123'));
    assert.ok(!(await wholeRow(badRow.request_id)).includes(adv.email));
  });

  test("a created token's and API key's secret are absent; the created object's id is recorded", async () => {
    const c = await t.call('post', '/postback-tokens', { token: adv.token });
    assert.equal(c.status, 201);
    const row = await rowOf(c.headers.get('x-request-id'));
    assert.equal(row.action, 'POST /api/v1/postback-tokens');
    assert.deepEqual(
      [row.user_id, row.object_type, row.object_id, row.status],
      [adv.id, 'postback-tokens', String(c.body.data.id), 201],
    );
    assert.ok(!(await wholeRow(row.request_id)).includes(c.body.data.token));

    const k = await t.call('post', '/api-keys', {
      token: adv.token,
      body: { name: 'job', scopes: ['campaigns:read'] },
    });
    const keyRow = await wholeRow(k.headers.get('x-request-id')!);
    assert.ok(!keyRow.includes(k.body.data.key));

    // A call with the key: the row names the key; refused by scope, it is still the key's owner's.
    const del = await t.call('delete', `/postback-tokens/${c.body.data.id}`, { token: k.body.data.key });
    assert.equal(del.status, 403);
    const delRow = await rowOf(del.headers.get('x-request-id'));
    assert.deepEqual(
      [delRow.user_id, delRow.api_key_id, delRow.action, delRow.object_id, delRow.status],
      [adv.id, k.body.data.id, 'DELETE /api/v1/postback-tokens/:id', String(c.body.data.id), 403],
    );
    assert.ok(!(await wholeRow(delRow.request_id)).includes(k.body.data.key));

    const gone = await t.call('delete', '/postback-tokens/987654', { token: adv.token });
    const goneRow = await rowOf(gone.headers.get('x-request-id'));
    assert.deepEqual(
      [goneRow.status, goneRow.object_type, goneRow.object_id, goneRow.detail],
      [404, 'postback-tokens', '987654', { error: 'NOT_FOUND' }],
    );
  });

  test('2FA setup, verify, login by code and logout are rows of their user, without secret or codes', async () => {
    const u = await t.user('affiliate');
    const setup = await t.call('post', '/auth/2fa/setup', { token: u.token });
    const secret = setup.body.data.secret as string;
    const setupRow = await wholeRow(setup.headers.get('x-request-id')!);
    assert.ok(!setupRow.includes(secret));
    for (const c of setup.body.data.backup_codes as string[]) assert.ok(!setupRow.includes(c));
    const code = await generate({ secret });
    const on = await t.call('post', '/auth/2fa/verify', { token: u.token, body: { code } });
    assert.equal(on.status, 200);
    assert.ok(!(await wholeRow(on.headers.get('x-request-id')!)).includes(code));

    const login = await t.call('post', '/auth/login', { body: { email: u.email, password: u.password } });
    const challenge = login.body.data.challenge_token as string;
    assert.equal((await rowOf(login.headers.get('x-request-id'))).user_id, u.id);
    const wrong = await t.call('post', '/auth/2fa/verify-login', {
      body: { challenge_token: challenge, code: '000000' },
    });
    assert.equal(wrong.status, 401);
    const wrongRow = await rowOf(wrong.headers.get('x-request-id'));
    assert.deepEqual(
      [wrongRow.user_id, wrongRow.action, wrongRow.status],
      [u.id, 'POST /api/v1/auth/2fa/verify-login', 401],
    );
    assert.ok(!(await wholeRow(wrongRow.request_id)).includes(challenge));

    const out = await t.call('post', '/auth/logout', { token: u.token });
    const outRow = await rowOf(out.headers.get('x-request-id'));
    assert.deepEqual([outRow.user_id, outRow.action, outRow.status], [u.id, 'POST /api/v1/auth/logout', out.status]);
    assert.ok(!(await wholeRow(outRow.request_id)).includes(u.token));
  });

  test('reads, unknown routes and validation of a route with two params', async () => {
    const count = async () => (await t.env.sql<{ n: number }[]>`select count(*)::int as n from audit_log`)[0]!.n;
    const before = await count();
    await t.call('get', '/auth/me', { token: adv.token });
    await t.call('post', '/no-such-route', { token: adv.token });
    assert.equal(await count(), before, 'a GET and an unmatched path write nothing');
    const r = await t.call('post', '/campaigns/123/affiliates/456/approve', { token: adv.token });
    const row = await rowOf(r.headers.get('x-request-id'));
    assert.deepEqual(
      [row.action, row.object_type, row.object_id, row.detail.params],
      [
        'POST /api/v1/campaigns/:id/affiliates/:affiliate_id/approve',
        'affiliates',
        '456',
        { id: '123', affiliate_id: '456' },
      ],
    );
  });

  test('the table is append-only: UPDATE, DELETE and TRUNCATE are refused by Postgres', async () => {
    await assert.rejects(t.env.sql`update audit_log set status = 200`, /append-only \(UPDATE refused\)/);
    await assert.rejects(t.env.sql`delete from audit_log`, /append-only \(DELETE refused\)/);
    await assert.rejects(t.env.sql`truncate audit_log`, /append-only \(TRUNCATE refused\)/);
  });

  test('a failed audit write does not fail the call; it is counted', async () => {
    const failures = async () => {
      const m = await fetch(`${t.api.url}/metrics`).then((r) => r.text());
      return Number(/^api_audit_write_failures_total (\d+)/m.exec(m)?.[1]);
    };
    const before = await failures();
    // A real Postgres refusal of the insert (a constraint the row breaks), not a mock.
    await t.env
      .sql`alter table audit_log add constraint audit_test_refuse check (action <> 'POST /api/v1/postback-tokens') not valid`;
    try {
      const c = await t.call('post', '/postback-tokens', { token: adv.token });
      assert.equal(c.status, 201);
      assert.ok(c.body.data.token);
      const rows = await t.env.sql`select 1 from audit_log where request_id = ${c.headers.get('x-request-id')}`;
      assert.equal(rows.length, 0);
      assert.equal((await failures()) - before, 1);
    } finally {
      await t.env.sql`alter table audit_log drop constraint audit_test_refuse`;
    }
  });
});

describe('reading', () => {
  test('GET /audit-log: admins only, filters, newest first, cursor pages without gaps or repeats', async () => {
    const u = await t.user('advertiser');
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await t.call('post', '/postback-tokens', { token: u.token })).body.data.id);
    assert.equal((await t.call('get', '/audit-log', { token: adv.token })).status, 403);
    const mine = await t.call(
      'get',
      `/audit-log?user_id=${u.id}&action=${encodeURIComponent('POST /api/v1/postback-tokens')}&limit=2`,
      {
        token: admin.token,
      },
    );
    assert.equal(mine.status, 200, mine.text);
    const seen: string[] = mine.body.data.map((r: Row) => r.object_id);
    let cursor = mine.body.meta.next_cursor as string | null;
    while (cursor) {
      const next = await t.call(
        'get',
        `/audit-log?user_id=${u.id}&action=${encodeURIComponent('POST /api/v1/postback-tokens')}&limit=2&cursor=${cursor}`,
        {
          token: admin.token,
        },
      );
      seen.push(...next.body.data.map((r: Row) => r.object_id));
      cursor = next.body.meta.next_cursor;
    }
    assert.deepEqual(seen, ids.reverse().map(String));
    const one = await t.call('get', `/audit-log?object_type=postback-tokens&object_id=${ids[0]}`, {
      token: admin.token,
    });
    assert.deepEqual(
      one.body.data.map((r: Row) => [r.user_id, r.action, r.status, r.ip]),
      [[u.id, 'POST /api/v1/postback-tokens', 201, '127.0.0.1']],
    );
    const future = await t.call('get', `/audit-log?user_id=${u.id}&from=2999-01-01`, { token: admin.token });
    assert.deepEqual(future.body.data, []);
    const past = await t.call('get', `/audit-log?user_id=${u.id}&to=2000-01-01T00:00:00Z`, { token: admin.token });
    assert.deepEqual(past.body.data, []);
    const now = await t.call('get', `/audit-log?user_id=${u.id}&from=2000-01-01&to=2999-01-01`, { token: admin.token });
    assert.ok(now.body.data.length >= 5);
    const badCursor = await t.call('get', '/audit-log?cursor=x', { token: admin.token });
    assert.equal(badCursor.status, 400);
  });

  test("GET /me/audit-log: one's own rows only, whatever user_id says", async () => {
    const a = await t.user('affiliate');
    const b = await t.user('affiliate');
    await t.call('post', '/auth/logout', { token: b.token });
    const own = await t.call('get', `/me/audit-log?user_id=${b.id}`, { token: a.token });
    assert.equal(own.status, 200);
    assert.ok(own.body.data.length >= 1);
    for (const r of own.body.data as Row[]) assert.equal(r.user_id, a.id);
    assert.deepEqual(
      own.body.data.map((r: Row) => r.action),
      ['POST /api/v1/auth/login'],
    );
  });
});

test('OpenAPI lists the audit and allowlist routes, and IP_NOT_ALLOWED as a 403', async () => {
  const doc = (await t.call('get', '/openapi.json')).body;
  assert.deepEqual(doc.paths['/api/v1/audit-log'].get['x-roles'], ['admin']);
  assert.ok(doc.paths['/api/v1/me/audit-log'].get);
  const names = doc.paths['/api/v1/audit-log'].get.parameters.map((p: { name: string }) => p.name).sort();
  assert.deepEqual(names, ['action', 'cursor', 'from', 'limit', 'object_id', 'object_type', 'to', 'user_id']);
  assert.ok(doc.paths['/api/v1/postback-allowlist'].put.requestBody);
  assert.ok(doc.paths['/api/v1/postback-allowlist/refusals'].get);
  const codes = JSON.stringify(doc);
  assert.match(codes, /"IP_NOT_ALLOWED":403/);
});
