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
    if (ip === '') return '';
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
