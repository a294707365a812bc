/**
 * Targeting at the redirect (issue 16, item 2) over the real tracker, Redis and Postgres: countries (GeoIP of the
 * client IP, here from a trusted X-Forwarded-For sent over loopback), devices, OS and browser families. A click outside
 * its campaign's targeting goes to the campaign's fallback, else DEFAULT_FALLBACK_URL, and is recorded with its
 * `*_mismatch` reason; a campaign without targeting is untouched.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { publishLinkInvalidation } from '../../infra/index.ts';
import { makeCampaign } from '../../infra/testing/index.ts';
import type { ClickEvent } from '../events.ts';
import { geoIp } from '../geo/geoip.ts';
import { startTracker } from './server.ts';
import { browserFamily, compileTargeting, osFamily, TargetingCheck } from './targeting.ts';
import { cfg, clicks, env, get, keys, logger, s, useTracker } from './test-helpers.ts';

useTracker();

const UA = {
  iphone:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  ipad: 'Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  android:
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
  windowsChrome:
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  linuxFirefox: 'Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0',
  macEdge:
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0',
};

/** A targeted campaign of the seeded advertiser with one link `code` of the seeded affiliate. */
async function targeted(code: string, columns: Record<string, unknown>): Promise<number> {
  const id = await makeCampaign(env.sql, s.advertiser, {
    name: code,
    destination_url: `https://shop.example/${code}?cid={click_id}`,
    status: 'active',
    ...columns,
  });
  await env.sql`insert into links (code, campaign_id, affiliate_id) values (${code}, ${id}, ${s.affiliate})`;
  return id;
}

/** Clicks `code` (X-Forwarded-For `ip` when given) and returns the Location and the recorded click. */
async function click(code: string, headers: Record<string, string>, base?: string) {
  const res = base
    ? await fetch(`${base}/c/${code}`, { redirect: 'manual', headers })
    : await get(`/c/${code}`, headers);
  assert.equal(res.status, 302, await res.text());
  const location = res.headers.get('location')!;
  const id = /[?&]c(?:id)?=([0-9a-f-]{36})/.exec(location)?.[1];
  let recorded: ClickEvent | undefined;
  for (let i = 0; i < 50 && !recorded; i++) {
    const all = await clicks();
    recorded = id ? all.find((c) => c.click_id === id) : all.find((c) => c.link_code === code && !seen.has(c.click_id));
    if (!recorded) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(recorded, `click of ${code} recorded`);
  seen.add(recorded.click_id);
  return { location, click: recorded };
}
const seen = new Set<string>();

describe('country targeting', () => {
  it('an allowed country lands on the destination; another one on the fallback as geo_mismatch', async () => {
    await targeted('geo-us', {
      allowed_countries: ['US', 'CA'],
      fallback_url: 'https://fallback.example/?c={click_id}&a={affiliate_id}',
    });
    // 8.8.8.8 and 2001:4860:4860::8888 are US, 81.2.69.142 GB, 193.0.6.139 NL in the packaged database.
    assert.equal(geoIp().country('8.8.8.8'), 'US');
    assert.equal(geoIp().country('81.2.69.142'), 'GB');
    for (const ip of ['8.8.8.8', '2001:4860:4860::8888']) {
      const r = await click('geo-us', { 'x-forwarded-for': ip, 'user-agent': UA.iphone });
      assert.match(r.location, /^https:\/\/shop\.example\/geo-us\?cid=/, ip);
      assert.equal(r.click.invalid_reason, '');
      assert.equal(r.click.ip, ip);
    }
    for (const ip of ['81.2.69.142', '193.0.6.139']) {
      const r = await click('geo-us', { 'x-forwarded-for': ip, 'user-agent': UA.iphone });
      assert.equal(r.location, `https://fallback.example/?c=${r.click.click_id}&a=${s.affiliate}`, ip);
      assert.equal(r.click.invalid_reason, 'geo_mismatch');
    }
    // A client the database cannot place (here the loopback peer itself) is outside any country list.
    const local = await click('geo-us', { 'user-agent': UA.iphone });
    assert.match(local.location, /^https:\/\/fallback\.example\//);
    assert.equal(local.click.invalid_reason, 'geo_mismatch');
  });

  it('a campaign without targeting redirects every country', async () => {
    const r = await click('good-1', { 'x-forwarded-for': '81.2.69.142' });
    assert.match(r.location, /^https:\/\/shop\.example\/l\?cid=/);
    assert.equal(r.click.invalid_reason, '');
  });
});

describe('device, OS and browser targeting', () => {
  it('mobile only: a phone lands, a desktop goes to the network default (no fallback) as device_mismatch', async () => {
    await targeted('dev-mobile', { allowed_devices: ['mobile'] });
    const phone = await click('dev-mobile', { 'user-agent': UA.iphone });
    assert.match(phone.location, /^https:\/\/shop\.example\/dev-mobile\?cid=/);
    assert.equal(phone.click.invalid_reason, '');
    for (const ua of [UA.windowsChrome, UA.ipad]) {
      const desk = await click('dev-mobile', { 'user-agent': ua });
      assert.equal(desk.location, 'https://www.google.com/');
      assert.equal(desk.click.invalid_reason, 'device_mismatch');
    }
  });

  it('device values ios/android/desktop are matched against the parsed OS and device type', async () => {
    await targeted('dev-os', { allowed_devices: ['android', 'desktop'], fallback_url: 'https://fallback.example/' });
    assert.match((await click('dev-os', { 'user-agent': UA.android })).location, /^https:\/\/shop\.example\//);
    assert.match((await click('dev-os', { 'user-agent': UA.linuxFirefox })).location, /^https:\/\/shop\.example\//);
    const ios = await click('dev-os', { 'user-agent': UA.iphone });
    assert.equal(ios.location, 'https://fallback.example/');
    assert.equal(ios.click.invalid_reason, 'device_mismatch');
  });

  it('OS and browser families: os_mismatch, browser_mismatch', async () => {
    await targeted('osbr', {
      allowed_os: ['ios', 'android'],
      allowed_browsers: ['chrome'],
      fallback_url: 'https://fallback.example/osbr',
    });
    const ok = await click('osbr', { 'user-agent': UA.android });
    assert.match(ok.location, /^https:\/\/shop\.example\/osbr/);
    const safari = await click('osbr', { 'user-agent': UA.iphone });
    assert.equal(safari.location, 'https://fallback.example/osbr');
    assert.equal(safari.click.invalid_reason, 'browser_mismatch');
    const windows = await click('osbr', { 'user-agent': UA.windowsChrome });
    assert.equal(windows.location, 'https://fallback.example/osbr');
    assert.equal(windows.click.invalid_reason, 'os_mismatch');
  });

  it('countries are checked first, then devices', async () => {
    await targeted('both', { allowed_countries: ['GB'], allowed_devices: ['desktop'] });
    const r = await click('both', { 'x-forwarded-for': '8.8.8.8', 'user-agent': UA.iphone });
    assert.equal(r.click.invalid_reason, 'geo_mismatch');
    const d = await click('both', { 'x-forwarded-for': '81.2.69.142', 'user-agent': UA.iphone });
    assert.equal(d.click.invalid_reason, 'device_mismatch');
    const ok = await click('both', { 'x-forwarded-for': '81.2.69.142', 'user-agent': UA.macEdge });
    assert.equal(ok.click.invalid_reason, '');
  });

  it('a changed targeting applies after the invalidation', async () => {
    const id = await targeted('change', { allowed_devices: ['desktop'] });
    assert.equal((await click('change', { 'user-agent': UA.android })).click.invalid_reason, 'device_mismatch');
    await env.sql`update campaigns set allowed_devices = '{mobile}' where id = ${id}`;
    await publishLinkInvalidation(env.redis, keys, { campaign_id: id });
    let reason = 'device_mismatch';
    for (let i = 0; i < 50 && reason !== ''; i++) {
      reason = (await click('change', { 'user-agent': UA.android })).click.invalid_reason;
      if (reason !== '') await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(reason, '');
  });
});

describe('DEFAULT_FALLBACK_URL', () => {
  it('is where a campaign without a fallback sends mismatches, macros filled', async () => {
    await targeted('netdef', { allowed_countries: ['CA'] });
    const t = await startTracker({
      config: cfg({ DEFAULT_FALLBACK_URL: 'https://offers.example/wall?c={click_id}&a={affiliate_id}' }),
      logger,
      sql: env.sql,
      redisUrl: env.config.REDIS_URL!,
    });
    try {
      const r = await click('netdef', { 'x-forwarded-for': '8.8.8.8' }, t.url);
      assert.equal(r.location, `https://offers.example/wall?c=${r.click.click_id}&a=${s.affiliate}`);
      assert.equal(r.click.invalid_reason, 'geo_mismatch');
    } finally {
      await t.close();
    }
  });
});

describe('targeting units', () => {
  it('no lists, or empty ones, compile to no targeting', () => {
    const none = { allowed_countries: [], allowed_devices: [], allowed_os: null, allowed_browsers: [] };
    assert.equal(compileTargeting(none), null);
    assert.deepEqual(compileTargeting({ ...none, allowed_countries: ['us'] })?.countries, new Set(['US']));
  });

  it('OS and browser families of ua-parser-js names', () => {
    const os = ['Windows', 'macOS', 'Mac OS', 'iOS', 'Android', 'Chrome OS', 'Ubuntu', 'Linux', 'Windows Phone', ''];
    assert.deepEqual(os.map(osFamily), [
      'windows',
      'macos',
      'macos',
      'ios',
      'android',
      'chromeos',
      'linux',
      'linux',
      'other',
      '',
    ]);
    const br = [
      'Chrome',
      'Mobile Chrome',
      'Chrome WebView',
      'Safari',
      'Mobile Safari',
      'Firefox',
      'Edge',
      'Opera',
      'Samsung Internet',
      'Yandex',
      '',
    ];
    assert.deepEqual(br.map(browserFamily), [
      'chrome',
      'chrome',
      'chrome',
      'safari',
      'safari',
      'firefox',
      'edge',
      'opera',
      'samsung',
      'other',
      '',
    ]);
  });

  it('user-agent classifications are cached in a bounded map; no user agent fails device targeting', () => {
    const t = new TargetingCheck(geoIp(), 3);
    for (const ua of Object.values(UA)) t.classify(ua);
    assert.ok(t.uaCacheSize <= 3, String(t.uaCacheSize));
    assert.equal(t.classify(UA.iphone), t.classify(UA.iphone), 'a repeated user agent is not parsed again');
    assert.deepEqual(t.classify(UA.macEdge), { device: 'desktop', os: 'macos', browser: 'edge' });
    const mobile = compileTargeting({
      allowed_countries: null,
      allowed_devices: ['mobile'],
      allowed_os: null,
      allowed_browsers: null,
    })!;
    assert.equal(t.check(mobile, '8.8.8.8', ''), 'device_mismatch');
    assert.equal(t.check(mobile, '8.8.8.8', UA.android), '');
  });

  it('a flood of distinct user agents keeps only the bounded cache: nothing else holds them', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const t = new TargetingCheck(geoIp(), 100);
    const pad = 'x'.repeat(2_000);
    gc();
    const before = process.memoryUsage().heapUsed;
    // 10,000 user agents of 2 KB (20 MB of text): held anywhere beyond the 100-entry cache, they show in the heap.
    for (let i = 0; i < 10_000; i++) t.classify(`${UA.android} ${pad} ${i}`);
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    assert.ok(t.uaCacheSize <= 100, String(t.uaCacheSize));
    assert.ok(grown < 8_000_000, `heap grew ${grown} bytes`);
  });
});
