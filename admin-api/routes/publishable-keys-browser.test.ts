/**
 * Browser conversions in a real browser (Debian's chromium through playwright-core), end to end: the advertiser's
 * landing page (node:http on loopback) is a campaign's destination; the browser opens the tracking link, follows the
 * 302, the page loads the tracker's `/s.js`, and a button fires `trk.conversion()`. The conversion must be recorded
 * `pending` in Postgres and ClickHouse and attributed to the click its landing URL carried. Also: the cookie keeps
 * the click id for later pages, the pixel works without JavaScript, and an origin the key does not list
 * (`http://localhost:<port>` when only `http://127.0.0.1:<port>` is listed) gets nothing through.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser, waitFor } from '../../infra/testing/index.ts';
import { activateCampaign, approvedWebsite, createBudgetedCampaign, type Stack, startStack } from '../test-helpers.ts';

let stack: Stack;
let browser: Browser;
let site: Server;
let sitePort = 0;
let key = '';
let linkUrl = '';
let campaignId = 0;

/** The advertiser's pages: a landing page with the script and a button, and a thank-you page with only a pixel. */
function pages(trackerUrl: string) {
  return (path: string): string => {
    if (path.startsWith('/pixel-thanks')) {
      const q = new URL(path, 'http://x').searchParams;
      const src = `${trackerUrl}/api/v1/track/pixel?key=${key}&click_id=${q.get('c')}&goal=signup&event_id=signup-1`;
      return `<!doctype html><title>Thanks</title><img id="px" src="${src}" width="1" height="1" alt="">`;
    }
    return `<!doctype html><title>Shop</title>
<script src="${trackerUrl}/s.js" data-key="${key}" data-param="c"></script>
<button id="buy" onclick="trk.conversion({ goal: 'purchase', amount: 49.9, currency: 'USD', event_id: document.title + location.pathname })
  .then((d) => { document.getElementById('out').textContent = JSON.stringify(d); },
        (e) => { document.getElementById('out').textContent = 'error: ' + (e.code || e.message); })">Buy</button>
<pre id="out"></pre>`;
  };
}

before(async () => {
  stack = await startStack();
  const { t, admin, adv, aff, tracker } = stack;
  const render = pages(tracker.url);
  site = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(render(req.url ?? '/'));
  });
  await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
  sitePort = (site.address() as AddressInfo).port;
  // The landing page is the campaign's destination: its host is the advertiser's approved website.
  const websiteId = await approvedWebsite(t, adv, admin, {
    url: `http://127.0.0.1:${sitePort}`,
    name: 'Loopback shop',
  });
  campaignId = await createBudgetedCampaign(t, adv, websiteId, 20_000, {
    destination_url: `http://127.0.0.1:${sitePort}/landing?c={click_id}&s1={sub1}`,
  });
  await activateCampaign(t, adv, campaignId);
  const join = await t.call('post', `/campaigns/${campaignId}/join`, { token: aff.token });
  assert.equal(join.status, 201, join.text);
  linkUrl = `${tracker.url}/c/${join.body.data.link.code}`;
  const k = await t.call('post', '/publishable-keys', {
    token: adv.token,
    body: { name: 'loopback shop', allowed_origins: [`http://127.0.0.1:${sitePort}`] },
  });
  assert.equal(k.status, 201, k.text);
  key = k.body.data.key;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await new Promise((r) => site?.close(r));
  await stack?.close();
});

/** Clicks Buy and returns what the page printed. */
async function buy(page: Page): Promise<string> {
  await page.click('#buy');
  const out = page.locator('#out');
  await out.filter({ hasText: /./ }).waitFor({ timeout: 10_000 });
  return (await out.textContent()) ?? '';
}

/** The campaign's conversion `eventId` in Postgres once the pipeline recorded it. */
async function recorded(eventId: string) {
  let row: Record<string, unknown> | undefined;
  await waitFor(`conversion ${eventId} in Postgres`, async () => {
    [row] = await stack.t.env.sql`
      select id, status, click_id, campaign_id, affiliate_id, goal, amount, currency, payout, revenue, sub1, source
      from conversions where event_id = ${eventId}`;
    return row !== undefined;
  });
  return row!;
}

test('a visitor clicks the tracking link, lands, buys: a pending conversion attributed to that click', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const landing = page.waitForURL(/\/landing\?c=/);
  await page.goto(`${linkUrl}?sub1=newsletter`);
  await landing;
  const clickId = new URL(page.url()).searchParams.get('c')!;
  assert.equal(new URL(page.url()).host, `127.0.0.1:${sitePort}`);
  assert.equal(
    await page.evaluate(() => (globalThis as unknown as { trk: { clickId(): string } }).trk.clickId()),
    clickId,
  );
  const [cookie] = (await ctx.cookies()).filter((c) => c.name === '_trk_cid');
  assert.equal(cookie?.value, clickId);
  assert.equal(cookie?.sameSite, 'Lax');
  assert.ok(cookie!.expires * 1000 > Date.now() + 29 * 86_400_000, 'the cookie lives the attribution window');

  const answer = JSON.parse(await buy(page)) as { decision: string; conversion_id: string; event_id: string };
  assert.equal(answer.decision, 'accepted', JSON.stringify(answer));
  assert.equal(answer.event_id, 'Shop/landing');
  const row = await recorded('Shop/landing');
  assert.deepEqual(row, {
    id: answer.conversion_id,
    status: 'pending',
    click_id: clickId,
    campaign_id: campaignId,
    affiliate_id: stack.aff.id,
    goal: 'purchase',
    amount: 4990,
    currency: 'USD',
    payout: 700,
    revenue: 1000,
    sub1: 'newsletter',
    source: 'browser',
  });
  await waitFor('the conversion in ClickHouse', async () => {
    const rows = await (
      await stack.t.env.ch!.query({
        query: `SELECT status, toString(click_id) AS click_id FROM conversions WHERE conversion_id = {id:UUID}`,
        query_params: { id: answer.conversion_id },
        format: 'JSONEachRow',
      })
    ).json<{ status: string; click_id: string }>();
    return rows.length === 1 && rows[0]!.status === 'pending' && rows[0]!.click_id === clickId;
  });

  // A later page of the same site without the parameter: the cookie still names the click. Clicking again
  // (a reload of a thank-you page) is the same event_id: the same conversion, not a second one.
  await page.goto(`http://127.0.0.1:${sitePort}/landing`);
  assert.deepEqual(JSON.parse(await buy(page)), {
    decision: 'duplicate',
    conversion_id: answer.conversion_id,
    event_id: 'Shop/landing',
  });
  await page.goto(`http://127.0.0.1:${sitePort}/pixel-thanks?c=${clickId}`);
  const px = await page.locator('#px').evaluate((img) => {
    const i = img as unknown as { complete: boolean; naturalWidth: number };
    return [i.complete, i.naturalWidth];
  });
  assert.deepEqual(px, [true, 1]);
  const signup = await recorded('signup-1');
  assert.deepEqual(
    [signup.status, signup.click_id, signup.goal, signup.source],
    ['pending', clickId, 'signup', 'pixel'],
  );
  await ctx.close();
});

test('the same page on an origin the key does not list (localhost, not 127.0.0.1) records nothing', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const click = await fetch(linkUrl, { redirect: 'manual' });
  const clickId = new URL(click.headers.get('location')!).searchParams.get('c')!;
  await page.goto(`http://localhost:${sitePort}/elsewhere?c=${clickId}`);
  assert.equal(await buy(page), 'error: Failed to fetch');
  // A preflighted request (JSON) from that page is refused before it is sent.
  const json = await page.evaluate(async (url) => {
    try {
      await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      return 'sent';
    } catch (e) {
      return String(e);
    }
  }, `${stack.tracker.url}/api/v1/track/conversion/browser?key=${key}`);
  assert.equal(json, 'TypeError: Failed to fetch');
  // Refused at the tracker's door (the POST carried the page's Origin): nothing reached the conversions stream.
  const metrics = await stack.tracker.registry.metrics();
  assert.match(metrics, /tracker_browser_conversions_total\{source="browser",outcome="origin_not_allowed"\} 1\n/);
  await ctx.close();
});

test('through the pipeline, a click converts only with its own advertiser’s key of its campaign’s mode', async () => {
  const { t, adv, tracker } = stack;
  const other = await t.user('advertiser');
  const origin = `http://127.0.0.1:${sitePort}`;
  const keyOf = async (token: string, mode: 'live' | 'test') => {
    const r = await t.call('post', '/publishable-keys', {
      token,
      body: { name: mode, mode, allowed_origins: [origin] },
    });
    return r.body.data.key as string;
  };
  const click = await fetch(linkUrl, { redirect: 'manual' });
  const clickId = new URL(click.headers.get('location')!).searchParams.get('c')!;
  const cases: Array<[string, string]> = [
    ['foreign-advertiser', await keyOf(other.token, 'live')],
    ['test-key-live-campaign', await keyOf(adv.token, 'test')],
  ];
  for (const [eventId, k] of cases) {
    const r = await fetch(`${tracker.url}/api/v1/track/conversion/browser?key=${k}`, {
      method: 'POST',
      headers: { origin, 'content-type': 'text/plain' },
      body: JSON.stringify({ click_id: clickId, goal: 'purchase', event_id: eventId }),
    });
    assert.equal(((await r.json()) as { data: { decision: string } }).data.decision, 'accepted', eventId);
    const row = await recorded(eventId);
    assert.deepEqual([row.status, row.campaign_id], ['rejected', null], eventId);
    const [why] = await t.env.sql`select reject_reason from conversions where event_id = ${eventId}`;
    assert.equal(why!.reject_reason, 'unknown_click', eventId);
  }
});

test('each conversion records its source (s2s, browser, pixel) in Postgres and ClickHouse, shown by GET /conversions', async () => {
  const { t, adv, tracker } = stack;
  const origin = `http://127.0.0.1:${sitePort}`;
  const clickId = async () => {
    const click = await fetch(linkUrl, { redirect: 'manual' });
    return new URL(click.headers.get('location')!).searchParams.get('c')!;
  };
  const pbt: string = (await t.call('post', '/postback-tokens', { token: adv.token })).body.data.token;
  const s2s = await fetch(`${tracker.url}/api/v1/track/conversion?click_id=${await clickId()}&event_id=src-s2s`, {
    headers: { 'x-postback-token': pbt },
  });
  assert.equal(s2s.status, 200, await s2s.text());
  const br = await fetch(`${tracker.url}/api/v1/track/conversion/browser?key=${key}`, {
    method: 'POST',
    headers: { origin, 'content-type': 'text/plain' },
    body: JSON.stringify({ click_id: await clickId(), goal: 'purchase', event_id: 'src-browser' }),
  });
  assert.equal(br.status, 200, await br.text());
  const px = await fetch(
    `${tracker.url}/api/v1/track/pixel?key=${key}&click_id=${await clickId()}&goal=signup&event_id=src-pixel`,
    { headers: { referer: `${origin}/thanks` } },
  );
  assert.equal(px.status, 200);
  const want = { 'src-s2s': 's2s', 'src-browser': 'browser', 'src-pixel': 'pixel' };
  const ids: Record<string, string> = {};
  for (const [eventId, source] of Object.entries(want)) {
    const row = await recorded(eventId);
    assert.deepEqual([row.status, row.campaign_id, row.source], ['pending', campaignId, source], eventId);
    ids[eventId] = String(row.id);
  }
  await waitFor('the sources in ClickHouse', async () => {
    const rows = await (
      await t.env.ch!.query({
        query: `SELECT event_id, source FROM conversions WHERE event_id LIKE 'src-%' AND sign = 1 ORDER BY event_id`,
        format: 'JSONEachRow',
      })
    ).json<{ event_id: string; source: string }>();
    return (
      JSON.stringify(Object.fromEntries(rows.map((r) => [r.event_id, r.source]))) ===
      JSON.stringify(Object.fromEntries(Object.entries(want).sort()))
    );
  });
  const list = await t.call('get', `/conversions?campaign_id=${campaignId}&per_page=100`, { token: adv.token });
  assert.equal(list.status, 200, list.text);
  const shown = new Map(list.body.data.map((c: { id: string; source: string }) => [c.id, c.source]));
  for (const [eventId, source] of Object.entries(want)) assert.equal(shown.get(ids[eventId]), source, eventId);
  const pixels = await t.call('get', `/conversions?campaign_id=${campaignId}&source=pixel&per_page=100`, {
    token: adv.token,
  });
  assert.ok(pixels.body.data.length >= 1);
  assert.ok(pixels.body.data.every((c: { source: string }) => c.source === 'pixel'));
  assert.ok(pixels.body.data.some((c: { id: string }) => c.id === ids['src-pixel']));
  const bad = await t.call('get', '/conversions?source=email', { token: adv.token });
  assert.equal(bad.body.error.code, 'VALIDATION_ERROR');
});
