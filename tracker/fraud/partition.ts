/**
 * Which stream partition a click belongs to. The ingest routes every click of one client IP to one partition,
 * so the consumer that owns the partition can keep that IP's fraud state in memory; the fraud evaluation
 * (bench/fraud-eval.ts) routes with the same function.
 */

const encoder = new TextEncoder();

/** FNV-1a, 32 bit, over the UTF-8 bytes of `s` (offset basis 2166136261, prime 16777619). */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return fnv1a32Bytes(encoder.encode(s));
    h = Math.imul(h ^ c, 16777619);
  }
  return h >>> 0;
}

function fnv1a32Bytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 16777619);
  return h >>> 0;
}

/**
 * Partition of a key (the client IP as the ingest sees it): FNV-1a 32-bit of the key's UTF-8 bytes mod `partitions`.
 * @param partitions ≥ 1.
 * @returns an integer in [0, partitions).
 * @throws RangeError when `partitions` is not a positive integer.
 */
export function partitionOf(key: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new RangeError(`partitions must be ≥ 1, got ${partitions}`);
  return fnv1a32(key) % partitions;
}
