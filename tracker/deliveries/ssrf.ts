import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Addresses a delivery must never reach unless its host is allowlisted: private (RFC 1918, ULA),
 * loopback, link-local (incl. the 169.254.169.254 cloud metadata service), CGNAT, unspecified,
 * multicast, reserved and documentation ranges. IPv6 prefixes that embed an IPv4 address
 * (NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, IPv4-compatible `::/96`) are blocked whole: a
 * NAT64 gateway or a dual stack would carry them to the embedded, possibly private, IPv4 address.
 */
const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 96],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv6');
}

/** Whether an IP address (v4 or v6, incl. IPv4-mapped v6) is private/loopback/link-local/metadata/reserved. */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return BLOCKED.check(mapped[1]!, 'ipv4');
    return BLOCKED.check(address, 'ipv6');
  }
  return true;
}

/** Thrown when a destination is refused by the SSRF rules; never retried. */
export class DestinationRefusedError extends Error {
  override name = 'DestinationRefusedError';
  readonly code = 'DESTINATION_REFUSED';
}

/** `host:port` of a URL, lower-case, IPv6 without brackets, default port filled in. */
export function destinationOf(url: URL): { host: string; port: number; key: string } {
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return { host, port, key: `${host}:${port}` };
}

/**
 * The allowlist of `DELIVERY_ALLOWED_HOSTS`: entries `host` (any port) or `host:port`
 * (`[v6]:port` for IPv6).
 */
export class HostAllowlist {
  private readonly anyPort = new Set<string>();
  private readonly withPort = new Set<string>();
  constructor(entries: readonly string[]) {
    for (const raw of entries) {
      const e = raw.trim().toLowerCase();
      if (!e) continue;
      const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(e);
      if (v6) {
        if (v6[2]) this.withPort.add(`${v6[1]}:${v6[2]}`);
        else this.anyPort.add(v6[1]!);
        continue;
      }
      const m = /^([^:]+):(\d+)$/.exec(e);
      if (m) this.withPort.add(`${m[1]}:${m[2]}`);
      else this.anyPort.add(e);
    }
  }
  allows(host: string, port: number): boolean {
    const h = host.toLowerCase();
    return this.anyPort.has(h) || this.withPort.has(`${h}:${port}`);
  }
}

/**
 * Checks a URL before anything is sent or stored: http(s) only, and a literal IP or `localhost`
 * in a blocked range is refused unless allowlisted. Host names are checked again when they resolve
 * ({@link guardedLookup}), which also covers DNS rebinding.
 * @throws DestinationRefusedError
 */
export function checkUrl(url: URL, allow: HostAllowlist): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new DestinationRefusedError(`scheme ${url.protocol} is not allowed`);
  }
  const { host, port } = destinationOf(url);
  if (allow.allows(host, port)) return;
  if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.internal')) {
    throw new DestinationRefusedError(`destination ${host} is not allowed`);
  }
  if (isIP(host) && isBlockedAddress(host)) {
    throw new DestinationRefusedError(`destination ${host} is a private, loopback or reserved address`);
  }
}

type LookupCb = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for node:http that refuses host names resolving to any blocked address, so the
 * address checked is the address connected to.
 */
export function guardedLookup(allowed: boolean) {
  return (hostname: string, options: { all?: boolean; family?: number }, cb: LookupCb): void => {
    dnsLookup(hostname, { all: true, family: options.family ?? 0 }, (err, addrs) => {
      if (err) return cb(err, []);
      if (!allowed) {
        const bad = addrs.find((a) => isBlockedAddress(a.address));
        if (bad) {
          const e = new DestinationRefusedError(
            `destination ${hostname} resolves to a private, loopback or reserved address`,
          ) as unknown as NodeJS.ErrnoException;
          return cb(e, []);
        }
      }
      if (addrs.length === 0)
        return cb(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
      if (options.all) return cb(null, addrs);
      cb(null, addrs[0]!.address, addrs[0]!.family);
    });
  };
}
