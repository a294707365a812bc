/**
 * An advertiser's postback IP allowlist, as the admin API validates and stores it and the tracker matches it; the
 * invalidation message that tells trackers it changed; and the capped Redis stream of refused postbacks.
 */
import { BlockList, isIP } from 'node:net';
import type { Redis, RedisKeys } from './redis.ts';

/** Most entries (addresses or CIDR ranges) one advertiser's allowlist holds. */
export const MAX_ALLOWLIST_ENTRIES = 100;

/** Most refused postbacks kept per advertiser (the stream is trimmed to about this many, newest kept). */
export const REFUSALS_MAXLEN = 1000;

/**
 * Validates one allowlist entry: an IPv4 or IPv6 address, or a CIDR range `address/prefix` (0..32, 0..128).
 * @returns `{ entry }` in normal form (lower case, a single address without `/32` or `/128`, IPv4-mapped IPv6
 *   written as IPv4) or `{ error }`, a message for the field.
 */
export function normaliseAllowlistEntry(raw: string): { entry: string } | { error: string } {
  const s = raw.trim().toLowerCase();
  const slash = s.indexOf('/');
  let addr = slash < 0 ? s : s.slice(0, slash);
  const bits = slash < 0 ? undefined : s.slice(slash + 1);
  let family = isIP(addr);
  if (family === 0) return { error: 'must be an IPv4 or IPv6 address or CIDR range (e.g. 203.0.113.0/24)' };
  let max = family === 4 ? 32 : 128;
  let prefix = max;
  if (bits !== undefined) {
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return { error: `prefix must be 0..${max}` };
    prefix = Number(bits);
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(addr);
  if (mapped && prefix >= 96) {
    addr = mapped[1]!;
    family = 4;
    prefix -= 96;
    max = 32;
  }
  return { entry: prefix === max ? addr : `${addr}/${prefix}` };
}

/** A compiled allowlist: one `node:net` BlockList of every entry, built once per load. */
export class IpAllowlist {
  private readonly list = new BlockList();

  /** @param entries entries in the form {@link normaliseAllowlistEntry} returns; a malformed one is skipped. */
  constructor(readonly entries: readonly string[]) {
    for (const e of entries) {
      const [addr, bits] = e.split('/');
      const family = isIP(addr ?? '');
      if (family === 0) continue;
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.list.addAddress(addr!, type);
      else this.list.addSubnet(addr!, Number(bits), type);
    }
  }

  /** Whether `ip` (text form, as the tracker's client-IP logic gives it) is inside one of the entries. */
  allows(ip: string): boolean {
    const family = isIP(ip);
    if (family === 4) return this.list.check(ip, 'ipv4');
    if (family !== 6) return false;
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    return (m !== null && this.list.check(m[1]!, 'ipv4')) || this.list.check(ip, 'ipv6');
  }
}

/** The matcher of a stored list; null (any address may post) when the list is empty. */
export function compileAllowlist(entries: readonly string[] | null | undefined): IpAllowlist | null {
  return entries && entries.length > 0 ? new IpAllowlist(entries) : null;
}

/**
 * Tells every tracker process that `advertiserId`'s postback tokens or allowlist changed (they drop its cached
 * tokens). Published on `keys.postbackInvalidation` as the decimal id, after the change is committed.
 */
export async function publishPostbackInvalidation(redis: Redis, keys: RedisKeys, advertiserId: number): Promise<void> {
  await redis.publish(keys.postbackInvalidation, String(advertiserId));
}

/** One postback refused by its advertiser's allowlist. */
export interface PostbackRefusal {
  /** The client address the tracker saw (after trusted proxies). */
  ip: string;
  /** The first 8 characters of the token used (`pbt_xxxx`), never the token. */
  token_prefix: string;
  /** When the tracker received it, ms since the epoch. */
  received_ms: number;
}

/**
 * Appends a refusal to `keys.postbackRefusals(advertiserId)` (XADD, trimmed to about {@link REFUSALS_MAXLEN}).
 * @throws on a Redis error (the tracker does not wait for it, and only logs a failure).
 */
export async function recordPostbackRefusal(
  redis: Redis,
  keys: RedisKeys,
  advertiserId: number,
  r: PostbackRefusal,
): Promise<void> {
  await redis.xadd(
    keys.postbackRefusals(advertiserId),
    'MAXLEN',
    '~',
    REFUSALS_MAXLEN,
    '*',
    'ip',
    r.ip,
    'token_prefix',
    r.token_prefix,
    'received_ms',
    String(r.received_ms),
  );
}

/** Reads one stream entry's fields (`[k1, v1, k2, v2, …]`) back into a {@link PostbackRefusal}. */
export function parsePostbackRefusal(fields: readonly string[]): PostbackRefusal {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
  return {
    ip: m.get('ip') ?? '',
    token_prefix: m.get('token_prefix') ?? '',
    received_ms: Number(m.get('received_ms')),
  };
}
