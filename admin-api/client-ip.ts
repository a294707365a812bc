import { BlockList, isIP } from 'node:net';
import type { Context } from 'koa';

function normalize(addr: string): string {
  const a = addr.trim();
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

/** Builds the set of trusted proxies from CIDRs (`config.TRUSTED_PROXIES`). Bad entries are ignored. */
export function trustedProxies(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [net, bits] = c.split('/');
    const type = isIP(net ?? '') === 6 ? 'ipv6' : 'ipv4';
    if (!net || !isIP(net)) continue;
    if (bits === undefined) list.addAddress(net, type);
    else list.addSubnet(net, Number(bits), type);
  }
  return list;
}

function trusted(list: BlockList, addr: string): boolean {
  const v = isIP(addr);
  return v !== 0 && list.check(addr, v === 6 ? 'ipv6' : 'ipv4');
}

/**
 * The client address: the socket peer, or, when the peer is a trusted proxy, the right-most
 * X-Forwarded-For hop that is not itself a trusted proxy (so clients cannot spoof it).
 */
export function clientIp(ctx: Context, list: BlockList): string {
  let ip = normalize(ctx.req.socket.remoteAddress ?? '');
  if (!trusted(list, ip)) return ip;
  const hops = (ctx.get('x-forwarded-for') || '')
    .split(',')
    .map(normalize)
    .filter((h) => isIP(h) !== 0);
  for (let i = hops.length - 1; i >= 0; i--) {
    ip = hops[i]!;
    if (!trusted(list, ip)) break;
  }
  return ip;
}
