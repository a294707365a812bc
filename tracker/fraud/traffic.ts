/**
 * Which clicks are not a person following a link: link previewers (unfurlers), security scanners, prefetches and
 * other bots. Such a click is still redirected (the ingest never looks at the user agent, so previews keep working)
 * and recorded, but the pipeline stores its kind as `bot_reason` and counts it as invalid, so it is left out of
 * clicks, unique clicks, CR and EPC (README "What counts as a click").
 *
 * A click's kind, first match wins:
 * 1. `previewer`: the user agent matches {@link PREVIEWER_PATTERN} (ours: the unfurlers named below), or isbot
 *    says bot and it matches a `social-preview` pattern of monperrus/crawler-user-agents;
 * 2. `scanner`: it matches {@link SCANNER_PATTERN} (mail-security gateways that name themselves), or isbot says bot
 *    and it matches a `scanner` pattern of crawler-user-agents;
 * 3. `prefetch`: the request's `Sec-Purpose` / `Purpose` header says prefetch, prerender or preview;
 * 4. `bot`: isbot says bot (crawlers, HTTP libraries, headless browsers), or there is no user agent;
 * 5. `scanner`: the request is a HEAD (link checkers: no page was shown to anyone);
 * 6. `''`: a visitor, a valid click unless fraud scoring flags it.
 *
 * The crawler list is consulted only for user agents isbot already calls bots: alone, a few of its patterns match
 * people's browsers (`Sonic` matches the Slack desktop app, `MetaIAB Facebook` Facebook's in-app browser, an
 * Android build id a real phone). A new user agent costs ≈3 µs to classify (isbot included), once per user
 * agent and thread: the caller caches the kind with the user agent's parse (./features.ts).
 */
import { isbot } from 'isbot';
import { loadCrawlerKinds } from './crawler-kinds.ts';

/** Why a click is not a visitor's ('' = it is). */
export type TrafficKind = '' | 'previewer' | 'scanner' | 'prefetch' | 'bot';

/** Every kind, in the order of their codes (see {@link trafficKindCode}). */
export const TRAFFIC_KINDS: readonly TrafficKind[] = ['', 'previewer', 'scanner', 'prefetch', 'bot'];

/**
 * Link unfurlers of the chat and social apps, as their fetchers identify themselves (each is also in
 * crawler-user-agents or isbot; listed here so the named ones never depend on a list update):
 * - Slack: `Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)`, `Slackbot 1.0`, `Slack-ImgProxy`
 *   (not the desktop app: `… Slack/4.41 … Slack_SSB/…`);
 * - X / Twitter: `Twitterbot/1.0` (not the in-app browser: `… Twitter for iPhone/…`);
 * - Facebook, Instagram, Messenger: `facebookexternalhit/1.1`, `Facebot`, `facebookcatalog/1.0`,
 *   `meta-externalagent` is a crawler (bot), `meta-externalfetcher/1.1` fetches a link a user shared
 *   (not the in-app browser: `[FBAN/FBIOS;…]`, `[FB_IAB/FB4A;…]`);
 * - iMessage: `… Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0` (Apple's link-presentation
 *   fetcher borrows the Facebook and Twitter names);
 * - Telegram: `TelegramBot (like TwitterBot)` (not the in-app browser: `… Telegram-Android/…`);
 * - Discord: `Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)` (not the app: `… discord/1.0.9173 …`);
 * - WhatsApp: `WhatsApp/2.23.20.0 A`, `WhatsApp/2.2329.7 i` (the fetcher's name leads the user agent);
 * - LinkedIn: `LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)`;
 * - Microsoft Teams, Skype, Outlook: `SkypeUriPreview`, `MicrosoftPreview/2.0`, `BingPreview/1.0b`;
 * - Google Messages (RCS): `GoogleMessages/20…`; Viber `Viber/…`; Snapchat `Snap URL Preview Service`;
 *   Pinterest `Pinterestbot`; Reddit `redditbot`; Mastodon servers `… (Mastodon/4.2.0; +https://…)`;
 *   Bluesky `Bluesky Cardyb/1.1`; Embedly, Iframely (embed services of many apps).
 */
export const PREVIEWER_PATTERN =
  /Slackbot|Slack-ImgProxy|Twitterbot|facebookexternalhit|Facebot|facebookcatalog|meta-externalfetcher|TelegramBot|Discordbot|^WhatsApp\/|LinkedInBot|SkypeUriPreview|MicrosoftPreview\/|BingPreview\/|GoogleMessages\/|^Viber\/|Snap URL Preview|Pinterestbot|redditbot|\(Mastodon\/|Bluesky Cardyb|Embedly|Iframely/i;

/**
 * Mail-security gateways that follow every link of a message before (or when) its recipient opens it, matched when
 * their fetchers name the vendor: Barracuda (`Barracuda Sentinel (EE)`; link protection `linkprotect.cudasvc.com`),
 * Proofpoint URL Defense, Mimecast URL Protect, Microsoft Safe Links (`… SafeLinks …`), Cisco Secure Email /
 * IronPort, Trend Micro Email Security. Many of these (Microsoft Defender's detonation in particular) fetch with an
 * ordinary browser's user agent from the vendor's own networks: no user-agent rule sees those; an ASN or IP-range
 * rule would (README, "What counts as a click").
 */
export const SCANNER_PATTERN = /Barracuda|Proofpoint|Mimecast|SafeLinks|IronPort|Cisco ?Secure ?Email|Trend ?Micro/i;

/** Sec-Purpose / Purpose values of speculative loads (Chrome `prefetch`, `prefetch;prerender`; Safari `preview`). */
const PREFETCH_PURPOSE = /prefetch|prerender|preview/i;

let crawlerPreviewer: RegExp | undefined;
let crawlerScanner: RegExp | undefined;

function crawlerPatterns(): { previewer: RegExp; scanner: RegExp } {
  if (!crawlerPreviewer || !crawlerScanner) {
    const k = loadCrawlerKinds();
    crawlerPreviewer = new RegExp(k.previewer.map((p) => `(?:${p})`).join('|'));
    crawlerScanner = new RegExp(k.scanner.map((p) => `(?:${p})`).join('|'));
  }
  return { previewer: crawlerPreviewer, scanner: crawlerScanner };
}

/** isbot's verdict per user agent (its regular expression is most of a click's scoring cost; traffic repeats them). */
const botCache = new Map<string, boolean>();
const BOT_CACHE_MAX = 20_000;

/** isbot(ua), cached per thread. */
export function isBotUserAgent(ua: string): boolean {
  let bot = botCache.get(ua);
  if (bot === undefined) {
    bot = isbot(ua);
    if (botCache.size >= BOT_CACHE_MAX) botCache.clear();
    botCache.set(ua, bot);
  }
  return bot;
}

/**
 * What the user agent alone says: `previewer`, `scanner`, `bot` or '' (a browser). Not cached here: the caller
 * keeps it with the user agent's other facts (../fraud/features.ts `userAgentInfo`).
 */
export function userAgentKind(ua: string): TrafficKind {
  if (ua.trim() === '') return 'bot';
  if (PREVIEWER_PATTERN.test(ua)) return 'previewer';
  if (SCANNER_PATTERN.test(ua)) return 'scanner';
  if (!isBotUserAgent(ua)) return '';
  const c = crawlerPatterns();
  if (c.previewer.test(ua)) return 'previewer';
  if (c.scanner.test(ua)) return 'scanner';
  return 'bot';
}

/**
 * A click's kind (see the module docstring) from its user agent's kind ({@link userAgentKind}), its HTTP method and
 * its `Sec-Purpose` / `Purpose` header ('' when absent).
 */
export function trafficKind(uaKind: TrafficKind, method: string, purpose: string): TrafficKind {
  if (uaKind === 'previewer' || uaKind === 'scanner') return uaKind;
  if (purpose !== '' && PREFETCH_PURPOSE.test(purpose)) return 'prefetch';
  if (uaKind === 'bot') return 'bot';
  if (method === 'HEAD' || method === 'head') return 'scanner';
  return '';
}

/** The kind's index in {@link TRAFFIC_KINDS} (how verdicts carry it across threads). */
export function trafficKindCode(kind: TrafficKind): number {
  return TRAFFIC_KINDS.indexOf(kind);
}
