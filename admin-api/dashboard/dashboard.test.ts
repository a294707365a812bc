/**
 * The dashboard in a real browser (Debian's chromium through playwright-core) against the real stack: the API with
 * ClickHouse and the ledger, a tracker and the pipeline (admin-api/test-helpers.ts startStack). One advertiser signs
 * in with 2FA, creates and activates a campaign; an affiliate joins it and copies its link; a click through that link
 * reaches the advertiser's live counter, a conversion its chart and table (and CSV); revoking the advertiser's
 * session signs the browser out through the SSE force-logout. No page may log a JavaScript or CSP error.
 * With DASHBOARD_SCREENSHOTS=1 it also saves the README's screenshots (admin-api/dashboard/screenshots/).
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { generate } from 'otplib';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { publishEvent } from '../../infra/index.ts';
import { launchBrowser, waitFor } from '../../infra/testing/index.ts';
import { activateCampaign, createBudgetedCampaign, type Stack, startStack } from '../test-helpers.ts';
import { auditPage, openPage, signInPage } from './browser-helpers.ts';
import { buildDashboard } from './build.ts';
import { DASHBOARD_CSP } from './serve.ts';

const SHOTS = process.env.DASHBOARD_SCREENSHOTS === '1' ? path.join(import.meta.dirname, 'screenshots') : undefined;
const UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0';

let s: Stack;
let browser: Browser;
let base: string;
let totpSecret: string;
const errors: string[] = [];
let adv: { ctx: BrowserContext; page: Page };
let aff: { ctx: BrowserContext; page: Page };
let admin: { ctx: BrowserContext; page: Page };
/** What the local receiver got: webhook and postback requests (method and URL). */
const received: string[] = [];
let receiver: Server;
let receiverUrl = '';
let linkCode = '';

const open = (tag: string) => openPage(browser, base, tag, errors);
const shot = (page: Page, name: string) => auditPage(page, name, SHOTS);
const signIn = (page: Page, email: string, password: string) => signInPage(page, base, email, password);

before(async () => {
  await buildDashboard();
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  receiver = createServer((req, res) => {
    received.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  // Links name a public tracker URL, as in production; the clicks below go to the test's tracker by code.
  s = await startStack({ deliveries: true, env: { PUBLIC_TRACKER_URL: 'https://trk.example.com' } });
  base = s.t.api.url;
  browser = await launchBrowser();
  // The advertiser turns 2FA on over the API, confirming with the previous time step's code so that the browser's
  // sign-in below can use the current one (each step is accepted once).
  const setup = await s.t.call('post', '/auth/2fa/setup', { token: s.adv.token });
  totpSecret = setup.body.data.secret;
  const code = await generate({ secret: totpSecret, epoch: Math.floor(Date.now() / 1000) - 30 });
  const on = await s.t.call('post', '/auth/2fa/verify', { token: s.adv.token, body: { code } });
  assert.equal(on.status, 200, on.text);
  adv = await open('adv');
  aff = await open('aff');
  admin = await open('admin');
});

after(async () => {
  await browser?.close();
  await s?.close();
  receiver?.close();
});

test('the page is served with hashed, immutable files and a strict CSP', async () => {
  const r = await fetch(`${base}/dashboard/`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-security-policy'), DASHBOARD_CSP);
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  const html = await r.text();
  assert.doesNotMatch(html, /<script>|<style>|\sstyle=|\son\w+=/, 'no inline script or style');
  const js = /src="assets\/(app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
  assert.ok(js, html);
  const a = await fetch(`${base}/dashboard/assets/${js}`);
  assert.equal(a.status, 200);
  assert.equal(a.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.match(a.headers.get('content-type') ?? '', /javascript/);
  assert.equal((await fetch(`${base}/dashboard/assets/..%2fmanifest.json`)).status, 404);
  assert.equal((await fetch(`${base}/`, { redirect: 'manual' })).headers.get('location'), '/dashboard/');
});

test('the advertiser signs in with a TOTP code', async () => {
  const { page } = adv;
  await signIn(page, s.adv.email, s.adv.password);
  await page.getByRole('heading', { name: 'Two-factor sign-in' }).waitFor();
  await shot(page, 'sign-in-2fa');
  await page.getByLabel('Code').fill(await generate({ secret: totpSecret }));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  const nav = (await page.getByRole('navigation', { name: 'Main' }).textContent()) ?? '';
  for (const p of ['Overview', 'Reports', 'Campaigns', 'Websites', 'Conversions', 'Wallet', 'Postback tokens'])
    assert.ok(nav.includes(p), `${p} in ${nav}`);
  assert.ok(!nav.includes('Links') && !nav.includes('Withdrawals'), nav);
  // The access token is in memory only: nothing in storage, and the refresh cookie is HTTP-only.
  assert.equal(await page.evaluate('localStorage.length + sessionStorage.length'), 0);
  assert.equal(await page.evaluate('document.cookie'), '');
});

test('the advertiser submits a website, an admin approves it, and the advertiser sees it approved', async () => {
  const { page } = adv;
  await page.getByRole('link', { name: 'Websites' }).click();
  await page.getByLabel('URL').fill('https://blog.example.com');
  await page.getByLabel('Name').fill('Blog');
  await page.getByRole('button', { name: 'Submit for approval' }).click();
  await page.getByRole('cell', { name: 'pending' }).waitFor();
  await shot(page, 'websites');
  await signIn(admin.page, s.admin.email, s.admin.password);
  const nav = (await admin.page.getByRole('navigation', { name: 'Main' }).textContent()) ?? '';
  for (const p of ['Websites', 'Withdrawals', 'Deliveries & alerts', 'Campaigns']) assert.ok(nav.includes(p), nav);
  await admin.page.getByRole('link', { name: 'Websites' }).click();
  await admin.page.getByRole('button', { name: 'Approve Blog' }).waitFor();
  await shot(admin.page, 'admin-websites');
  await admin.page.getByRole('button', { name: 'Approve Blog' }).click();
  await admin.page.getByText('No data', { exact: false }).or(admin.page.getByText('Nothing yet.')).first().waitFor();
  await page.reload();
  await page.getByRole('row', { name: /Blog.*approved/ }).waitFor();
});

test('the advertiser creates a campaign and activates it', async () => {
  const { page } = adv;
  await page.getByRole('link', { name: 'Campaigns' }).click();
  await page.getByRole('button', { name: 'New campaign' }).click();
  await page.getByLabel('Website (approved)').selectOption({ label: 'Shop' });
  await page.getByLabel('Name').fill('Browser sale');
  await page.getByLabel('Destination URL').fill('https://shop.example.com/landing?c={click_id}&s1={sub1}');
  await page.getByLabel('Payout (USD)', { exact: true }).fill('7');
  await page.getByLabel('Revenue (USD)', { exact: true }).fill('10');
  await page.getByLabel('Budget (USD, empty = none)').fill('100');
  await page.getByLabel('desktop').check();
  await shot(page, 'campaign-form');
  await page.getByRole('button', { name: 'Create campaign' }).click();
  await page.getByRole('heading', { name: 'Browser sale' }).waitFor();
  assert.equal(await page.getByTestId('campaign-status').textContent(), 'draft');
  await page.getByRole('button', { name: 'Activate' }).click();
  await waitFor('campaign active', async () => (await page.getByTestId('campaign-status').textContent()) === 'active');
  // Edit: a daily cap and the attribution window, saved with PATCH (a country list would turn away the test's click,
  // whose documentation-range address has no country).
  await page.getByRole('button', { name: 'Edit' }).click();
  await page.getByLabel('Daily cap (USD, empty = none)').fill('20');
  await page.getByLabel('Attribution window (days)').fill('14');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('button', { name: 'Edit' }).waitFor();
  const list = await s.t.call('get', '/campaigns', { token: s.adv.token });
  const c = list.body.data.find((x: { name: string }) => x.name === 'Browser sale');
  assert.equal(c.status, 'active');
  assert.deepEqual(
    [c.payout, c.revenue, c.budget, c.daily_cap, c.attribution_window_days, c.allowed_devices],
    [700, 1000, 10_000, 2000, 14, ['desktop']],
  );
});

test('an affiliate joins the campaign and copies its link (with a QR code)', async () => {
  const { page } = aff;
  // By keyboard only: Tab to each field, Enter submits; then the skip link leads past the navigation to the content.
  await page.goto(`${base}/dashboard/`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await shot(page, 'sign-in');
  await page.keyboard.press('Tab');
  await page.keyboard.type(s.aff.email);
  await page.keyboard.press('Tab');
  await page.keyboard.type(s.aff.password);
  await page.keyboard.press('Enter');
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate('document.activeElement.textContent'), 'Skip to content');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate('document.activeElement.id'), 'main');
  await page.getByRole('link', { name: 'Campaigns' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Campaigns', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Join Browser sale' }).click();
  await page.getByRole('link', { name: 'Your links' }).first().waitFor();
  await page.getByRole('link', { name: 'Links', exact: true }).click();
  const copy = page.getByRole('button', { name: /^Copy / });
  await copy.first().waitFor();
  await page.getByTestId('qr').first().waitFor();
  await shot(page, 'affiliate-links');
  await copy.first().click();
  await page.getByText('Copied').waitFor();
  const copied = await page.evaluate<string>('navigator.clipboard.readText()');
  const shown = (await page.getByTestId('link-url').first().textContent()) ?? '';
  assert.equal(copied, shown);
  linkCode = /\/c\/([A-Za-z0-9_-]+)$/.exec(copied)?.[1] ?? '';
  assert.ok(linkCode, copied);
});

test('the affiliate asks to join a private campaign by id; the advertiser approves it; its link appears', async () => {
  const site = (await s.t.call('get', '/websites?status=approved', { token: s.adv.token })).body.data[0].id;
  const id = await createBudgetedCampaign(s.t, s.adv, site, null, { name: 'Private deal', visibility: 'private' });
  await activateCampaign(s.t, s.adv, id);
  await aff.page.getByRole('link', { name: 'Campaigns' }).click();
  await aff.page.getByLabel('Campaign id (a private campaign you were given)').fill(String(id));
  await aff.page.getByRole('button', { name: 'Ask to join' }).click();
  await aff.page.getByText('Request sent: the advertiser decides.').waitFor();
  const { page } = adv;
  await page.goto(`${base}/dashboard/#/campaigns/${id}`);
  await page.getByRole('button', { name: /^Approve affiliate / }).click();
  await page.getByRole('row', { name: /affiliate .*approved/ }).waitFor();
  await shot(page, 'campaign-affiliates');
  await aff.page.getByRole('link', { name: 'Links', exact: true }).click();
  await waitFor('two links', async () => (await aff.page.getByTestId('link-url').count()) === 2);
});

test('the affiliate adds a postback; the advertiser adds a webhook, sends a test and replays it from the log', async () => {
  await aff.page.getByRole('link', { name: 'Postbacks' }).click();
  await aff.page.getByLabel('URL template').fill(`${receiverUrl}/postback?click={click_id}&payout={payout}`);
  // A conversion a second after its click is flagged by the fraud rules; this postback fires for those too.
  await aff.page.getByLabel('Also fire for fraud-flagged conversions').check();
  await aff.page.getByRole('button', { name: 'Create postback' }).click();
  await aff.page.getByRole('button', { name: /^Fire log of / }).waitFor();
  const { page } = adv;
  await page.getByRole('link', { name: 'Webhooks' }).click();
  await page.getByLabel('Endpoint URL').fill(`${receiverUrl}/hook`);
  await page.getByRole('button', { name: 'Create webhook' }).click();
  await page.getByText(/Signing secret \(shown once\): whsec_/).waitFor();
  await page.getByRole('button', { name: /^Send a test to / }).click();
  await waitFor('the test webhook delivered', async () => received.some((r) => r === 'POST /hook'));
  await page.getByRole('button', { name: /^Delivery log of / }).click();
  await page
    .getByRole('cell', { name: /succeeded/ })
    .first()
    .waitFor();
  await page
    .getByRole('button', { name: /^Replay delivery / })
    .first()
    .click();
  await waitFor('the replayed webhook', async () => received.filter((r) => r === 'POST /hook').length >= 2);
  await shot(page, 'webhooks');
});

test("a click through the link shows in the advertiser's live counter, a conversion in the chart and table", async () => {
  const { page } = adv;
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.getByTestId('today-clicks').waitFor();
  assert.equal(await page.getByTestId('live-clicks').textContent(), '0');
  // The link's URL names the public tracker host; the test's tracker listens on a port of its own.
  const click = await fetch(`${s.tracker.url}/c/${linkCode}?sub1=browser`, {
    redirect: 'manual',
    headers: { 'user-agent': UA, 'x-forwarded-for': '198.51.100.7' },
  });
  assert.equal(click.status, 302, `${linkCode}: ${await click.text()}`);
  const clickId = /[?&]c=([0-9a-f-]+)/.exec(click.headers.get('location') ?? '')![1]!;
  await waitFor(
    'the click in the live counter',
    async () => (await page.getByTestId('live-clicks').textContent()) === '1',
    {
      timeoutMs: 20_000,
    },
  );
  const token = (await s.t.call('post', '/postback-tokens', { token: s.adv.token })).body.data.token;
  const conv = await fetch(
    `${s.tracker.url}/api/v1/track/conversion?click_id=${clickId}&event_id=browser-1&status=approved`,
    { headers: { 'x-postback-token': token } },
  );
  assert.equal(conv.status, 200, await conv.text());
  // The live feed gets the conversion event, and the counter follows it.
  await page.getByTestId('feed').getByText('conversion.created').waitFor({ timeout: 20_000 });
  await waitFor(
    'the conversion in the live counter',
    async () => (await page.getByTestId('live-conversions').textContent()) === '1',
    {
      timeoutMs: 20_000,
    },
  );
  await shot(page, 'overview-live');
  await page.getByRole('link', { name: 'Reports' }).click();
  const caption = page.getByTestId('chart-caption');
  await caption.waitFor();
  assert.match((await caption.textContent()) ?? '', /: 1 clicks, 1 conversions, revenue 10\.00 USD, payout 7\.00 USD/);
  assert.equal(await page.getByTestId('chart').locator('canvas').count(), 1);
  const row = page.getByRole('row', { name: /Browser sale|^\s*\d+/ }).filter({ hasText: '$10.00' });
  await row.first().waitFor();
  const cells = await row.first().getByRole('cell').allInnerTexts();
  // campaign, clicks, unique, invalid, conversions, CR, revenue, payout, EPC
  assert.deepEqual(cells.slice(1), ['1', '1', '0', '1', '100.00 %', '$10.00', '$7.00', '$7.00']);
  await shot(page, 'reports');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download CSV' }).click(),
  ]);
  const csv = readFileSync((await download.path())!, 'utf8');
  assert.match(csv, /^key,currency,clicks,unique_clicks,invalid_clicks,bot_clicks,conversions,cr,revenue,payout/);
  assert.match(csv, /,USD,1,1,0,0,1,1,1000,700,300,700\r\n/);
});

test("the affiliate's postback fired (fire log); the advertiser reverses the conversion", async () => {
  await waitFor('the postback fired', async () => received.some((r) => r.startsWith('GET /postback?click=')), {
    timeoutMs: 20_000,
  }).catch((e) => assert.fail(`${e}: ${JSON.stringify(received)}`));
  assert.ok(
    received.some((r) => /^GET \/postback\?click=[0-9a-f-]{36}&payout=700$/.test(r)),
    JSON.stringify(received),
  );
  await aff.page.getByRole('button', { name: /^Fire log of / }).click();
  await aff.page
    .getByRole('cell', { name: /succeeded/ })
    .first()
    .waitFor();
  const { page } = adv;
  await page.getByRole('link', { name: 'Conversions' }).click();
  await page.getByRole('row', { name: /browser-1.*approved/ }).waitFor();
  await shot(page, 'conversions');
  await page.getByLabel('Reason for browser-1').fill('chargeback');
  await page.getByRole('button', { name: 'Reverse browser-1' }).click();
  await page.getByRole('row', { name: /browser-1.*reversed/ }).waitFor();
});

test('the advertiser makes a postback token and a deposit; the wallet lists balances and postings', async () => {
  const { page } = adv;
  await page.getByRole('link', { name: 'Postback tokens' }).click();
  await page.getByRole('button', { name: 'New token' }).click();
  assert.match((await page.getByTestId('new-token').textContent()) ?? '', /^\S{20,}$/);
  await page
    .getByRole('button', { name: /^Revoke token / })
    .first()
    .waitFor();
  await page.getByRole('link', { name: 'Wallet' }).click();
  await page.getByLabel('Amount (USD)').fill('50');
  await page.getByLabel('Reference').fill('browser deposit');
  await page.getByRole('button', { name: 'Deposit' }).click();
  await page.getByText('Deposit credited.').waitFor();
  const deposits = await s.t.call('get', '/wallet/transactions?type=deposit', { token: s.adv.token });
  assert.equal(deposits.body.meta.total, 2, deposits.text);
  await page.getByRole('cell', { name: 'available $50.00', exact: true }).waitFor();
  await shot(page, 'wallet');
});

test('the affiliate adds a payout wallet, sees its balances, and ends its own session from the sessions list', async () => {
  const { page } = aff;
  await page.getByRole('link', { name: 'Wallet' }).click();
  await page.getByRole('table', { name: 'Balances' }).waitFor();
  await page.getByLabel('Address').fill('0x52908400098527886E0F7030069857D2E4169EE7');
  await page.getByRole('button', { name: 'Add wallet' }).click();
  await page.getByRole('cell', { name: '0x52908400098527886E0F7030069857D2E4169EE7', exact: true }).waitFor();
  await shot(page, 'affiliate-wallet');
  await page.getByRole('link', { name: 'Account' }).click();
  await page.getByRole('cell', { name: 'HeadlessChrome', exact: false }).first().waitFor();
  await shot(page, 'account-sessions');
  await page.getByRole('button', { name: 'Revoke this session (signs you out)' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: 20_000 });
  await page.getByText('You ended this session.').waitFor();
});

test('the admin sees users, withdrawals, the delivery queue, every campaign; sets up 2FA; signs in with a backup code', async () => {
  const { page } = admin;
  await page.getByRole('link', { name: 'Users' }).click();
  await page.getByLabel('Role').selectOption('advertiser');
  await page.getByRole('row', { name: new RegExp(`${s.adv.email}.*advertiser.*active.*on`) }).waitFor();
  await shot(page, 'admin-users');
  await page.getByRole('link', { name: 'Withdrawals' }).click();
  await page.getByRole('table', { name: 'Withdrawals' }).waitFor();
  await page.getByRole('link', { name: 'Deliveries & alerts' }).click();
  await page.getByRole('cell', { name: `${receiverUrl}/hook`, exact: true }).waitFor();
  // An alert published on the live bus (as the delivery engine does past its threshold) shows up at once.
  await publishEvent(s.t.env.redis, s.t.env.keys, {
    id: 'alert-1',
    type: 'delivery.queue_alert',
    created_at: new Date().toISOString(),
    user_ids: [],
    data: { pending: 250, threshold: 100 },
  });
  await page.getByText('delivery.queue_alert').waitFor();
  await page.getByText('pending: 250, threshold: 100').waitFor();
  await page.getByRole('button', { name: `Log of ${receiverUrl}/hook` }).click();
  await page
    .getByRole('cell', { name: /succeeded/ })
    .first()
    .waitFor();
  await shot(page, 'admin-deliveries');
  await page.getByRole('link', { name: 'Campaigns' }).click();
  await page.getByRole('link', { name: 'Browser sale' }).waitFor();
  // 2FA set up in the page, then a sign-in with one of its backup codes.
  await page.getByRole('link', { name: 'Account' }).click();
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  await page.getByRole('img', { name: /^QR code of otpauth:/ }).waitFor();
  const secret = (await page.locator('p code').first().textContent()) ?? '';
  const backup = (await page.locator('.codes code').first().textContent()) ?? '';
  await page.getByLabel('Code from the app').fill(await generate({ secret }));
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.getByText('Two-factor authentication is on.').waitFor();
  await page.getByRole('button', { name: 'Sign out' }).first().click();
  await page.getByText('You are signed out.').waitFor();
  await page.getByLabel('Email').fill(s.admin.email);
  await page.getByLabel('Password').fill(s.admin.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('Code').fill(backup);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).first().click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByText('You are signed out.').waitFor();
});

test('an analyst gets the overview, reports, own activity and account only, and reads the network-wide report', async () => {
  const analyst = await s.t.user('analyst');
  const { page } = aff;
  await signIn(page, analyst.email, analyst.password);
  const nav = (await page.getByRole('navigation', { name: 'Main' }).textContent()) ?? '';
  assert.equal(nav, 'OverviewReportsMy activityAccount');
  await page.getByRole('link', { name: 'Reports' }).click();
  await page.getByRole('row', { name: /^2 1 1 0 0 / }).waitFor();
  await shot(page, 'analyst-reports');
});

test('revoking the session elsewhere signs the browser out (SSE force-logout)', async () => {
  const { page } = adv;
  const sessions = await s.t.call('get', '/auth/sessions', { token: s.adv.token });
  const browserSession = sessions.body.data.find((x: { current: boolean }) => !x.current);
  assert.ok(browserSession, sessions.text);
  const r = await s.t.call('delete', `/auth/sessions/${browserSession.id}`, { token: s.adv.token });
  assert.equal(r.status, 200, r.text);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: 20_000 });
  await page.getByText('Your session was ended').waitFor();
  // Reloading does not bring the session back: the refresh cookie belongs to the revoked session.
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
});

test('no page logged a JavaScript or CSP error', () => {
  assert.deepEqual(errors, []);
});
