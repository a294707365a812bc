/**
 * Payout address validation per network format (no network access: format and checksum only).
 * BTC: base58check P2PKH (version 0x00, '1…') / P2SH (0x05, '3…'), bech32 segwit v0 and bech32m v1+ ('bc1…', BIP-173/350).
 * ETH / ERC20: '0x' + 40 hex; mixed case must carry a valid EIP-55 checksum.
 * TRX / TRC20: base58check, 34 characters, 21 bytes starting with 0x41 ('T…').
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bech32, bech32m, createBase58check } from '@scure/base';

export type PayoutNetwork = 'BTC' | 'ETH' | 'ERC20' | 'TRX' | 'TRC20';
export const PAYOUT_NETWORKS: readonly PayoutNetwork[] = ['BTC', 'ETH', 'ERC20', 'TRX', 'TRC20'];

const base58check = createBase58check(sha256);

function decodeBase58check(s: string): Uint8Array | undefined {
  try {
    return base58check.decode(s);
  } catch {
    return undefined;
  }
}

function isBtcBech32(addr: string): boolean {
  if (addr !== addr.toLowerCase() && addr !== addr.toUpperCase()) return false;
  const lower = addr.toLowerCase();
  if (!lower.startsWith('bc1')) return false;
  for (const codec of [bech32, bech32m]) {
    let decoded: { prefix: string; words: number[] };
    try {
      decoded = codec.decode(lower as `${string}1${string}`, 90);
    } catch {
      continue;
    }
    if (decoded.prefix !== 'bc' || decoded.words.length < 1) continue;
    const version = decoded.words[0]!;
    if (version > 16) return false;
    let program: Uint8Array;
    try {
      program = codec.fromWords(decoded.words.slice(1));
    } catch {
      return false;
    }
    if (program.length < 2 || program.length > 40) return false;
    // BIP-350: v0 uses bech32 with a 20- or 32-byte program; v1+ uses bech32m.
    if (version === 0) return codec === bech32 && (program.length === 20 || program.length === 32);
    return codec === bech32m;
  }
  return false;
}

function isBtc(addr: string): boolean {
  if (/^[13][1-9A-HJ-NP-Za-km-z]{25,34}$/.test(addr)) {
    const bytes = decodeBase58check(addr);
    return !!bytes && bytes.length === 21 && (bytes[0] === 0x00 || bytes[0] === 0x05);
  }
  return isBtcBech32(addr);
}

/** EIP-55: hex digit i is upper case iff nibble i of keccak256(lower-case hex address) is ≥ 8. */
export function toEip55(addr: string): string {
  const hex = addr.slice(2).toLowerCase();
  const hash = keccak_256(new TextEncoder().encode(hex));
  let out = '0x';
  for (let i = 0; i < hex.length; i++) {
    const nibble = (hash[i >> 1]! >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    out += nibble >= 8 ? hex[i]!.toUpperCase() : hex[i];
  }
  return out;
}

function isEth(addr: string): boolean {
  if (!/^0x[0-9a-fA-F]{40}$/.test(addr)) return false;
  const body = addr.slice(2);
  if (body === body.toLowerCase() || body === body.toUpperCase()) return true;
  return toEip55(addr) === addr;
}

function isTron(addr: string): boolean {
  if (!/^T[1-9A-HJ-NP-Za-km-z]{33}$/.test(addr)) return false;
  const bytes = decodeBase58check(addr);
  return !!bytes && bytes.length === 21 && bytes[0] === 0x41;
}

/** Whether `address` is well-formed (format and checksum) for `network`. */
export function isValidPayoutAddress(network: PayoutNetwork, address: string): boolean {
  switch (network) {
    case 'BTC':
      return isBtc(address);
    case 'ETH':
    case 'ERC20':
      return isEth(address);
    case 'TRX':
    case 'TRC20':
      return isTron(address);
    default:
      return false;
  }
}
