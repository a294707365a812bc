/**
 * Country of an IP address from a MaxMind DB file (MMDB), held in memory: the packaged CC0/CC BY country database
 * of `@ip-location-db/geo-whois-asn-country-mmdb` by default, or a MaxMind GeoIP2/GeoLite2 Country (or City) file.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type CountryResponse, Reader } from 'mmdb-lib';

/** The packaged database (IPv4 and IPv6 in one file). */
export const DEFAULT_MMDB = 'geo-whois-asn-country.mmdb';
const PACKAGE = '@ip-location-db/geo-whois-asn-country-mmdb';

/**
 * The two record shapes: ip-location-db's `{country_code}` and MaxMind's `{country: {iso_code}}` (GeoIP2 and
 * GeoLite2 Country/City; `registered_country` is where the block is registered, not where the user is, so unused).
 */
interface CountryRecord {
  country_code?: string;
  country?: { iso_code?: string };
}

/** Path of the packaged MMDB file. @throws Error when the package is not installed. */
export function defaultMmdbPath(): string {
  return createRequire(import.meta.url).resolve(`${PACKAGE}/${DEFAULT_MMDB}`);
}

/** Country lookups over one MMDB file loaded into memory (≈8 MB for the packaged one). */
export class GeoIp {
  private readonly reader: Reader<CountryResponse>;
  /** The file this was loaded from. */
  readonly path: string;
  /** When the database was built (its metadata), for logs and `/readyz`-style diagnostics. */
  readonly builtAt: Date;

  /**
   * Reads the whole file once (synchronously: done at start-up, never per click).
   * @param path an .mmdb file; the packaged database when omitted.
   * @throws Error when the file cannot be read or is not a MaxMind DB.
   */
  constructor(path: string = defaultMmdbPath()) {
    this.path = path;
    this.reader = new Reader<CountryResponse>(readFileSync(path));
    this.builtAt = this.reader.metadata.buildEpoch;
  }

  /**
   * ISO 3166-1 alpha-2 country code (upper case) of `ip` (IPv4 or IPv6 text form); '' when the database does not
   * know it (private, loopback, reserved ranges) or `ip` is not an address. Never throws. ≈1 µs.
   */
  country(ip: string): string {
    if (ip === '' || specialPurpose(ip)) return '';
    // IPv4-mapped IPv6 (the ingest records the IPv4 form, other callers may not): the IPv4 address's country.
    if (ip.length > 7 && ip.charCodeAt(0) === 58 && /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip))
      return this.country(ip.slice(7));
    let r: CountryRecord | null;
    try {
      r = this.reader.get(ip) as CountryRecord | null;
    } catch {
      return '';
    }
    if (r === null) return '';
    const code = r.country_code ?? r.country?.iso_code ?? '';
    return code.length === 2 ? code.toUpperCase() : '';
  }
}

/** The leading decimal octet of `s` from `at` up to the next '.', -1 when there is none. */
function octet(s: string, at: number): number {
  let n = 0;
  let i = at;
  for (; i < s.length && i < at + 3; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    n = n * 10 + c;
  }
  return i > at && s.charCodeAt(i) === 46 ? n : -1;
}

/**
 * Whether `ip` is in an IANA special-purpose range (private, shared, loopback, link-local, documentation, benchmark,
 * multicast, reserved): no country, whatever a database says. The packaged database answers `AU` for 172.16.0.0/12,
 * 192.168.0.0/16 and the documentation ranges, `JP` for 2001:db8::/32 (its upstream warns of such data bugs), so
 * they are decided here first. Cheap: no allocation, a few character reads.
 */
export function specialPurpose(ip: string): boolean {
  const colon = ip.indexOf(':');
  if (colon >= 0) {
    if (ip === '::' || ip === '::1') return true;
    if (colon !== 4) return false;
    const h = ip.slice(0, 4).toLowerCase();
    // fc00::/7 unique local, fe80::/10 link-local, ff00::/8 multicast, 2001:db8::/32 documentation.
    return (
      h.startsWith('fc') ||
      h.startsWith('fd') ||
      h.startsWith('fe8') ||
      h.startsWith('fe9') ||
      h.startsWith('fea') ||
      h.startsWith('feb') ||
      h.startsWith('ff') ||
      (h === '2001' && ip.slice(5, 9).toLowerCase() === 'db8:')
    );
  }
  const a = octet(ip, 0);
  if (a < 0) return false;
  const at = ip.indexOf('.') + 1;
  const b = octet(ip, at);
  const c = b < 0 ? -1 : octet(ip, ip.indexOf('.', at) + 1);
  return (
    a === 0 ||
    a === 10 ||
    a === 127 ||
    a >= 224 ||
    (a === 100 && b >= 64 && b <= 127) ||
    (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 192 && b === 0 && (c === 0 || c === 2)) ||
    (a === 198 && (b === 18 || b === 19)) ||
    (a === 198 && b === 51 && c === 100) ||
    (a === 203 && b === 0 && c === 113)
  );
}

const opened = new Map<string, GeoIp>();

/**
 * The process's {@link GeoIp} for `path` (the packaged database when undefined), loaded on first use and shared
 * afterwards (the tracker and the pipeline of one process hold one copy). @throws as the constructor.
 */
export function geoIp(path?: string): GeoIp {
  const key = path ?? '';
  let g = opened.get(key);
  if (g === undefined) {
    g = new GeoIp(path);
    opened.set(key, g);
  }
  return g;
}
