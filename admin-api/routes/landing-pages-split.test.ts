/**
 * Split tests end to end (issue #16 item 4): landing pages made through the admin API, clicks through a real tracker,
 * the pipeline into chDB, a postback through the tracker. Three pages weighted 1:1:2 and one of weight 0 over 2,000
 * clicks: each page's share lies within 5 standard deviations of its weight's (a false failure has odds below one in
 * a million per page), the weight-0 page is never served, ClickHouse holds exactly the landing_id each 302 went to,
 * and `/reports?group_by=landing_id` breaks clicks, conversions and CR down by page. A pinned link always gets its
 * page and rotates once that page is archived; with no page left the campaign's destination_url is served again
 * (landing_id 0).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../infra/testing/index.ts';
import { type Stack, startStack, type TestApi, type TestUser } from '../test-helpers.ts';

const UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const CLICKS = 2_000;
const WEIGHTS = { a: 1, b: 1, c: 2, zero: 0 } as const;
type Page = keyof typeof WEIGHTS;

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let aff: TestUser;
let campaignId: number;
let tracker: Stack['tracker'];
let stack: Stack | undefined;
const today = new Date().toISOString().slice(0, 10);
const pageIds = {} as Record<Page, number>;
let code: string;
let pinnedCode: string;
/** The landing_id each click's 302 went to (0: the campaign's destination_url), by click_id. */
const sentTo = new Map<string, number>();
let seq = 0;

before(async () => {
  stack = await startStack();
  ({ t, admin, adv, aff, campaignId, tracker } = stack);
});
after(async () => {
  await stack?.close();
});

/** The landing_id a Location names: `/lp-<page>` paths are pages, anything else the campaign's destination. */
function landingOf(location: string): { clickId: string; landing: number } {
  const u = new URL(location);
  const page = /^\/lp-([a-z]+)$/.exec(u.pathname)?.[1] as Page | undefined;
  return { clickId: u.searchParams.get('c')!, landing: page ? pageIds[page] : 0 };
}

/** One click on `linkCode` from an address of its own (no velocity or duplicate rule fires); @returns its landing. */
async function click(linkCode: string): Promise<number> {
  const n = ++seq;
  const res = await fetch(`${tracker.url}/c/${linkCode}?sub1=split`, {
    redirect: 'manual',
    headers: { 'user-agent': UA, 'x-forwarded-for': `198.18.${n >> 8}.${n & 255}` },
  });
  assert.equal(res.status, 302);
  const { clickId, landing } = landingOf(res.headers.get('location') ?? '');
  sentTo.set(clickId, landing);
  return landing;
}

/** `count` clicks on `linkCode`, 16 at a time; @returns how many went to each landing_id. */
async function clicks(linkCode: string, count: number): Promise<Map<number, number>> {
  const got = new Map<number, number>();
  let left = count;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (left-- > 0) {
        const l = await click(linkCode);
        got.set(l, (got.get(l) ?? 0) + 1);
      }
    }),
  );
  return got;
}

test('the advertiser sets up pages weighted 1:1:2 and one of weight 0; the affiliate pins one on a second link', async () => {
  for (const [page, weight] of Object.entries(WEIGHTS) as Array<[Page, number]>) {
    const r = await t.call('post', `/campaigns/${campaignId}/landing-pages`, {
      token: adv.token,
      body: { name: `Variant ${page}`, url: `https://shop.example.com/lp-${page}?c={click_id}&s={sub1}`, weight },
    });
    assert.equal(r.status, 201, r.text);
    pageIds[page] = r.body.data.id;
  }
  const join = await t.call('post', `/campaigns/${campaignId}/join`, { token: aff.token });
  assert.equal(join.status, 201, join.text);
  code = join.body.data.link.code;
  const pinned = await t.call('post', '/affiliate/links', {
    token: aff.token,
    body: { campaign_id: campaignId, landing_page_id: pageIds.b },
  });
  assert.equal(pinned.status, 201, pinned.text);
  pinnedCode = pinned.body.data.code;
});

test('2,000 clicks split by weight (each share within 5 sigma), the weight-0 page never served', async () => {
  const got = await clicks(code, CLICKS);
  const total = Object.values(WEIGHTS).reduce((s: number, w: number) => s + w, 0);
  for (const [page, weight] of Object.entries(WEIGHTS) as Array<[Page, number]>) {
    const n = got.get(pageIds[page]) ?? 0;
    const p = weight / total;
    const sigma = Math.sqrt(CLICKS * p * (1 - p));
    assert.ok(
      Math.abs(n - CLICKS * p) <= 5 * sigma,
      `${page}: ${n} of ${CLICKS}, expected ${CLICKS * p} ± ${5 * sigma}`,
    );
  }
  assert.equal(got.get(pageIds.zero) ?? 0, 0);
  assert.equal(got.get(0) ?? 0, 0, 'no click went to the campaign destination');
  assert.equal(
    [...got.values()].reduce((s, v) => s + v, 0),
    CLICKS,
  );
});

test('a pinned link always gets its page', async () => {
  const got = await clicks(pinnedCode, 50);
  assert.deepEqual([...got], [[pageIds.b, 50]]);
});

test('a conversion carries its click landing_id, in Postgres and ClickHouse', async () => {
  const clickId = [...sentTo].find(([, l]) => l === pageIds.c)![0];
  const pbt = await t.call('post', '/postback-tokens', { token: adv.token });
  const conv = await fetch(
    `${tracker.url}/api/v1/track/conversion?click_id=${clickId}&event_id=split-1&status=pending`,
    { headers: { 'x-postback-token': pbt.body.data.token } },
  );
  assert.equal(conv.status, 200, await conv.text());
  await waitFor('the conversion in Postgres', async () => {
    const [r] = await t.env.sql<{ landing_id: number }[]>`
      select landing_id from conversions where event_id = 'split-1' and status = 'pending'`;
    return r?.landing_id === pageIds.c;
  });
  await waitFor('the conversion in ClickHouse', async () => {
    const rs = await t.env.ch!.query({
      query: "SELECT landing_id FROM conversions WHERE event_id = 'split-1'",
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    });
    const rows = await rs.json<{ landing_id: number }>();
    return rows.length === 1 && rows[0]!.landing_id === pageIds.c;
  });
});

test('ClickHouse holds the landing_id each redirect went to; /reports breaks down by landing_id', async () => {
  const want = new Map<number, number>();
  for (const l of sentTo.values()) want.set(l, (want.get(l) ?? 0) + 1);
  const byLanding = async () => {
    const rs = await t.env.ch!.query({
      query: 'SELECT toString(click_id) AS id, landing_id FROM clicks WHERE campaign_id = {c:UInt64}',
      query_params: { c: campaignId },
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    });
    return rs.json<{ id: string; landing_id: number }>();
  };
  let rows: Array<{ id: string; landing_id: number }> = [];
  await waitFor(
    'every click in ClickHouse',
    async () => {
      rows = await byLanding();
      return rows.length === sentTo.size;
    },
    { timeoutMs: 60_000 },
  );
  for (const r of rows) assert.equal(r.landing_id, sentTo.get(r.id), r.id);

  const r = await t.call(
    'get',
    `/reports?group_by=landing_id&from=${today}&to=${today}&tz=UTC&campaign_id=${campaignId}`,
    { token: adv.token },
  );
  assert.equal(r.status, 200, r.text);
  type Row = { key: string; clicks: number; invalid_clicks: number; conversions: number; cr: number; payout: number };
  const report = new Map((r.body.data as Row[]).map((x) => [Number(x.key), x]));
  assert.deepEqual([...report.keys()].sort(), [...want.keys()].sort());
  for (const [landing, n] of want) {
    const x = report.get(landing)!;
    assert.equal(x.clicks + x.invalid_clicks, n, `landing ${landing}`);
    // Every click came from an address of its own with a browser's user agent: all valid.
    assert.equal(x.clicks, n, `landing ${landing}: valid clicks`);
    const converted = landing === pageIds.c ? 1 : 0;
    assert.equal(x.conversions, converted, `landing ${landing}: conversions`);
    assert.equal(x.cr, Math.round((converted / n) * 1e6) / 1e6);
    assert.equal(x.payout, converted * 700);
  }
  // The other dimensions of the done-means are there too.
  for (const group_by of ['country', 'device']) {
    const d = await t.call('get', `/reports?group_by=${group_by}&from=${today}&to=${today}&tz=UTC`, {
      token: admin.token,
    });
    assert.equal(d.status, 200, d.text);
  }
});

test('archiving the pinned page makes its link rotate; with no page left the destination_url is served', async () => {
  const archive = async (page: Page) => {
    const r = await t.call('post', `/campaigns/${campaignId}/landing-pages/${pageIds[page]}/archive`, {
      token: adv.token,
    });
    assert.equal(r.status, 200, r.text);
  };
  await archive('b');
  // The invalidation reaches the tracker through Redis pub/sub.
  await waitFor('the pinned link rotates', async () => (await click(pinnedCode)) !== pageIds.b);
  const got = await clicks(pinnedCode, 40);
  assert.ok(
    [...got.keys()].every((l) => l === pageIds.a || l === pageIds.c),
    JSON.stringify([...got]),
  );
  await archive('a');
  await archive('c');
  // Only the weight-0 page is active: nothing to rotate between.
  await waitFor('the campaign destination again', async () => (await click(code)) === 0);
  assert.deepEqual([...(await clicks(code, 10))], [[0, 10]]);
});
