import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createAnalytics } from '../../tracker/index.ts';
import { startTestApi, type TestApi, type TestUser } from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let advA: TestUser;
let advB: TestUser;
let analyst: TestUser;
/** An analyst the admin limited to advertiser A. */
let scoped: { id: number; token: string };

const at = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
const T = Date.UTC(2026, 0, 10, 10, 0, 0);

before(async () => {
  t = await startTestApi({ clickhouse: true });
  admin = await t.user('admin');
  advA = await t.user('advertiser');
  advB = await t.user('advertiser');
  analyst = await t.user('analyst');
  const click = (advertiser: number, campaign: number, i: number, extra: Record<string, unknown> = {}) => ({
    click_id: randomUUID(),
    ts: at(T + i * 60_000),
    received: at(T + i * 60_000),
    link_code: `l${campaign}`,
    campaign_id: campaign,
    affiliate_id: 900 + (i % 2),
    advertiser_id: advertiser,
    currency: 'USD',
    ip: `192.0.2.${i}`,
    sub2: `s${i % 2}`,
    fraud_score: i / 10,
    is_invalid: 0,
    ...extra,
  });
  const clicksA = [1, 2, 3].map((i) => click(advA.id, 101, i));
  const clicksB = [4, 5].map((i) => click(advB.id, 202, i, { sub2: 'secret-b' }));
  const ch = t.env.ch!;
  await ch.insert({ table: 'clicks', format: 'JSONEachRow', values: [...clicksA, ...clicksB] });
  const conv = (c: (typeof clicksA)[number], payout: number) => ({
    conversion_id: randomUUID(),
    event_id: randomUUID(),
    click_id: c.click_id,
    advertiser_id: c.advertiser_id,
    campaign_id: c.campaign_id,
    affiliate_id: c.affiliate_id,
    status: 'approved',
    amount: -1,
    currency: 'USD',
    payout,
    revenue: payout * 2,
    event_time: at(T + 3_600_000),
    click_time: c.ts,
    sub2: c.sub2,
  });
  await ch.insert({
    table: 'conversions',
    format: 'JSONEachRow',
    values: [conv(clicksA[0]!, 100), conv(clicksB[0]!, 7000)],
  });
  const email = `scoped-${randomUUID().slice(0, 8)}@example.com`;
  const created = await t.call('post', '/analysts', {
    token: admin.token,
    body: { name: 'Scoped', email, password: 'correct-horse-battery', advertiser_ids: [advA.id] },
  });
  assert.equal(created.status, 201, created.text);
  assert.equal(created.body.data.role, 'analyst');
  const login = await t.call('post', '/auth/login', { body: { email, password: 'correct-horse-battery' } });
  assert.equal(login.status, 200, login.text);
  scoped = { id: created.body.data.id, token: login.body.data.access_token };
});
after(async () => {
  await t.close();
});

async function query(token: string, sql: string, params: Record<string, unknown> = {}, format = 'json') {
  return t.call('post', '/analytics/query', { token, body: { sql, params, format } });
}

describe('POST /analytics/query', () => {
  test('an analyst runs an ad-hoc aggregate: JSON with column names and types', async () => {
    const r = await query(
      analyst.token,
      'SELECT advertiser_id, count() AS clicks, round(avg(fraud_score), 2) AS score FROM clicks GROUP BY advertiser_id ORDER BY advertiser_id',
    );
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.meta.columns, [
      { name: 'advertiser_id', type: 'UInt64' },
      { name: 'clicks', type: 'UInt64' },
      { name: 'score', type: 'Float64' },
    ]);
    // 64-bit integers come as strings (JSON numbers lose precision past 2^53).
    assert.deepEqual(r.body.data, [
      [String(advA.id), '3', 0.2],
      [String(advB.id), '2', 0.45],
    ]);
  });

  test('parameters bind as typed placeholders; CSV comes with a header row', async () => {
    const r = await query(
      analyst.token,
      'SELECT sub2, count() AS n FROM clicks WHERE advertiser_id = {adv:UInt64} GROUP BY sub2 ORDER BY sub2',
      { adv: advA.id },
      'csv',
    );
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type')!, /^text\/csv/);
    assert.equal(r.text, '"sub2","n"\r\n"s0",1\r\n"s1",2\r\n');
  });

  test('admins may query too; advertisers may not', async () => {
    assert.equal((await query(admin.token, 'SELECT count() FROM clicks')).body.data[0][0], '5');
    assert.equal((await query(advA.token, 'SELECT count() FROM clicks')).status, 403);
  });

  test('API keys need the analytics:query scope', async () => {
    const mk = async (scopes: string[], mode = 'live') =>
      (await t.call('post', '/api-keys', { token: analyst.token, body: { name: 'bi', scopes, mode } })).body.data.key;
    const good = await mk(['analytics:query']);
    assert.equal((await query(good, 'SELECT count() FROM clicks')).body.data[0][0], '5');
    const bad = await mk(['reports:read']);
    assert.equal((await query(bad, 'SELECT count() FROM clicks')).status, 403);
    // Test-mode keys see no live traffic.
    const testKey = await mk(['analytics:query'], 'test');
    assert.equal((await query(testKey, 'SELECT count() FROM clicks')).body.data[0][0], '0');
  });
});

describe('a scoped analyst sees only its advertisers, whatever the query', () => {
  const crafted: Array<[string, string]> = [
    ['plain', 'SELECT DISTINCT advertiser_id FROM clicks'],
    [
      'UNION ALL',
      'SELECT DISTINCT advertiser_id FROM (SELECT advertiser_id FROM clicks UNION ALL SELECT advertiser_id FROM conversions)',
    ],
    ['subquery', 'SELECT DISTINCT advertiser_id FROM (SELECT * FROM (SELECT advertiser_id FROM clicks))'],
    [
      'IN subquery',
      "SELECT DISTINCT advertiser_id FROM conversions WHERE click_id IN (SELECT toString(click_id) FROM clicks WHERE sub2 = 'secret-b') OR 1",
    ],
    [
      'JOIN on another table',
      'SELECT DISTINCT c.advertiser_id FROM conversions AS c LEFT JOIN clicks AS k ON c.click_id = toString(k.click_id)',
    ],
    [
      'JOIN, the joined side',
      'SELECT DISTINCT k.advertiser_id FROM conversions AS c RIGHT JOIN clicks AS k ON c.click_id = toString(k.click_id)',
    ],
    ['aggregates', 'SELECT DISTINCT advertiser_id FROM stats_hourly'],
    ['OR in WHERE', 'SELECT DISTINCT advertiser_id FROM clicks WHERE 1 = 1 OR advertiser_id != 0'],
  ];
  for (const [name, sql] of crafted) {
    test(name, async () => {
      const r = await query(scoped.token, sql);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(
        r.body.data.map((row: unknown[]) => row[0]),
        [String(advA.id)],
      );
    });
  }
  test("advertiser B's money and sub IDs stay invisible", async () => {
    const r = await query(
      scoped.token,
      "SELECT (SELECT sum(payout) FROM conversions), (SELECT count() FROM clicks WHERE sub2 = 'secret-b')",
    );
    assert.deepEqual(r.body.data, [['100', '0']]);
  });
  test('the admin re-scopes: campaign 202 only', async () => {
    const r = await t.call('put', `/analysts/${scoped.id}/scope`, {
      token: admin.token,
      body: { advertiser_ids: [], campaign_ids: [] },
    });
    assert.equal(r.status, 200, r.text);
    // Empty lists: network-wide again.
    assert.equal((await query(scoped.token, 'SELECT count() FROM clicks')).body.data[0][0], '5');
    await t.env.sql`insert into analyst_scopes (analyst_id, advertiser_id) values (${scoped.id}, ${advA.id})`;
    assert.equal((await query(scoped.token, 'SELECT count() FROM clicks')).body.data[0][0], '3');
  });
});

describe('forbidden functions and statements → 4xx with a stable code', () => {
  const refused: Array<[string, string]> = [
    ['url()', "SELECT * FROM url('http://127.0.0.1:9/', CSV, 'a String')"],
    ['file()', "SELECT * FROM file('/etc/passwd', 'LineAsString')"],
    ['file() as a scalar', "SELECT file('/etc/passwd')"],
    ['remote()', "SELECT * FROM remote('127.0.0.1:9000', system.one)"],
    ['s3()', "SELECT * FROM s3('http://127.0.0.1:9/b/k.csv', CSV)"],
    ['mysql()', "SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'u', 'p')"],
    ['postgresql()', "SELECT * FROM postgresql('127.0.0.1:5432', 'db', 't', 'u', 'p')"],
    ['numbers()', 'SELECT count() FROM numbers(1000000000)'],
    ['a table function in a subquery', "SELECT count() FROM clicks WHERE ip IN (SELECT * FROM url('http://x/', CSV))"],
    ['a table function in a JOIN', "SELECT 1 FROM clicks AS c JOIN url('http://x/', CSV, 'a String') AS u ON 1"],
    ['system tables', 'SELECT * FROM system.tables'],
    ['system tables, unqualified', 'SELECT name FROM tables'],
    ['another database', 'SELECT * FROM default.clicks'],
    ['IN <table>', 'SELECT 1 FROM clicks WHERE ip IN system.users'],
    ['dictionaries', "SELECT dictGet('d', 'x', 1)"],
    ['SETTINGS', 'SELECT count() FROM clicks SETTINGS max_rows_to_read = 0'],
    ['DROP', 'DROP TABLE clicks'],
    ['TRUNCATE', 'TRUNCATE TABLE clicks'],
    ['INSERT', "INSERT INTO clicks (link_code) VALUES ('x')"],
    ['ALTER … DELETE', 'ALTER TABLE clicks DELETE WHERE 1'],
    ['CREATE', 'CREATE TABLE x (a Int8) ENGINE = Memory'],
    ['SET', 'SET readonly = 0'],
    ['SYSTEM', 'SYSTEM SHUTDOWN'],
    ['KILL', 'KILL QUERY WHERE 1'],
    ['OPTIMIZE', 'OPTIMIZE TABLE clicks FINAL'],
    ['SHOW', 'SHOW TABLES'],
    ['a second statement', 'SELECT 1; DROP TABLE clicks'],
  ];
  for (const [name, sql] of refused) {
    test(name, async () => {
      const r = await query(analyst.token, sql);
      assert.equal(r.status, 422, `${sql}: ${r.text}`);
      assert.equal(r.body.success, false);
      assert.equal(r.body.error.code, 'QUERY_NOT_ALLOWED', r.text);
    });
  }
  test('FORMAT / INTO OUTFILE and broken SQL → 400 QUERY_INVALID', async () => {
    for (const sql of [
      'SELECT 1 FORMAT Native',
      "SELECT 1 INTO OUTFILE '/tmp/x'",
      'SELEC 1',
      'SELECT nope FROM clicks',
      'SELECT {p:UInt8}',
    ]) {
      const r = await query(analyst.token, sql);
      assert.equal(r.status, 400, `${sql}: ${r.text}`);
      assert.equal(r.body.error.code, 'QUERY_INVALID', r.text);
    }
  });
  test('nothing was changed', async () => {
    assert.equal((await query(admin.token, 'SELECT count() FROM clicks')).body.data[0][0], '5');
  });
  test('every query is in the audit log, refused ones included', async () => {
    const rows = await t.env.sql<{ detail: { sql: string; outcome: string; code?: string } }[]>`
      select detail from audit_log where user_id = ${analyst.id} and action = 'analytics.query' order by id`;
    assert.ok(rows.some((r) => r.detail.sql === 'DROP TABLE clicks' && r.detail.code === 'QUERY_NOT_ALLOWED'));
    assert.ok(rows.some((r) => r.detail.outcome === 'ok'));
  });
});

describe('limits', () => {
  test('a heavy query is stopped by its limits, and later queries run unlimited', async () => {
    const ch = t.env.ch!;
    const tiny = createAnalytics(ch, { maxExecutionS: 30, maxResultRows: 2, maxMemoryBytes: 2e9, maxRowsToRead: 4 });
    await assert.rejects(
      tiny.run({ sql: 'SELECT * FROM clicks', params: {}, format: 'json' }),
      (
        e: Error & {
          code: string;
          details: unknown;
        },
      ) => {
        assert.equal(e.code, 'QUERY_LIMIT_EXCEEDED');
        assert.deepEqual(e.details, { limit: 'max_rows_to_read' });
        return true;
      },
    );
    await assert.rejects(
      tiny.run({ sql: 'SELECT arrayJoin([1, 2, 3]) FROM conversions', params: {}, format: 'json' }).then(async (r) => {
        for await (const _ of r.body);
      }),
      (e: Error & { code: string }) => e.code === 'QUERY_LIMIT_EXCEEDED',
    );
    // A cross join: each of the four reads is small, together they pass max_rows_to_read.
    const heavy = createAnalytics(ch, {
      maxExecutionS: 30,
      maxResultRows: 1e6,
      maxMemoryBytes: 2e9,
      maxRowsToRead: 12,
    });
    await assert.rejects(
      heavy.run({
        sql: 'SELECT count() FROM clicks, clicks AS b, clicks AS c, clicks AS d',
        params: {},
        format: 'json',
      }),
      (e: Error & { code: string }) => e.code === 'QUERY_LIMIT_EXCEEDED',
    );
    // The limits were the query's own (a SETTINGS clause), not session settings left on for the pipeline.
    const rs = await ch.query({
      query: "SELECT getSetting('max_rows_to_read') AS r, getSetting('readonly') AS ro, count() AS n FROM clicks",
      format: 'JSONEachRow',
    });
    assert.deepEqual(await rs.json(), [{ r: 0, ro: 0, n: 5 }]);
  });
});
