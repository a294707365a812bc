import type { Sql } from '../../infra/index.ts';
import { singleFlight } from './single-flight.ts';

/** The form of a publishable key (admin-api creates `pk_<mode>_` + 43 base64url characters). */
export const PUBLISHABLE_KEY_RE = /^pk_(live|test)_[A-Za-z0-9_-]{20,64}$/;

/** What a live publishable key allows. */
export interface PublishableKey {
  id: number;
  advertiser_id: number;
  mode: 'live' | 'test';
  /** Exact origins (`scheme://host[:port]`) that may send conversions with this key. */
  origins: ReadonlySet<string>;
}

/**
 * Resolves publishable keys (`publishable_keys`, not revoked) to their advertiser, mode and origins. Cached like the
 * postback tokens (./conversion.ts TokenCache): hits for `hitMs`, misses for `missMs`, so a revoked key or a changed
 * origin list takes effect within `hitMs`. A malformed key is refused without a lookup; an unknown one is a read
 * only; a known one records `last_used_at` once per cache miss.
 */
export class PublishableKeyCache {
  private readonly map = new Map<string, { key: PublishableKey | null; until_ms: number }>();
  private readonly loading = new Map<string, Promise<PublishableKey | null>>();

  constructor(
    private readonly sql: Sql,
    private readonly hitMs = 30_000,
    private readonly missMs = 5_000,
  ) {}

  /** The live key `key`, or null (malformed, unknown or revoked). @throws on a Postgres error. */
  async get(key: string): Promise<PublishableKey | null> {
    if (!PUBLISHABLE_KEY_RE.test(key)) return null;
    const hit = this.map.get(key);
    if (hit && hit.until_ms > Date.now()) return hit.key;
    return singleFlight(this.loading, key, (k) => this.lookup(k));
  }

  private async lookup(key: string): Promise<PublishableKey | null> {
    const rows = await this.sql<
      { id: string; advertiser_id: number; mode: 'live' | 'test'; allowed_origins: string[] }[]
    >`
      select id, advertiser_id, mode, allowed_origins from publishable_keys where key = ${key} and revoked_at is null`;
    const r = rows[0];
    const found: PublishableKey | null = r
      ? { id: Number(r.id), advertiser_id: Number(r.advertiser_id), mode: r.mode, origins: new Set(r.allowed_origins) }
      : null;
    if (r) await this.sql`update publishable_keys set last_used_at = now() where id = ${r.id}`;
    if (this.map.size > 100_000) this.map.clear();
    this.map.set(key, { key: found, until_ms: Date.now() + (found ? this.hitMs : this.missMs) });
    return found;
  }
}
