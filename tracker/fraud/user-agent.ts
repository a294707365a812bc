/**
 * What a user agent says about the device, parsed with ua-parser-js (device type, OS, browser). Not cached here:
 * each caller keeps its own bounded cache of what it derives (the fraud features, ./features.ts `userAgentInfo`;
 * the redirect's targeting classes, ../ingest/targeting.ts), so a user agent is held once per process, within the
 * caller's bound, instead of a second time in a larger cache of this module.
 */
import { UAParser } from 'ua-parser-js';

export type ParsedUserAgent = { device: string; os: string; browser: string };

/** Parses a user agent into device type, OS name and browser name ('' when unknown). ≈80 µs; callers cache. */
export function parseUserAgent(ua: string): ParsedUserAgent {
  if (ua === '') return { device: '', os: '', browser: '' };
  const r = UAParser(ua);
  return { device: r.device.type ?? 'desktop', os: r.os.name ?? '', browser: r.browser.name ?? '' };
}
