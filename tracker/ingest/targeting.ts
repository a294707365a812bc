/**
 * Campaign targeting at the redirect: country (GeoIP), device, OS family and browser family. Only links whose
 * campaign targets something pay for it: a GeoIP lookup (≈1 µs) when countries are targeted, a user-agent parse
 * (cached per user-agent string) when devices, OS or browsers are.
 */
import type { BrowserFamily, DeviceTarget, OsFamily } from '../../infra/index.ts';
import type { InvalidClickReason } from '../events.ts';
import { parseUserAgent } from '../fraud/user-agent.ts';
import type { GeoIp } from '../geo/geoip.ts';

/** A campaign's targeting as the link cache holds it; each list null when it does not restrict. */
export interface Targeting {
  /** ISO 3166-1 alpha-2 codes, upper case. */
  countries: ReadonlySet<string> | null;
  devices: ReadonlySet<DeviceTarget> | null;
  os: ReadonlySet<OsFamily> | null;
  browsers: ReadonlySet<BrowserFamily> | null;
}

/** The stored lists (`campaigns.allowed_*`), as Postgres returns them. */
export interface TargetingColumns {
  allowed_countries: string[] | null;
  allowed_devices: string[] | null;
  allowed_os: string[] | null;
  allowed_browsers: string[] | null;
}

const setOf = <T extends string>(list: string[] | null, norm: (s: string) => string): ReadonlySet<T> | null =>
  list && list.length > 0 ? new Set(list.map(norm) as T[]) : null;

/** The targeting of a campaign row; null when it targets nothing (then the click path checks nothing). */
export function compileTargeting(r: TargetingColumns): Targeting | null {
  const lower = (s: string) => s.toLowerCase();
  const t: Targeting = {
    countries: setOf<string>(r.allowed_countries, (s) => s.toUpperCase()),
    devices: setOf<DeviceTarget>(r.allowed_devices, lower),
    os: setOf<OsFamily>(r.allowed_os, lower),
    browsers: setOf<BrowserFamily>(r.allowed_browsers, lower),
  };
  return t.countries || t.devices || t.os || t.browsers ? t : null;
}

/** What targeting needs from a user agent; '' fields when there is no user agent. */
export interface UaClass {
  /** ua-parser-js device type ('desktop' when it names none). */
  device: string;
  os: OsFamily | '';
  browser: BrowserFamily | '';
}

const LINUX = new Set([
  'linux',
  'ubuntu',
  'kubuntu',
  'xubuntu',
  'debian',
  'fedora',
  'arch',
  'centos',
  'gentoo',
  'mint',
  'manjaro',
  'redhat',
  'suse',
  'slackware',
  'mageia',
  'mandriva',
  'deepin',
  'elementary os',
  'raspbian',
  'pclinuxos',
  'knoppix',
  'linspire',
  'vectorlinux',
  'zenwalk',
  'sabayon',
  'linpus',
  'gnu',
]);

/** OS family of a ua-parser-js OS name (Windows Phone, watchOS, HarmonyOS, … are `other`). */
export function osFamily(name: string): OsFamily | '' {
  const n = name.toLowerCase();
  if (n === '') return '';
  if (n === 'windows') return 'windows';
  if (n === 'macos' || n === 'mac os') return 'macos';
  if (n === 'ios') return 'ios';
  if (n === 'android' || n === 'android-x86') return 'android';
  if (n === 'chrome os' || n === 'chromium os') return 'chromeos';
  return LINUX.has(n) ? 'linux' : 'other';
}

/** Browser family of a ua-parser-js browser name ('Mobile Safari' → safari, 'Chrome WebView' → chrome, …). */
export function browserFamily(name: string): BrowserFamily | '' {
  const n = name.toLowerCase();
  if (n === '') return '';
  if (n.includes('edge')) return 'edge';
  if (n.startsWith('samsung')) return 'samsung';
  if (n.startsWith('opera')) return 'opera';
  if (n.includes('firefox')) return 'firefox';
  if (n.includes('chrom')) return 'chrome';
  if (n.includes('safari')) return 'safari';
  return 'other';
}

/** Whether a click with this user agent is one of the `allowed_devices` values (see DEVICE_TARGETS). */
function deviceAllowed(devices: ReadonlySet<DeviceTarget>, ua: UaClass): boolean {
  for (const d of devices) {
    if (d === 'ios' || d === 'android' ? ua.os === d : d === 'other' ? isOtherDevice(ua.device) : ua.device === d)
      return true;
  }
  return false;
}

const isOtherDevice = (device: string) =>
  device !== '' && device !== 'desktop' && device !== 'mobile' && device !== 'tablet';

/** Default most user agents whose classification is remembered per process. */
export const UA_CLASS_CACHE_MAX = 2_000;

/**
 * Decides targeting for the click route. User-agent classifications are cached per UA string in a map of at most
 * `uaCacheMax` entries (real traffic repeats a few hundred UAs; a flood of random ones empties it and starts
 * again, which only costs their parses), so only a first sight of a UA pays ua-parser-js (≈50–100 µs).
 */
export class TargetingCheck {
  private readonly uaCache = new Map<string, UaClass>();

  constructor(
    private readonly geo: GeoIp,
    private readonly uaCacheMax: number = UA_CLASS_CACHE_MAX,
  ) {}

  /** Entries of the user-agent cache (≤ `uaCacheMax`). */
  get uaCacheSize(): number {
    return this.uaCache.size;
  }

  /** The classification of a user agent (cached). */
  classify(ua: string): UaClass {
    let c = this.uaCache.get(ua);
    if (c === undefined) {
      const p = parseUserAgent(ua);
      c = { device: p.device, os: osFamily(p.os), browser: browserFamily(p.browser) };
      if (this.uaCache.size >= this.uaCacheMax) this.uaCache.clear();
      this.uaCache.set(ua, c);
    }
    return c;
  }

  /**
   * Why a click falls outside `t` ('' when it is inside), checked in this order: `geo_mismatch` (country not
   * allowed, or unknown: private and unlisted addresses), `device_mismatch`, `os_mismatch`, `browser_mismatch`
   * (no user agent fails any of these).
   */
  check(t: Targeting, ip: string, userAgent: string): InvalidClickReason {
    if (t.countries !== null && !t.countries.has(this.geo.country(ip))) return 'geo_mismatch';
    if (t.devices === null && t.os === null && t.browsers === null) return '';
    const ua = this.classify(userAgent);
    if (t.devices !== null && !deviceAllowed(t.devices, ua)) return 'device_mismatch';
    if (t.os !== null && (ua.os === '' || !t.os.has(ua.os))) return 'os_mismatch';
    if (t.browsers !== null && (ua.browser === '' || !t.browsers.has(ua.browser))) return 'browser_mismatch';
    return '';
  }
}
