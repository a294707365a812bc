/**
 * Previewers, scanners and prefetches are redirected but kept out of clicks (issue 16, item 5), through the whole
 * stack: each named app's link previewer and a `Sec-Purpose: prefetch` request click a real tracker (302 to the
 * landing page, so previews keep working), the pipeline classifies them into ClickHouse (`bot_reason`, not valid),
 * and `/api/v1/reports` counts only the browser's click in clicks, unique clicks, CR and EPC, on the hourly
 * aggregates and on the raw tables alike, with the others in invalid_clicks and bot_clicks.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../infra/testing/index.ts';
import { type Stack, startStack, type TestApi, type TestUser } from '../test-helpers.ts';

const CHROME =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

/** Each request: its user agent and headers, and the bot_reason ClickHouse must show ('' = a visitor, valid). */
const CLICKS: Array<{ name: string; ua: string; method?: string; headers?: Record<string, string>; want: string }> = [
  { name: 'slack', ua: 'Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)', want: 'previewer' },
  { name: 'slack-head', method: 'HEAD', ua: 'Slackbot 1.0 (+https://api.slack.com/robots)', want: 'previewer' },
  {
    name: 'imessage',
    ua: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0',
    want: 'previewer',
  },
  { name: 'telegram', ua: 'TelegramBot (like TwitterBot)', want: 'previewer' },
  { name: 'discord', ua: 'Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)', want: 'previewer' },
  { name: 'whatsapp', ua: 'WhatsApp/2.23.20.0 A', want: 'previewer' },
  {
    name: 'facebook',
    ua: 'facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)',
    want: 'previewer',
  },
  { name: 'x', ua: 'Twitterbot/1.0', want: 'previewer' },
  { name: 'mail-scanner', ua: 'Barracuda Sentinel (EE)', want: 'scanner' },
  { name: 'prefetch', ua: CHROME, headers: { 'sec-purpose': 'prefetch' }, want: 'prefetch' },
  { name: 'browser', ua: CHROME, want: '' },
];

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let aff: TestUser;
let campaignId: number;
let tracker: Stack['tracker'];
let stack: Stack | undefined;
const today = new Date().toISOString().slice(0, 10);
/** click_id → request name, from the 302s' Location. */
const sent = new Map<string, string>();

before(async () => {
  stack = await startStack();
  ({ t, admin, adv, aff, campaignId, tracker } = stack);
});
after(async () => {
  await stack?.close();
});

test('previewers, a mail scanner and a prefetch are redirected (302) like the browser', async () => {
  const join = await t.call('post', `/campaigns/${campaignId}/join`, { token: aff.token });
  assert.equal(join.status, 201, join.text);
  const code: string = join.body.data.link.code;
  const pbt = await t.call('post', '/postback-tokens', { token: adv.token });
  const token: string = pbt.body.data.token;
  for (const [i, c] of CLICKS.entries()) {
    const res = await fetch(`${tracker.url}/c/${code}?sub1=${c.name}`, {
      redirect: 'manual',
      method: c.method ?? 'GET',
      // One address each, so no velocity or duplicate rule is what marks a click.
      headers: { 'user-agent': c.ua, 'x-forwarded-for': `198.51.100.${i + 1}`, ...c.headers },
    });
    assert.equal(res.status, 302, c.name);
    const location = res.headers.get('location') ?? '';
    assert.match(location, /^https:\/\/shop\.example\.com\/\?c=[0-9a-f-]{36}$/, c.name);
    const clickId = new URL(location).searchParams.get('c')!;
    sent.set(clickId, c.name);
    if (c.name === 'browser') {
      const conv = await fetch(
        `${tracker.url}/api/v1/track/conversion?click_id=${clickId}&event_id=order-1&status=pending`,
        { headers: { 'x-postback-token': token } },
      );
      assert.equal(conv.status, 200, await conv.text());
    }
  }
});

test('each lands in ClickHouse with its bot_reason and not valid; the browser is valid', async () => {
  type Logged = { click_id: string; sub1: string; bot_reason: string; valid: boolean; fraud_reasons: string[] };
  let rows: Logged[] = [];
  await waitFor('every click in the click log', async () => {
    const r = await t.call('get', `/reports/clicks?from=${today}&to=${today}&campaign_id=${campaignId}`, {
      token: admin.token,
    });
    assert.equal(r.status, 200, r.text);
    rows = r.body.data;
    return rows.length === CLICKS.length;
  });
  const got = Object.fromEntries(rows.map((r) => [sent.get(r.click_id), [r.bot_reason, r.valid]]));
  assert.deepEqual(got, Object.fromEntries(CLICKS.map((c) => [c.name, [c.want, c.want === '']])));
  const [n] = await (
    await t.env.ch!.query({
      query: `SELECT countIf(is_invalid = 1) AS invalid, countIf(bot_reason != '') AS bots FROM clicks
              WHERE campaign_id = {c:UInt64}`,
      query_params: { c: campaignId },
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    })
  ).json<{ invalid: number; bots: number }>();
  assert.deepEqual(n, { invalid: CLICKS.length - 1, bots: CLICKS.length - 1 });
});

test('/reports: clicks, unique clicks, CR and EPC are the browser’s alone, in every grouping', async () => {
  await waitFor('the conversion in the reports', async () => {
    const r = await t.call('get', `/reports?group_by=campaign&from=${today}&to=${today}&campaign_id=${campaignId}`, {
      token: admin.token,
    });
    return r.body.data?.[0]?.conversions === 1;
  });
  const bots = CLICKS.length - 1;
  // day / hour / campaign / affiliate in UTC read stats_hourly; Kolkata (+05:30) and sub1 / device read the raw tables.
  for (const [group_by, tz] of [
    ['campaign', 'UTC'],
    ['day', 'UTC'],
    ['hour', 'UTC'],
    ['affiliate', 'UTC'],
    ['day', 'Asia/Kolkata'],
    ['device', 'UTC'],
  ] as const) {
    const r = await t.call(
      'get',
      `/reports?group_by=${group_by}&from=${today}&to=${today}&tz=${tz}&campaign_id=${campaignId}`,
      { token: adv.token },
    );
    assert.equal(r.status, 200, r.text);
    const rows = r.body.data as Array<Record<string, number>>;
    const sum = (k: string) => rows.reduce((s, x) => s + x[k]!, 0);
    const where = `${group_by} in ${tz}`;
    assert.deepEqual(
      ['clicks', 'unique_clicks', 'invalid_clicks', 'bot_clicks', 'conversions', 'payout'].map(sum),
      [1, 1, bots, bots, 1, 700],
      where,
    );
    const withClicks = rows.filter((x) => x.clicks! > 0);
    if (group_by !== 'device') {
      assert.equal(withClicks.length, 1, where);
      assert.equal(withClicks[0]!.cr, 1, `${where}: CR over the one valid click`);
      assert.equal(withClicks[0]!.epc, 700, `${where}: EPC over the one valid click`);
    }
  }
  // By sub1 each request is its own row: only the browser's has a click, and only it a CR.
  const bySub = await t.call('get', `/reports?group_by=sub1&from=${today}&to=${today}&campaign_id=${campaignId}`, {
    token: adv.token,
  });
  const rows = bySub.body.data as Array<{ key: string; clicks: number; bot_clicks: number; cr: number; epc: number }>;
  assert.deepEqual(
    Object.fromEntries(rows.map((x) => [x.key, [x.clicks, x.bot_clicks, x.cr, x.epc]])),
    Object.fromEntries(CLICKS.map((c) => [c.name, c.want === '' ? [1, 0, 1, 700] : [0, 1, 0, 0]])),
  );
});
