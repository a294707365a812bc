/**
 * Non-cryptographic hashes for the fraud engine's keyed state and feature hashing. Deterministic and
 * allocation-free: a 64-bit-ish key is two independent 32-bit hashes of the same input, returned as
 * the function result (first half) and {@link H2}[0] (second half), so the hot path allocates nothing.
 */

/** Second half of the last {@link hash64} / {@link mix64} result (a shared scratch cell, read right after the call). */
export const H2 = new Uint32Array(1);

/** fmix32 of MurmurHash3: full avalanche of a 32-bit value. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * FNV-1a (32 bit) over the string's UTF-16 code units, from `seed` (default the FNV offset basis), plus an
 * independent second hash (multiply-xorshift) in {@link H2}[0]. Both halves are never both 0 (H2 is forced odd),
 * so the pair can mark occupied table slots.
 * @returns the first 32-bit half (unsigned).
 */
export function hash64(s: string, seed = 0x811c9dc5): number {
  let a = seed >>> 0;
  let b = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 16777619);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  H2[0] = fmix32(b) | 1;
  return fmix32(a);
}

/**
 * Combines a 64-bit key (a, b) with a 32-bit value into a new 64-bit key (result, {@link H2}[0]).
 * Used for compound keys (ip + campaign, ip + link) without building strings.
 */
export function mix64(a: number, b: number, v: number): number {
  const x = fmix32((a ^ Math.imul(v, 0x9e3779b1)) >>> 0);
  H2[0] = fmix32((b + Math.imul(v ^ 0x27d4eb2f, 0x85ebca77)) >>> 0) | 1;
  return x;
}

/** Hash of an integer feature value within a namespace (32 bit, for model slots). */
export function hashInt(ns: number, v: number): number {
  return fmix32((Math.imul(ns, 0x9e3779b1) ^ fmix32(v >>> 0)) >>> 0);
}
