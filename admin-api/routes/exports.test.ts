/**
 * `/exports/clicks` and `/exports/conversions` over the real admin API and a real chDB: scope, NDJSON and CSV
 * shape, cursor resumption across equal timestamps, bad input, and a 200,000-row export in bounded memory.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  approvedWebsite,
  createBudgetedCampaign,
  startTestApi,
  type TestApi,
  type TestUser,
  users,
} from '../test-helpers.ts';
import { EXPORT_PAGE_ROWS } from './exports.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let aff: TestUser;
let adv2: TestUser;
let aff2: TestUser;

before(async () => {
  t = await startTestApi({ clickhouse: true });
  ({ admin, adv, aff, adv2, aff2 } = await users(t, {
    admin: 'admin',
    adv: 'advertiser',
    aff: 'affiliate',
    adv2: 'advertiser',
    aff2: 'affiliate',
  }));
});
after(async () => {
  await t.close();
});

const T = Date.UTC(2026, 2, 5, 12, 0, 0);
const at = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
const range = `from=2026-03-01&to=${encodeURIComponent('2026-03-10T00:00:00Z')}`;

async function campaign(owner: TestUser): Promise<number> {
  const w = await approvedWebsite(t, owner, admin, { url: `https://x${owner.id}.example.com`, name: 'exports' });
  return createBudgetedCampaign(t, owner, w, null, {
    name: 'exports',
    destination_url: 'https://example.com/?c={click_id}',
    payout: 500,
    revenue: 800,
  });
}

/** NDJSON lines of a body: the rows and the trailer. */
function ndjson(text: string): { rows: Record<string, unknown>[]; trailer: Record<string, unknown> } {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  const all = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const trailer = all.pop()!;
  assert.deepEqual(Object.keys(trailer), ['next_cursor', 'rows']);
  assert.equal(trailer.rows, all.length);
  return { rows: all, trailer };
}

describe('exports over ClickHouse', () => {
  let campA: number;
  let campB: number;
  /** Tenant A's clicks (adv's campaign), in (ts, click_id) order; four share one timestamp. */
  const aClicks: { id: string; ts: number; affiliate: number; sub1: string }[] = [];
  const convId = randomUUID();

  before(async () => {
    campA = await campaign(adv);
    campB = await campaign(adv2);
    const rows: Record<string, unknown>[] = [];
    const click = (o: { ts: number; campaign: number; advertiser: number; affiliate: number; sub1?: string }) => {
      const id = randomUUID();
      rows.push({
        click_id: id,
        ts: at(o.ts),
        received: at(o.ts),
        link_code: 'l',
        campaign_id: o.campaign,
        affiliate_id: o.affiliate,
        advertiser_id: o.advertiser,
        currency: 'USD',
        ip: '192.0.2.7',
        method: 'GET',
        sub1: o.sub1 ?? 's1',
        sub2: 's2',
        sub3: 's3',
        sub4: 's4',
        sub5: 's5',
        user_agent: 'Mozilla/5.0',
        country: 'DE',
        device: 'mobile',
        fraud_score: 0.25,
        fraud_reasons: [],
        is_invalid: 0,
        landing_id: 7,
      });
      return id;
    };
    const A = { campaign: campA, advertiser: adv.id, affiliate: aff.id };
    for (const [i, ts] of [T, T, T, T, T + 1, T + 2, T + 86_400_000].entries()) {
      const affiliate = i === 2 ? aff2.id : aff.id;
      const sub1 = i === 0 ? 'a,"b"\nc' : `s${i}`;
      aClicks.push({ id: click({ ...A, affiliate, ts, sub1 }), ts, affiliate, sub1 });
    }
    for (const i of [1, 2, 3]) click({ campaign: campB, advertiser: adv2.id, affiliate: aff2.id, ts: T + i });
    // Outside the range.
    click({ ...A, ts: Date.UTC(2026, 2, 10) });
    aClicks.sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : 1));
    await t.env.ch!.insert({ table: 'clicks', format: 'JSONEachRow', values: rows });
    const conv = (version: number, sign: number, status: string, payout: number) => ({
      conversion_id: convId,
      event_id: 'e1',
      click_id: aClicks[0]!.id,
      advertiser_id: adv.id,
      campaign_id: campA,
      affiliate_id: aff.id,
      link_code: 'l',
      goal: '',
      status,
      amount: -1,
      currency: 'USD',
      payout,
      revenue: 800,
      event_time: at(T + 5000),
      click_time: at(T),
      sub1: 's1',
      landing_id: 9,
      version,
      sign,
    });
    await t.env.ch!.insert({
      table: 'conversions',
      format: 'JSONEachRow',
      values: [conv(0, 1, 'pending', 500), conv(0, -1, 'pending', 500), conv(1, 1, 'approved', 600)],
    });
  });

  test('affiliate NDJSON: only its own clicks, no IP, trailer without a next cursor', async () => {
    const r = await t.call('get', `/exports/clicks?${range}&affiliate_id=${aff2.id}`, { token: aff.token });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type')!, /^application\/x-ndjson/);
    assert.match(r.headers.get('content-disposition')!, /^attachment; filename="clicks-\d+-\d+\.ndjson"$/);
    const { rows, trailer } = ndjson(r.text);
    const mine = aClicks.filter((c) => c.affiliate === aff.id);
    assert.deepEqual(
      rows.map((x) => x.click_id),
      mine.map((c) => c.id),
    );
    assert.deepEqual(rows[0], {
      click_id: mine[0]!.id,
      ts: new Date(T).toISOString(),
      campaign_id: campA,
      affiliate_id: aff.id,
      sub1: mine[0]!.sub1,
      sub2: 's2',
      sub3: 's3',
      sub4: 's4',
      sub5: 's5',
      country: 'DE',
      device: 'mobile',
      is_invalid: 0,
      invalid_reason: '',
      bot_reason: '',
      fraud_score: 0.25,
      landing_id: 7,
    });
    assert.equal(trailer.next_cursor, null);
  });

  test('advertiser: only its campaigns (with IP); admin: everything in the range', async () => {
    const a = ndjson((await t.call('get', `/exports/clicks?${range}`, { token: adv.token })).text);
    assert.deepEqual(
      a.rows.map((x) => x.click_id),
      aClicks.map((c) => c.id),
    );
    assert.equal(a.rows[0]!.ip, '192.0.2.7');
    const b = ndjson((await t.call('get', `/exports/clicks?${range}`, { token: adv2.token })).text);
    assert.deepEqual(new Set(b.rows.map((x) => x.campaign_id)), new Set([campB]));
    assert.equal(b.rows.length, 3);
    const other = await t.call('get', `/exports/clicks?${range}&campaign_id=${campB}`, { token: adv.token });
    assert.equal(other.status, 404, other.text);
    const all = ndjson((await t.call('get', `/exports/clicks?${range}`, { token: admin.token })).text);
    assert.equal(all.rows.length, aClicks.length + 3);
  });

  test('CSV: header row, RFC 4180 quoting, by format or Accept', async () => {
    const r = await t.call('get', `/exports/clicks?${range}&campaign_id=${campA}`, {
      token: adv.token,
      headers: { accept: 'text/csv' },
    });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type')!, /^text\/csv/);
    const header =
      'click_id,ts,campaign_id,affiliate_id,sub1,sub2,sub3,sub4,sub5,country,device,is_invalid,invalid_reason,bot_reason,fraud_score,ip,landing_id';
    assert.ok(r.text.startsWith(`${header}\r\n`), r.text.slice(0, 200));
    const tricky = aClicks.find((c) => c.sub1.includes(','))!;
    const row = `${tricky.id},${new Date(T).toISOString()},${campA},${aff.id},"a,""b""\nc",s2,s3,s4,s5,DE,mobile,0,,,0.25,192.0.2.7,7\r\n`;
    assert.ok(r.text.includes(row), r.text);
    assert.ok(r.text.endsWith('\r\n'));
    const byParam = await t.call('get', `/exports/clicks?${range}&format=csv`, { token: aff.token });
    assert.ok(byParam.text.startsWith('click_id,ts,campaign_id,affiliate_id,sub1,'));
    assert.ok(!byParam.text.split('\r\n')[0]!.includes('ip'), 'no ip column for affiliates');
  });

  test('cursor: pages of 1 and 3 resume without gaps or duplicates across equal timestamps', async () => {
    for (const limit of [1, 3]) {
      const got: unknown[] = [];
      let cursor: string | null = null;
      let calls = 0;
      do {
        const c: string = cursor ? `&cursor=${cursor}` : '';
        const r = await t.call('get', `/exports/clicks?${range}&limit=${limit}${c}`, { token: adv.token });
        assert.equal(r.status, 200, r.text);
        const page = ndjson(r.text);
        assert.ok(page.rows.length <= limit);
        got.push(...page.rows.map((x) => x.click_id));
        cursor = page.trailer.next_cursor as string | null;
        assert.ok(++calls < 20);
      } while (cursor);
      assert.deepEqual(
        got,
        aClicks.map((c) => c.id),
        `limit ${limit}`,
      );
    }
    // CSV clients resume with the cursor built from their last row: base64url of `<ts_ms>:<id>`.
    const last = aClicks[3]!;
    const cursor = Buffer.from(`${last.ts}:${last.id}`).toString('base64url');
    const r = await t.call('get', `/exports/clicks?${range}&format=csv&cursor=${cursor}`, { token: adv.token });
    const ids = r.text
      .split('\r\n')
      .slice(1, -1)
      .map((l) => l.split(',')[0]);
    assert.deepEqual(
      ids,
      aClicks.slice(4).map((c) => c.id),
    );
  });

  test('conversions: the current version only, affiliates without revenue', async () => {
    const a = ndjson((await t.call('get', `/exports/conversions?${range}`, { token: adv.token })).text);
    assert.equal(a.rows.length, 1);
    assert.deepEqual(
      { ...a.rows[0] },
      {
        conversion_id: convId,
        event_time: new Date(T + 5000).toISOString(),
        click_id: aClicks[0]!.id,
        event_id: 'e1',
        advertiser_id: adv.id,
        campaign_id: campA,
        affiliate_id: aff.id,
        goal: '',
        status: 'approved',
        reject_reason: '',
        currency: 'USD',
        amount: -1,
        payout: 600,
        revenue: 800,
        sub1: 's1',
        sub2: '',
        sub3: '',
        sub4: '',
        sub5: '',
        country: '',
        device: '',
        fraud_score: 0,
        landing_id: 9,
        source: 's2s',
        version: 1,
      },
    );
    const f = ndjson((await t.call('get', `/exports/conversions?${range}`, { token: aff.token })).text);
    assert.equal(f.rows.length, 1);
    assert.equal(f.rows[0]!.payout, 600);
    for (const hidden of ['revenue', 'amount', 'event_id', 'advertiser_id', 'fraud_score'])
      assert.ok(!(hidden in f.rows[0]!), hidden);
    const none = ndjson((await t.call('get', `/exports/conversions?${range}`, { token: aff2.token })).text);
    assert.equal(none.rows.length, 0);
  });

  test('bad input: 400 VALIDATION_ERROR envelope', async () => {
    const cases: [string, string][] = [
      ['from=2026-03-05&to=2026-03-01', 'to'],
      ['from=2026-01-01&to=2026-06-01', 'to'],
      ['from=yesterday&to=2026-03-01', 'from'],
      ['from=2026-02-30&to=2026-03-01', 'from'],
      [`${range}&format=xml`, 'format'],
      [`${range}&cursor=bm9wZQ`, 'cursor'],
      [`${range}&limit=0`, 'limit'],
      ['to=2026-03-01', 'from'],
    ];
    for (const [qs, field] of cases) {
      const r = await t.call('get', `/exports/clicks?${qs}`, { token: adv.token });
      assert.equal(r.status, 400, `${qs}: ${r.text}`);
      assert.equal(r.body.success, false);
      assert.equal(r.body.error.code, 'VALIDATION_ERROR', qs);
      assert.ok(field in r.body.error.details, `${qs}: ${r.text}`);
    }
  });
});

describe('a 200,000-row export', () => {
  test('streams every row in order with bounded heap', async () => {
    const big = await t.user('advertiser');
    const N = 200_000;
    const start = Date.UTC(2026, 4, 1);
    const t0 = Date.now();
    // Three clicks per millisecond: pages end inside runs of equal timestamps.
    await t.env.ch!.command({
      query: `INSERT INTO clicks (click_id, ts, received, link_code, campaign_id, affiliate_id, advertiser_id,
          currency, ip, method, sub1, sub2, sub3, sub4, sub5, country, device, fraud_score, is_invalid)
        SELECT generateUUIDv4(), fromUnixTimestamp64Milli(toInt64(${start} + intDiv(number, 3)), 'UTC'),
          fromUnixTimestamp64Milli(toInt64(${start}), 'UTC'), 'big', 777777, 888888, ${big.id}, 'USD', '203.0.113.9',
          'GET', concat('sub-', toString(number)), 'b', 'c', 'd', 'e', 'FR', 'desktop', 0.5, 0
        FROM numbers(${N})`,
    });
    const inserted = Date.now() - t0;
    // Live heap (after a full GC), sampled every 20,000 rows: garbage between collections is not what buffering costs.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const base = process.memoryUsage();
    let peakHeap = base.heapUsed;
    let peakRss = base.rss;
    const res = await fetch(`${t.url}/exports/clicks?from=2026-05-01&to=2026-05-02`, {
      headers: { authorization: `Bearer ${big.token}` },
    });
    assert.equal(res.status, 200);
    const decoder = new TextDecoder();
    let rest = '';
    let rows = 0;
    let lastKey = '';
    let trailer: { next_cursor: string | null; rows: number } | undefined;
    for await (const chunk of res.body!) {
      const lines = (rest + decoder.decode(chunk, { stream: true })).split('\n');
      rest = lines.pop()!;
      for (const l of lines) {
        const o = JSON.parse(l);
        if ('next_cursor' in o) {
          trailer = o;
          continue;
        }
        const key = `${o.ts} ${o.click_id}`;
        assert.ok(key > lastKey, `order at row ${rows}`);
        lastKey = key;
        if (++rows % 20_000 === 0) {
          gc();
          const m = process.memoryUsage();
          peakHeap = Math.max(peakHeap, m.heapUsed);
          peakRss = Math.max(peakRss, m.rss);
        }
      }
    }
    assert.equal(rows, N);
    assert.deepEqual(trailer, { next_cursor: null, rows: N });
    const mb = (b: number) => Math.round(b / 1e5) / 10;
    const heapGrowth = peakHeap - base.heapUsed;
    console.log(
      `200k export: insert ${inserted} ms, stream ${Date.now() - t0 - inserted} ms, page ${EXPORT_PAGE_ROWS} rows, ` +
        `heap +${mb(heapGrowth)} MB, rss +${mb(peakRss - base.rss)} MB`,
    );
    // The whole export is ~60 MB of NDJSON and more as row objects; one page is a few MB.
    assert.ok(heapGrowth < 30e6, `heap grew ${mb(heapGrowth)} MB`);
  });
});
