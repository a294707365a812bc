/**
 * Piscina worker: scores one whole batch of clicks (one task per batch, not per click) and
 * parses their user agents. Pure CPU work; every piece of shared state arrives in the input.
 */
import { UAParser } from 'ua-parser-js';
import { CLICK_RULES, type ClickFeatures, type ScorableClick, scoreClick } from './rules.ts';

/** Per click: the verdict plus what the user agent says about the device. */
export interface ScoredClick {
  fraud_score: number;
  fraud_reasons: string[];
  /** ua-parser-js device type; 'desktop' when it names none (it only names non-desktop types). */
  device: string;
  os: string;
  browser: string;
}

export type ParsedUserAgent = { device: string; os: string; browser: string };

/** Parsing costs ~0.1 ms per user agent and real traffic repeats them: cache per worker, bounded. */
const uaCache = new Map<string, ParsedUserAgent>();
const UA_CACHE_MAX = 20_000;

/** Parses a user agent into device type, OS name and browser name ('' when unknown). */
export function parseUserAgent(ua: string): ParsedUserAgent {
  if (ua === '') return { device: '', os: '', browser: '' };
  let hit = uaCache.get(ua);
  if (!hit) {
    const r = UAParser(ua);
    hit = { device: r.device.type ?? 'desktop', os: r.os.name ?? '', browser: r.browser.name ?? '' };
    if (uaCache.size >= UA_CACHE_MAX) uaCache.clear();
    uaCache.set(ua, hit);
  }
  return { ...hit };
}

/** Scores a batch; the output is in input order. */
export default function scoreBatch(clicks: ScorableClick[]): ScoredClick[] {
  return clicks.map((c) => ({ ...scoreClick(c), ...parseUserAgent(c.user_agent) }));
}

/**
 * A batch as it crosses to the worker (see {@link packClicks}): strings that repeat from click to click
 * (user agents above all) travel once in a table and each click names its entry by index; the five
 * features per click travel as one typed array. Structured cloning and then collecting 16,000 small
 * objects per batch was a large share of the pipeline's main-thread and GC time.
 */
export interface PackedClicks {
  /** Distinct strings of the batch (user agents, methods, purposes). */
  strings: string[];
  /** Per click: index in `strings` of its user agent, method, purpose (3 per click). */
  refs: Uint32Array;
  /** Per click: the 5 {@link ClickFeatures} in declaration order. */
  features: Float64Array;
}

/** Verdicts of a packed batch: per click score and reasons; device/os/browser per entry of `strings`. */
export interface PackedVerdicts {
  fraud_score: Float64Array;
  /** Per click: bit i set = the reason of CLICK_RULES[i] is listed. */
  reasons: Uint16Array;
  /** Parsed user agent per string index (only filled at the user agents' indexes). */
  devices: Array<ParsedUserAgent | undefined>;
}

/** Packs a batch for {@link scorePacked} (main thread side). */
export function packClicks(clicks: readonly ScorableClick[]): PackedClicks {
  const strings: string[] = [];
  const index = new Map<string, number>();
  const ref = (v: string) => {
    let i = index.get(v);
    if (i === undefined) {
      i = strings.length;
      strings.push(v);
      index.set(v, i);
    }
    return i;
  };
  const refs = new Uint32Array(clicks.length * 3);
  const features = new Float64Array(clicks.length * 5);
  for (let i = 0; i < clicks.length; i++) {
    const c = clicks[i]!;
    refs[i * 3] = ref(c.user_agent);
    refs[i * 3 + 1] = ref(c.method);
    refs[i * 3 + 2] = ref(c.purpose);
    const f = c.features;
    features[i * 5] = f.ip_clicks_1m;
    features[i * 5 + 1] = f.ip_clicks_24h;
    features[i * 5 + 2] = f.ip_campaign_clicks_1h;
    features[i * 5 + 3] = f.ip_link_earlier;
    features[i * 5 + 4] = f.ip_user_agents_day;
  }
  return { strings, refs, features };
}

// PackedVerdicts.reasons holds one bit per rule in a Uint16Array.
if (CLICK_RULES.length > 16) throw new Error('more than 16 click rules: widen PackedVerdicts.reasons');
const RULE_BIT = new Map(CLICK_RULES.map(([reason], i) => [reason, 1 << i]));

/** Worker task (piscina `name: 'scorePacked'`): {@link scoreBatch} over a packed batch. */
export function scorePacked(p: PackedClicks): PackedVerdicts {
  const n = p.refs.length / 3;
  const out: PackedVerdicts = {
    fraud_score: new Float64Array(n),
    reasons: new Uint16Array(n),
    devices: new Array(p.strings.length),
  };
  for (let i = 0; i < n; i++) {
    const ua = p.refs[i * 3]!;
    const features: ClickFeatures = {
      ip_clicks_1m: p.features[i * 5]!,
      ip_clicks_24h: p.features[i * 5 + 1]!,
      ip_campaign_clicks_1h: p.features[i * 5 + 2]!,
      ip_link_earlier: p.features[i * 5 + 3]!,
      ip_user_agents_day: p.features[i * 5 + 4]!,
    };
    const user_agent = p.strings[ua]!;
    const v = scoreClick({
      method: p.strings[p.refs[i * 3 + 1]!]!,
      user_agent,
      purpose: p.strings[p.refs[i * 3 + 2]!]!,
      features,
    });
    out.fraud_score[i] = v.fraud_score;
    let bits = 0;
    for (const r of v.fraud_reasons) bits |= RULE_BIT.get(r)!;
    out.reasons[i] = bits;
    out.devices[ua] ??= parseUserAgent(user_agent);
  }
  return out;
}

/** Turns packed verdicts back into one {@link ScoredClick} per click (main thread side). */
export function unpackVerdicts(p: PackedClicks, v: PackedVerdicts): ScoredClick[] {
  const n = v.fraud_score.length;
  const out = new Array<ScoredClick>(n);
  // Clicks with the same reasons share one (never mutated) array.
  const lists = new Map<number, string[]>();
  for (let i = 0; i < n; i++) {
    const bits = v.reasons[i]!;
    let reasons = lists.get(bits);
    if (!reasons) {
      reasons = CLICK_RULES.filter((_, b) => bits & (1 << b)).map(([r]) => r);
      lists.set(bits, reasons);
    }
    const d = v.devices[p.refs[i * 3]!]!;
    out[i] = { fraud_score: v.fraud_score[i]!, fraud_reasons: reasons, device: d.device, os: d.os, browser: d.browser };
  }
  return out;
}
