/**
 * A click's hashed model features: per user agent its parse and hashes (cached per thread), and the slots
 * of the model's feature vector filled from the click and its observation in the windowed state.
 */

import type { EngineClick } from './engine-types.ts';
import { hash64, hashInt } from './hash.ts';
import type { ClickObservation } from './state.ts';
import { type TrafficKind, userAgentKind } from './traffic.ts';
import { parseUserAgent } from './user-agent.ts';

/** Hash seeds (namespaces) of the feature kinds, so equal values of different kinds take different slots. */
export const NS = {
  bias: 0x62696173,
  campaign: 0x63616d70,
  affiliate: 0x61666669,
  link: 0x6c696e6b,
  sub: [0x73756231, 0x73756232, 0x73756233, 0x73756234, 0x73756235],
  ua: 0x75612d2d,
  device: 0x64657669,
  ip1m: 0x69316d2d,
  ip24h: 0x69323468,
  ipCampaign: 0x69633168,
  ipLink: 0x696c3130,
  ipUa: 0x69756164,
  ipGap: 0x69676170,
  ipCampaignGap: 0x63676170,
} as const;

/** log2 bucket: 0 → 0, 1 → 1, 2..3 → 2, 4..7 → 3, … */
function lb(v: number): number {
  return v <= 0 ? 0 : 32 - Math.clz32(Math.min(v, 0x7fffffff));
}

/** Per user agent: the parse, its hashes (sketch and model slots), cached per thread. */
export interface UaInfo {
  device: string;
  os: string;
  browser: string;
  sketch: number;
  ua: number;
  /** What the user agent says it is (previewer, scanner, bot, '' = a browser; ./traffic.ts). */
  kind: TrafficKind;
  /**
   * One feature for the parsed (device type, OS, browser): as three features they are mostly redundant
   * with each other and with the user agent's own, and each added coordinate is learning noise while the
   * model has few labels (fraud-eval: +0.004 AUC as one).
   */
  family: number;
}
const uaInfo = new Map<string, UaInfo>();
const UA_INFO_MAX = 20_000;
export function userAgentInfo(ua: string): UaInfo {
  let u = uaInfo.get(ua);
  if (u === undefined) {
    const d = parseUserAgent(ua);
    u = {
      ...d,
      sketch: hash64(ua),
      ua: hash64(ua, NS.ua),
      kind: userAgentKind(ua),
      family: hash64(`${d.device}\t${d.os}\t${d.browser}`, NS.device),
    };
    if (uaInfo.size >= UA_INFO_MAX) uaInfo.clear();
    uaInfo.set(ua, u);
  }
  return u;
}

/**
 * Fills `s` with the model slots (masked by `mask`) of click `c`, whose link hashes to `linkH`, with user agent
 * `u` and state observation `o`. @returns how many slots it filled.
 */
export function fillFeatures(
  s: Uint32Array,
  mask: number,
  c: EngineClick,
  linkH: number,
  u: UaInfo,
  o: ClickObservation,
): number {
  let k = 0;
  s[k++] = NS.bias & mask;
  s[k++] = hashInt(NS.campaign, c.campaign_id) & mask;
  s[k++] = hashInt(NS.affiliate, c.affiliate_id) & mask;
  s[k++] = linkH & mask;
  for (let i = 0; i < 5; i++) {
    const v = c.sub[i]!;
    if (v !== '') s[k++] = hash64(v, NS.sub[i]) & mask;
  }
  s[k++] = u.ua & mask;
  s[k++] = u.family & mask;
  s[k++] = hashInt(NS.ip1m, lb(o.ip_clicks_1m)) & mask;
  s[k++] = hashInt(NS.ip24h, lb(o.ip_clicks_24h)) & mask;
  s[k++] = hashInt(NS.ipCampaign, lb(o.ip_campaign_clicks_1h)) & mask;
  s[k++] = hashInt(NS.ipLink, lb(o.ip_link_earlier)) & mask;
  s[k++] = hashInt(NS.ipUa, lb(o.ip_user_agents_day)) & mask;
  // -1 (no earlier click known) gets its own bucket; gaps in log2 seconds.
  s[k++] = hashInt(NS.ipGap, o.ip_prev_gap_ms < 0 ? 99 : lb(Math.floor(o.ip_prev_gap_ms / 1000))) & mask;
  s[k++] =
    hashInt(NS.ipCampaignGap, o.ip_campaign_prev_gap_ms < 0 ? 99 : lb(Math.floor(o.ip_campaign_prev_gap_ms / 1000))) &
    mask;
  return k;
}
