/**
 * The previewer / scanner / prefetch / bot classifier (./traffic.ts) on the user agents the named apps send, the
 * browsers and in-app browsers of the same apps (people, so valid), and the crawler list it bundles.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildClicks, CLICK_COLUMNS } from '../pipeline/clicks.ts';
import { makeClick } from '../pipeline/testing.ts';
import { CRAWLER_KINDS_FILE, deriveCrawlerKinds, loadCrawlerKinds, SHARED_CRAWLER_LIST } from './crawler-kinds.ts';
import { PartitionEngine } from './engine.ts';
import type { EngineClick } from './engine-types.ts';
import { type TrafficKind, trafficKind, userAgentKind } from './traffic.ts';

/** The link unfurlers issue 16 names, as they identify themselves. */
const PREVIEWERS: Record<string, string> = {
  Slack: 'Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)',
  iMessage:
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0',
  Telegram: 'TelegramBot (like TwitterBot)',
  Discord: 'Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)',
  WhatsApp: 'WhatsApp/2.23.20.0 A',
  Facebook: 'facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)',
  X: 'Twitterbot/1.0',
  LinkedIn: 'LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)',
};

const MORE_PREVIEWERS = [
  'Slackbot 1.0 (+https://api.slack.com/robots)',
  'Slack-ImgProxy (+https://api.slack.com/robots)',
  'WhatsApp/2.2329.7 i',
  'facebookcatalog/1.0',
  'Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.0.0 Safari/537.36 MicrosoftPreview/2.0 +https://aka.ms/MicrosoftPreview',
  'Mozilla/5.0 (compatible; Pinterestbot/1.0; +http://www.pinterest.com/bot.html)',
  'http.rb/5.1.1 (Mastodon/4.2.0; +https://mastodon.social/) Bot',
];

/** Mail-security gateways that name themselves. */
const SCANNERS = [
  'Barracuda Sentinel (EE)',
  'Mozilla/5.0 (compatible; Proofpoint URL Defense)',
  'Mimecast URL Protect',
  'Microsoft Office SafeLinks Protection',
];

/** People: browsers, and the in-app browsers of the apps whose previewers are above. */
const BROWSERS: Record<string, string> = {
  chrome:
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  safariIos:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  chromeAndroid:
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
  firefox: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
  edge: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
  facebookInAppAndroid:
    'Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/490.0.0.39.108;]',
  facebookInAppIos:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.40.108;FBBV/614383003;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/617180640]',
  instagram:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 346.0.2.23.84 (iPhone15,2; iOS 17_5; en_US; en; scale=3.00; 1179x2556; 635474843)',
  xInApp:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Twitter for iPhone/10.48',
  linkedInApp:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.29.8449',
  telegramInApp:
    'Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 Telegram-Android/11.2.2 (Google Pixel 8; Android 14; SDK 34; HIGH)',
  slackDesktop:
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.41.97 Chrome/130.0.6723.118 Electron/33.2.0 Safari/537.36 Sonic Slack_SSB/4.41.97',
  discordDesktop:
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) discord/1.0.9173 Chrome/128.0.6613.186 Electron/32.2.7 Safari/537.36',
  snapchatInApp:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Snapchat/13.10.0.38 (like Safari/8617.2.4.10.6, panda)',
  googleApp:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/343.0.695551749 Mobile/15E148 Safari/604.1',
};

const kindOf = (ua: string, method = 'GET', purpose = ''): TrafficKind =>
  trafficKind(userAgentKind(ua), method, purpose);

describe('trafficKind', () => {
  for (const [app, ua] of Object.entries(PREVIEWERS)) {
    test(`${app}'s link previewer is a previewer`, () => assert.equal(kindOf(ua), 'previewer'));
  }
  test('other unfurlers (Slack variants, WhatsApp iOS, Teams/Skype, Outlook, Pinterest, Mastodon) are previewers', () => {
    for (const ua of MORE_PREVIEWERS) assert.equal(kindOf(ua), 'previewer', ua);
  });
  test('mail-security scanners that name themselves are scanners', () => {
    for (const ua of SCANNERS) assert.equal(kindOf(ua), 'scanner', ua);
  });
  test('browsers and the apps’ in-app browsers are people', () => {
    for (const [name, ua] of Object.entries(BROWSERS)) assert.equal(kindOf(ua), '', name);
  });
  test('Sec-Purpose / Purpose prefetch and prerender are prefetches, from a browser too', () => {
    for (const purpose of ['prefetch', 'prefetch;prerender', 'Prefetch', 'preview']) {
      assert.equal(kindOf(BROWSERS.chrome!, 'GET', purpose), 'prefetch', purpose);
    }
    assert.equal(kindOf(PREVIEWERS.Slack!, 'GET', 'prefetch'), 'previewer', 'the user agent names the previewer');
  });
  test('crawlers, HTTP libraries and headless browsers are bots; no user agent is a bot; HEAD is a scanner', () => {
    for (const ua of [
      'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
      'curl/8.5.0',
      'python-requests/2.31.0',
      'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36',
      '',
    ]) {
      assert.equal(kindOf(ua), 'bot', ua);
    }
    assert.equal(kindOf(BROWSERS.chrome!, 'HEAD'), 'scanner');
  });
  test('the crawler list classifies isbot’s bots: its social-preview instances are previewers, its scanners scanners', () => {
    if (!existsSync(SHARED_CRAWLER_LIST)) return; // the shared data copy is not on every machine
    const list = JSON.parse(readFileSync(SHARED_CRAWLER_LIST, 'utf8')) as Array<{
      tags: string[];
      instances: string[];
    }>;
    const kinds = new Map<string, Set<TrafficKind>>();
    for (const e of list) {
      for (const tag of ['social-preview', 'scanner']) {
        if (!e.tags.includes(tag)) continue;
        for (const ua of e.instances) {
          const k = userAgentKind(ua);
          const s = kinds.get(tag) ?? new Set<TrafficKind>();
          kinds.set(tag, s);
          s.add(k);
        }
      }
    }
    // isbot misses one of each (a Facebook in-app browser and a phone's build id, both people's user agents): those stay valid.
    assert.deepEqual([...kinds.get('social-preview')!].sort(), ['', 'previewer']);
    assert.deepEqual([...kinds.get('scanner')!].sort(), ['', 'scanner']);
  });
  test('the bundled crawler kinds are what crawler-kinds.ts derives from ../shared/data', () => {
    const bundled = loadCrawlerKinds();
    assert.ok(bundled.previewer.length > 50 && bundled.scanner.length > 50);
    if (!existsSync(SHARED_CRAWLER_LIST)) return;
    const derived = deriveCrawlerKinds(readFileSync(SHARED_CRAWLER_LIST, 'utf8'), bundled.source);
    assert.deepEqual(bundled, derived, `regenerate ${fileURLToPath(CRAWLER_KINDS_FILE)}`);
  });
});

describe('the fraud engine’s verdict', () => {
  test('carries the kind as bot_reason; a previewer is still scored, a browser has none', () => {
    const e = new PartitionEngine();
    const click = (i: number, user_agent: string, purpose = ''): EngineClick => ({
      click_id: `00000000-0000-7000-8000-00000000000${i}`,
      ts_ms: 1_700_000_000_000 + i,
      ip: `192.0.2.${i}`,
      campaign_id: 1,
      affiliate_id: 2,
      link_code: 'abc',
      sub: ['', '', '', '', ''],
      user_agent,
      method: 'GET',
      purpose,
      invalid_reason: '',
    });
    const v = e.process(
      [
        { kind: 'click', click: click(1, PREVIEWERS.Slack!) },
        { kind: 'click', click: click(2, BROWSERS.chrome!, 'prefetch') },
        { kind: 'click', click: click(3, BROWSERS.chrome!) },
      ],
      { from: '0-0', to: '1-0' },
    );
    assert.deepEqual(
      v.map((x) => x.bot_reason),
      ['previewer', 'prefetch', ''],
    );
    assert.ok(v[0]!.fraud_reasons.includes('bot_user_agent'));
  });
});

describe('the ClickHouse row of a click', () => {
  test('a bot_reason alone makes it invalid (not charged, not in clicks), whatever its fraud score', () => {
    const s = { advertiserId: 1, affiliateId: 2, campaignId: 3, linkCode: 'abc' };
    const clicks = [makeClick(s, {}), makeClick(s, {})];
    const verdict = { fraud_score: 0.1, fraud_reasons: [], device: 'desktop', os: '', browser: '', model_version: 0 };
    const built = buildClicks(
      clicks,
      [
        { ...verdict, bot_reason: 'scanner', features: '' },
        { ...verdict, bot_reason: '', features: '' },
      ],
      new Map(),
    );
    assert.deepEqual([...built.invalid], [1, 0]);
    const col = (line: string, name: string) => line.split('\t')[CLICK_COLUMNS.indexOf(name as never)];
    const lines = built.tsv.trimEnd().split('\n');
    assert.deepEqual(
      lines.map((l) => [col(l, 'bot_reason'), col(l, 'is_invalid')]),
      [
        ['scanner', '1'],
        ['', '0'],
      ],
    );
  });
});
