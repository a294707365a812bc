/**
 * README "For analysts" cannot drift: its column lists equal the live chDB schema (built by the migrations), every
 * table and materialized view is documented, and each example query runs through `POST /analytics/query`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ANALYTICS_TABLES } from '../../tracker/index.ts';
import { startTestApi, type TestApi, type TestUser } from '../test-helpers.ts';

const readme = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md'), 'utf8');
const section = (() => {
  const start = readme.indexOf('\n## For analysts\n');
  assert.ok(start >= 0, 'README has a "For analysts" section');
  const end = readme.indexOf('\n## ', start + 5);
  return readme.slice(start, end < 0 ? undefined : end);
})();

/** `### \`table\`` subsections → their `| \`column\` | \`type\` | … |` rows. */
function documentedTables(): Map<string, Array<[string, string]>> {
  const out = new Map<string, Array<[string, string]>>();
  for (const part of section.split('\n### ').slice(1)) {
    const m = /^`([a-z_0-9]+)`/.exec(part);
    if (!m) continue;
    const rows: Array<[string, string]> = [];
    for (const line of part.split('\n')) {
      const r = /^\| `([^`]+)` \| `([^`]+)` \|/.exec(line);
      if (r) rows.push([r[1]!, r[2]!]);
    }
    out.set(m[1]!, rows);
  }
  return out;
}

let t: TestApi;
let analyst: TestUser;

before(async () => {
  t = await startTestApi({ clickhouse: true });
  analyst = await t.user('analyst');
  const T = Date.UTC(2026, 0, 10, 10, 0, 0);
  const at = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
  const clicks = [0, 1, 2, 3].map((i) => ({
    click_id: randomUUID(),
    ts: at(T + i * 600_000),
    received: at(T + i * 600_000),
    campaign_id: 11,
    affiliate_id: 21,
    advertiser_id: 31,
    currency: 'USD',
    sub1: `src${i % 2}`,
    sub2: `s${i % 2}`,
    fraud_score: i * 0.2,
  }));
  // A link previewer's click in hour 10, sub s0: recorded, not valid, so not in the CR example's clicks.
  const previewer = {
    ...clicks[0]!,
    click_id: randomUUID(),
    ts: at(T + 300_000),
    received: at(T + 300_000),
    user_agent: 'Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)',
    bot_reason: 'previewer',
    is_invalid: 1,
  };
  await t.env.ch!.insert({ table: 'clicks', format: 'JSONEachRow', values: [...clicks, previewer] });
  await t.env.ch!.insert({
    table: 'conversions',
    format: 'JSONEachRow',
    values: [
      {
        conversion_id: randomUUID(),
        event_id: 'e1',
        click_id: clicks[0]!.click_id,
        campaign_id: 11,
        affiliate_id: 21,
        advertiser_id: 31,
        status: 'approved',
        currency: 'USD',
        payout: 400,
        revenue: 600,
        amount: -1,
        click_time: clicks[0]!.ts,
        event_time: at(T + 90_000),
      },
    ],
  });
});
after(async () => {
  await t.close();
});

describe('README "For analysts"', () => {
  test('documents every table with exactly its columns and types, in order', async () => {
    const docs = documentedTables();
    const rs = await t.env.ch!.query({
      query:
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase() AND name NOT LIKE '.%' ORDER BY name",
      format: 'JSONEachRow',
    });
    const live = await rs.json<{ name: string; engine: string }>();
    // schema_migrations is the migrator's bookkeeping, not data (and not readable through the endpoint).
    const tables = live
      .filter((x) => x.engine !== 'MaterializedView' && x.name !== 'schema_migrations')
      .map((x) => x.name);
    assert.deepEqual([...docs.keys()].sort(), [...tables].sort());
    assert.deepEqual([...ANALYTICS_TABLES].sort(), [...tables].sort(), 'the query allow-list is the documented tables');
    for (const name of tables) {
      const d = await t.env.ch!.query({ query: `DESCRIBE TABLE ${name}`, format: 'JSONEachRow' });
      const cols = (await d.json<{ name: string; type: string }>()).map((c) => [c.name, c.type]);
      assert.deepEqual(docs.get(name), cols, `columns of ${name}`);
    }
    for (const mv of live.filter((x) => x.engine === 'MaterializedView'))
      assert.ok(section.includes(`\`${mv.name}\``), `materialized view ${mv.name} is described`);
  });

  test('each example query runs through POST /analytics/query and returns rows', async () => {
    const queries = [...section.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
    assert.equal(queries.length, 5);
    const params: Record<string, unknown> = { affiliate: 21, from: '2026-01-10 00:00:00.000' };
    for (const sql of queries) {
      const used = Object.fromEntries(Object.entries(params).filter(([k]) => sql.includes(`{${k}:`)));
      const r = await t.call('post', '/analytics/query', { token: analyst.token, body: { sql, params: used } });
      assert.equal(r.status, 200, `${sql}\n${r.text}`);
      assert.ok(r.body.data.length > 0, sql);
    }
    // The CR example's numbers: hour 10 has 4 valid clicks (and the previewer's), sub s0 2 of them with the one conversion.
    const cr = await t.call('post', '/analytics/query', {
      token: analyst.token,
      body: { sql: queries[0], params: { affiliate: 21, from: '2026-01-10 00:00:00.000' } },
    });
    assert.deepEqual(
      cr.body.data.map((row: unknown[]) => row.slice(1)),
      [
        ['s0', '2', '1', 0.5],
        ['s1', '2', '0', 0],
      ],
    );
  });
});
