import net from 'node:net';

/** Most addresses whose trust decision is memoised; past it the memo starts afresh (a flood of IPs cannot grow it). */
export const PROXY_MEMO_MAX = 10_000;

/**
 * Decides which peers are trusted proxies (CIDR list, IPv4 and IPv6) and derives the client IP.
 * Decisions are memoised per peer address (at most {@link PROXY_MEMO_MAX}), since a tracker sees few distinct proxies.
 */
export class TrustedProxies {
  private readonly list = new net.BlockList();
  private readonly memo = new Map<string, boolean>();

  /** @throws Error when a CIDR is malformed (config error at start-up). */
  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const [addr, bits] = cidr.split('/');
      const family = net.isIP(addr ?? '');
      if (!family) throw new Error(`TRUSTED_PROXIES: bad address in ${cidr}`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
        throw new Error(`TRUSTED_PROXIES: bad prefix in ${cidr}`);
      }
      this.list.addSubnet(addr!, prefix, type);
    }
  }

  /** Addresses memoised now (≤ {@link PROXY_MEMO_MAX}). */
  get memoSize(): number {
    return this.memo.size;
  }

  /** Whether `ip` (text form) belongs to a trusted range. */
  isTrusted(ip: string): boolean {
    let v = this.memo.get(ip);
    if (v === undefined) {
      v = check(this.list, ip);
      if (this.memo.size >= PROXY_MEMO_MAX) this.memo.clear();
      this.memo.set(ip, v);
    }
    return v;
  }

  /**
   * The client address: the peer itself, or — when the peer is trusted — the right-most address of
   * `X-Forwarded-For` that is not itself a trusted proxy (left-most entries are client-controlled).
   */
  clientIp(peer: string, xff: string): string {
    if (xff === '' || !this.isTrusted(peer)) return peer;
    // One hop (the usual load balancer in front): the whole header is the client's address.
    if (xff.indexOf(',') < 0) return normalise(xff.trim()) || peer;
    const parts = xff.split(',');
    for (let i = parts.length - 1; i >= 0; i--) {
      const ip = normalise(parts[i]!.trim());
      if (ip === '') return peer;
      // The left-most entry is the client whatever it is, so it needs no trust check (the common single-hop case).
      if (i === 0 || !this.isTrusted(ip)) return ip;
    }
    return peer;
  }
}

function check(list: net.BlockList, ip: string): boolean {
  const family = net.isIP(ip);
  if (family === 4) return list.check(ip, 'ipv4');
  if (family === 6) {
    // IPv4-mapped IPv6 (::ffff:a.b.c.d) is matched against the IPv4 ranges too.
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    if (m && list.check(m[1]!, 'ipv4')) return true;
    return list.check(ip, 'ipv6');
  }
  return false;
}

/** Text form of an address as uWS or a proxy gives it; '' when it is not an IP address. */
export function normalise(ip: string): string {
  if (net.isIP(ip)) {
    // IPv4-mapped IPv6 (dual-stack sockets) is recorded as the IPv4 address.
    return ip.startsWith('::ffff:') && net.isIPv4(ip.slice(7)) ? ip.slice(7) : ip.toLowerCase();
  }
  // "[v6]:port" or "v4:port" forms sometimes appear in X-Forwarded-For.
  const m = /^\[([0-9a-fA-F:.]+)\](?::\d+)?$/.exec(ip) ?? /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(ip);
  if (m && net.isIP(m[1]!)) return m[1]!.toLowerCase();
  return '';
}
