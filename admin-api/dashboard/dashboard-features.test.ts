/**
 * The dashboard's later features in a real browser (Debian's chromium through playwright-core) against the real stack
 * (admin-api/test-helpers.ts startStack), beside dashboard.test.ts: the campaign form's caps, time zone and recurring
 * terms (read back over the API), an affiliate's caps on a campaign, landing pages and a link's pin, publishable keys
 * with their snippet, the postback IP allowlist, and the audit log (own rows; the admin's filtered log with paging).
 * Every view is audited (labels, names, contrast) and no page may log a JavaScript or CSP error.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchBrowser, waitFor } from '../../infra/testing/index.ts';
import { type Stack, startStack } from '../test-helpers.ts';
import { auditPage, openPage, signInPage } from './browser-helpers.ts';
import { buildDashboard } from './build.ts';

const UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0';

let s: Stack;
let browser: Browser;
let base: string;
const errors: string[] = [];
let adv: { ctx: BrowserContext; page: Page };
let aff: { ctx: BrowserContext; page: Page };
let admin: { ctx: BrowserContext; page: Page };

// Audited only: the README's screenshots come from dashboard.test.ts.
const shot = (page: Page, name: string) => auditPage(page, name);
const signIn = async (page: Page, email: string, password: string) => {
  await signInPage(page, base, email, password);
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
};

before(async () => {
  await buildDashboard();
  s = await startStack({ env: { PUBLIC_TRACKER_URL: 'https://trk.example.com' } });
  base = s.t.api.url;
  browser = await launchBrowser();
  adv = await openPage(browser, base, 'adv', errors);
  aff = await openPage(browser, base, 'aff', errors);
  admin = await openPage(browser, base, 'admin', errors);
  const join = await s.t.call('post', `/campaigns/${s.campaignId}/join`, { token: s.aff.token });
  assert.equal(join.status, 201, join.text);
  await signIn(adv.page, s.adv.email, s.adv.password);
  await signIn(aff.page, s.aff.email, s.aff.password);
  await signIn(admin.page, s.admin.email, s.admin.password);
});

after(async () => {
  await browser?.close();
  await s?.close();
});

test('the advertiser creates a campaign with caps, a time zone and recurring terms; the API has them exactly', async () => {
  const { page } = adv;
  await page.getByRole('link', { name: 'Campaigns' }).click();
  await page.getByRole('button', { name: 'New campaign' }).click();
  await page.getByLabel('Website (approved)').selectOption({ index: 1 });
  await page.getByLabel('Name').fill('Capped sale');
  await page.getByLabel('Destination URL').fill('https://shop.example.com/landing?c={click_id}');
  await page.getByLabel('Payout (USD)', { exact: true }).fill('5');
  await page.getByLabel('Revenue (USD)', { exact: true }).fill('8');
  await page.getByLabel('Time zone of daily caps').fill('Europe/Berlin');
  await page.getByLabel('Daily click cap').fill('1000');
  await page.getByLabel('Total click cap').fill('50000');
  await page.getByLabel('Daily conversion cap').fill('20');
  await page.getByLabel('Recurring commission (% of each renewal, empty = not paid)').fill('12.5');
  await page.getByLabel('Recurring months (empty = for ever)').fill('12');
  await shot(page, 'campaign-form-caps');
  // A cap that is not a whole number is refused in the page, before anything is sent.
  await page.getByLabel('Total conversion cap').fill('2.5');
  await page.getByRole('button', { name: 'Create campaign' }).click();
  await page.getByRole('alert').getByText('Total conversion cap: a whole number of at least 1, or empty').waitFor();
  await page.getByLabel('Total conversion cap').fill('');
  await page.getByRole('button', { name: 'Create campaign' }).click();
  await page.getByRole('heading', { name: 'Capped sale' }).waitFor();
  const id = Number(/#\/campaigns\/(\d+)/.exec(page.url())?.[1]);
  const c = (await s.t.call('get', `/campaigns/${id}`, { token: s.adv.token })).body.data;
  const pick = (x: Record<string, unknown>) =>
    [
      'time_zone',
      'click_cap_daily',
      'click_cap_total',
      'conversion_cap_daily',
      'conversion_cap_total',
      'recurring_percent_bp',
      'recurring_months',
    ].map((k) => x[k]);
  assert.deepEqual(pick(c), ['Europe/Berlin', 1000, 50_000, 20, null, 1250, 12]);
  // Edit: the form shows them in human units; clearing a cap sends null, a new zone is kept.
  await page.getByRole('button', { name: 'Edit' }).click();
  assert.equal(
    await page.getByLabel('Recurring commission (% of each renewal, empty = not paid)').inputValue(),
    '12.5',
  );
  await page.getByLabel('Daily click cap').fill('');
  await page.getByLabel('Time zone of daily caps').fill('America/New_York');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('button', { name: 'Edit' }).waitFor();
  const e = (await s.t.call('get', `/campaigns/${id}`, { token: s.adv.token })).body.data;
  assert.deepEqual(pick(e), ['America/New_York', null, 50_000, 20, null, 1250, 12]);
});

test("the advertiser sets an affiliate's caps on a campaign", async () => {
  const { page } = adv;
  await page.goto(`${base}/dashboard/#/campaigns/${s.campaignId}`);
  await page.getByRole('button', { name: /^Set caps of / }).click();
  await page.getByLabel(/^Daily clicks cap of /).fill('300');
  await page.getByLabel(/^Total conversions cap of /).fill('40');
  await page.getByRole('button', { name: 'Save caps' }).click();
  await page.getByText('Caps saved.').waitFor();
  await page.getByTestId(`caps-${s.aff.id}`).getByText('daily clicks 300, total conversions 40').waitFor();
  await shot(page, 'campaign-affiliate-caps');
  const list = await s.t.call('get', `/campaigns/${s.campaignId}/affiliates`, { token: s.adv.token });
  const m = list.body.data.find((x: { affiliate_id: number }) => x.affiliate_id === s.aff.id);
  assert.deepEqual(
    [m.click_cap_daily, m.click_cap_total, m.conversion_cap_daily, m.conversion_cap_total],
    [300, null, null, 40],
  );
});

test('the advertiser adds landing pages and edits a weight; the affiliate pins one; reports group by landing page', async () => {
  const { page } = adv;
  await page.goto(`${base}/dashboard/#/campaigns/${s.campaignId}`);
  await page.getByText('No landing page: clicks go to the destination URL.').waitFor();
  const add = async (name: string, url: string, weight: string, listed = true) => {
    await page.getByLabel('Name of new landing page').fill(name);
    await page.getByLabel('URL of new landing page').fill(url);
    await page.getByLabel('Weight of new landing page').fill(weight);
    await page.getByRole('button', { name: 'Add landing page' }).click();
    if (listed) await page.getByRole('row', { name: new RegExp(`^${name} \\(#\\d+\\)`) }).waitFor();
  };
  await add('Variant A', 'https://shop.example.com/a?c={click_id}', '3');
  await add('Variant B', 'https://shop.example.com/b?c={click_id}', '1');
  await page.getByRole('row', { name: /Variant A .* 3 75\.0 % active/ }).waitFor();
  await page.getByRole('row', { name: /Variant B .* 1 25\.0 % active/ }).waitFor();
  // A page on another host is refused by the API, and the page says why.
  await add('Elsewhere', 'https://elsewhere.example.org/x', '1', false);
  await page
    .getByRole('alert')
    .filter({ hasText: /approved|host/i })
    .first()
    .waitFor();
  await page.getByRole('button', { name: 'Edit Variant B' }).click();
  await page.getByLabel('Weight of landing page Variant B').fill('3');
  await page.getByRole('button', { name: 'Save page' }).click();
  await page.getByRole('row', { name: /Variant B .* 3 50\.0 % active/ }).waitFor();
  await shot(page, 'campaign-landing-pages');
  const pages = (await s.t.call('get', `/campaigns/${s.campaignId}/landing-pages`, { token: s.adv.token })).body.data;
  const b = pages.find((x: { name: string }) => x.name === 'Variant B');
  assert.deepEqual(
    pages.map((x: { name: string; weight: number }) => [x.name, x.weight]),
    [
      ['Variant A', 3],
      ['Variant B', 3],
    ],
  );

  // The affiliate pins Variant B on its link: every click of the link lands there.
  await aff.page.getByRole('link', { name: 'Links', exact: true }).click();
  const pin = aff.page.getByLabel(/^Landing page of /).first();
  await pin.selectOption({ label: `Variant B (#${b.id})` });
  await aff.page.getByText('Pinned.').waitFor();
  await shot(aff.page, 'affiliate-links-pin');
  const link = (await s.t.call('get', '/affiliate/links', { token: s.aff.token })).body.data[0];
  assert.equal(link.landing_page_id, b.id);
  const click = await fetch(`${s.tracker.url}/c/${link.code}`, {
    redirect: 'manual',
    headers: { 'user-agent': UA, 'x-forwarded-for': '198.51.100.7' },
  });
  assert.equal(click.status, 302, await click.text());
  assert.match(click.headers.get('location') ?? '', /^https:\/\/shop\.example\.com\/b\?c=/);

  // The advertiser archives Variant A; its report by landing page shows the click on Variant B.
  await page.getByRole('button', { name: 'Archive Variant A' }).click();
  await page.getByRole('row', { name: /Variant A .* archived/ }).waitFor();
  await page.getByRole('link', { name: 'Reports' }).click();
  await page.getByLabel('Group by').selectOption({ label: 'Landing page' });
  await waitFor(
    'the click in the report by landing page',
    async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      return (await page.getByRole('row', { name: new RegExp(`^landing page #${b.id} 1 `) }).count()) === 1;
    },
    { timeoutMs: 20_000 },
  );
});

test('the advertiser creates a publishable key, sees its snippet, edits its origins and revokes it', async () => {
  const { page } = adv;
  await page.getByRole('link', { name: 'Publishable keys' }).click();
  await page.getByText('No publishable key yet.').waitFor();
  await page.getByLabel('Key name').fill('checkout');
  await page.getByLabel('Allowed origins', { exact: true }).fill('ftp://shop.example.com');
  await page.getByRole('button', { name: 'Create key' }).click();
  await page
    .getByRole('alert')
    .getByText(/must be an origin such as/)
    .waitFor();
  await page.getByLabel('Allowed origins', { exact: true }).fill('https://Shop.Example.com/\nhttp://127.0.0.1:8080');
  await page.getByRole('button', { name: 'Create key' }).click();
  const snippet = page.getByTestId('snippet');
  await snippet.waitFor();
  const keys = (await s.t.call('get', '/publishable-keys', { token: s.adv.token })).body.data;
  assert.equal(keys.length, 1);
  assert.match(keys[0].key, /^pk_live_/);
  assert.deepEqual(keys[0].allowed_origins, ['https://shop.example.com', 'http://127.0.0.1:8080']);
  await page.getByRole('row', { name: new RegExp(`checkout ${keys[0].key} live`) }).waitFor();
  await page.getByLabel('Tracker URL').fill('https://trk.example.com/');
  assert.equal(
    await snippet.textContent(),
    `<script src="https://trk.example.com/s.js" data-key="${keys[0].key}" data-param="click_id"></script>`,
  );
  await page.getByRole('button', { name: 'Copy the script tag of checkout' }).click();
  assert.equal(await page.evaluate<string>('navigator.clipboard.readText()'), await snippet.textContent());
  await shot(page, 'publishable-keys');
  await page.getByRole('button', { name: 'Edit origins of checkout' }).click();
  await page.getByLabel('Allowed origins of checkout').fill('https://shop.example.com\nhttps://pay.example.com');
  await page.getByRole('button', { name: 'Save origins' }).click();
  await page.getByRole('cell', { name: 'https://shop.example.com, https://pay.example.com', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Revoke checkout' }).click();
  await page.getByRole('button', { name: 'Revoke checkout' }).waitFor({ state: 'detached' });
  assert.equal(await snippet.count(), 0, 'no snippet for a revoked key');
  const after = (await s.t.call('get', '/publishable-keys', { token: s.adv.token })).body.data[0];
  assert.deepEqual(after.allowed_origins, ['https://shop.example.com', 'https://pay.example.com']);
  assert.ok(after.revoked_at, JSON.stringify(after));
});

test('the advertiser sets a postback IP allowlist and sees the postback it refused', async () => {
  const { page } = adv;
  await page.getByRole('link', { name: 'Postback tokens' }).click();
  await page.getByText('No postback was refused.').waitFor();
  await page.getByLabel('Allowed addresses').fill('203.0.113.7\n198.51.100.0/24\n2001:DB8::/32');
  await page.getByRole('button', { name: 'Save allowlist' }).click();
  await page.getByText('Allowlist saved: postbacks only from 203.0.113.7, 198.51.100.0/24, 2001:db8::/32.').waitFor();
  const list = (await s.t.call('get', '/postback-allowlist', { token: s.adv.token })).body.data;
  assert.deepEqual(list.entries, ['203.0.113.7', '198.51.100.0/24', '2001:db8::/32']);
  // A postback from the test's own address (127.0.0.1, not listed) is refused by the tracker and listed here.
  const token = (await s.t.call('post', '/postback-tokens', { token: s.adv.token })).body.data.token;
  const r = await fetch(`${s.tracker.url}/api/v1/track/conversion?click_id=00000000-0000-4000-8000-000000000000`, {
    headers: { 'x-postback-token': token },
  });
  assert.equal(r.status, 403, await r.text());
  await waitFor('the refusal listed', async () => {
    await page.getByRole('button', { name: 'Refresh refusals' }).click();
    return (await page.getByRole('row', { name: new RegExp(`127\\.0\\.0\\.1 ${token.slice(0, 8)}`) }).count()) === 1;
  });
  await shot(page, 'postback-allowlist');
});

test("each user sees its own audited calls in My activity; another user's are not there", async () => {
  const { page } = adv;
  await page.getByRole('link', { name: 'My activity' }).click();
  const table = page.getByRole('table', { name: 'Your activity, newest first' });
  await table.getByRole('row', { name: /PUT \/api\/v1\/postback-allowlist 200 127\.0\.0\.1/ }).waitFor();
  await table.getByRole('row', { name: /POST \/api\/v1\/publishable-keys 400 .*"error":"VALIDATION_ERROR"/ }).waitFor();
  await page.getByLabel('Action').fill('DELETE /api/v1/publishable-keys/:id');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByTestId('audit-count').getByText('1 row', { exact: true }).waitFor();
  await table.getByRole('row', { name: /DELETE \/api\/v1\/publishable-keys\/:id publishable-keys \d+ 200/ }).waitFor();
  await shot(page, 'my-activity');
  await aff.page.getByRole('link', { name: 'My activity' }).click();
  await aff.page.getByRole('row', { name: /PATCH \/api\/v1\/affiliate\/links\/:id links \d+ 200/ }).waitFor();
  await aff.page.getByLabel('Action').fill('PUT /api/v1/postback-allowlist');
  await aff.page.getByRole('button', { name: 'Apply filters' }).click();
  await aff.page.getByText('No audited call matches.').waitFor();
});

test('the admin filters the whole audit log by user and action, and pages through it with Load more', async () => {
  const { page } = admin;
  const nav = (await page.getByRole('navigation', { name: 'Main' }).textContent()) ?? '';
  assert.ok(nav.includes('Audit log') && nav.includes('My activity'), nav);
  await page.getByRole('link', { name: 'Audit log' }).click();
  const count = page.getByTestId('audit-count');
  await page.getByLabel('User id').fill(String(s.adv.id));
  await page.getByLabel('Rows per page').selectOption('10');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await count.getByText('10 rows (more older rows)').waitFor();
  const all = (await s.t.call('get', `/audit-log?user_id=${s.adv.id}&limit=100`, { token: s.admin.token })).body.data;
  assert.ok(all.length > 10, `${all.length} rows`);
  await page.getByRole('button', { name: 'Load more' }).click();
  const shown = Math.min(20, all.length);
  await count.getByText(new RegExp(`^${shown} rows`)).waitFor();
  // The page shows the API's rows in its order: newest first, no row twice across the pages.
  const table = page.getByRole('table', { name: 'Audit log, newest first' });
  const actions = await table.locator('tbody tr td:nth-child(3)').allInnerTexts();
  assert.deepEqual(
    actions,
    all.slice(0, shown).map((r: { action: string }) => r.action),
  );
  await page.getByLabel('Action').fill('POST /api/v1/campaigns/:id/landing-pages');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await count.getByText('3 rows', { exact: true }).waitFor();
  const statuses = await table.locator('tbody tr td:nth-child(5)').allInnerTexts();
  assert.deepEqual(statuses, ['422', '201', '201']);
  await shot(page, 'admin-audit-log');
});

test('no page logged a JavaScript or CSP error', () => {
  // The refusals the tests provoke on purpose are network logs of their 4xx answers, not script errors.
  const provoked = [/status of 422 .*\/landing-pages\)$/, /status of 400 .*\/publishable-keys\)$/];
  assert.deepEqual(
    errors.filter((e) => !provoked.some((r) => r.test(e))),
    [],
  );
});
