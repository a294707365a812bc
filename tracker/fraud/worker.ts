/**
 * Piscina worker: scores one whole batch of clicks (one task per batch, not per click) and
 * parses their user agents. Pure CPU work; every piece of shared state arrives in the input.
 */
import { UAParser } from 'ua-parser-js';
import { type ScorableClick, scoreClick } from './rules.ts';

/** Per click: the verdict plus what the user agent says about the device. */
export interface ScoredClick {
  fraud_score: number;
  fraud_reasons: string[];
  /** ua-parser-js device type; 'desktop' when it names none (it only names non-desktop types). */
  device: string;
  os: string;
  browser: string;
}

/** Parses a user agent into device type, OS name and browser name ('' when unknown). */
export function parseUserAgent(ua: string): { device: string; os: string; browser: string } {
  if (ua === '') return { device: '', os: '', browser: '' };
  const r = UAParser(ua);
  return { device: r.device.type ?? 'desktop', os: r.os.name ?? '', browser: r.browser.name ?? '' };
}

/** Scores a batch; the output is in input order. */
export default function scoreBatch(clicks: ScorableClick[]): ScoredClick[] {
  return clicks.map((c) => ({ ...scoreClick(c), ...parseUserAgent(c.user_agent) }));
}
