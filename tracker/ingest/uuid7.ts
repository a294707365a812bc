import { randomFillSync } from 'node:crypto';

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const POOL_BYTES = 10 * 1024;

/**
 * Generates UUIDv7 strings (RFC 9562 §5.7): 48-bit Unix ms timestamp, version 7, a 12-bit counter
 * in `rand_a` (RFC 9562 §6.2 method 1, seeded randomly each millisecond with its top bit clear so it
 * has room to count), the variant bits, 54 random bits, then an 8-bit tag in the last byte (the
 * caller's stream partition; see `idTag` in tracker/events.ts). RFC 9562 lets an implementation use
 * `rand_b` for its own fixed or structured data as long as uniqueness holds; the tag costs 8 of the
 * 62 random bits (uniqueness within one ms and counter value now rests on 54 random bits plus the
 * counter, still far beyond any click rate). Ids are strictly increasing within a generator in their
 * time+counter part (hence as strings too, whatever the tag): when the clock stands still or goes
 * back, the counter advances; when the counter overflows, the timestamp is advanced by one ms.
 * Random bytes come from a pool refilled in bulk.
 */
export class UuidV7 {
  private pool = Buffer.allocUnsafe(POOL_BYTES);
  private pos = POOL_BYTES;
  private lastMs = -1;
  private counter = 0;
  private prefix = '';

  /**
   * Returns a new id for `nowMs` (UTC ms, default `Date.now()`), lower-case hex with dashes, whose last
   * byte is `tag`.
   * @param tag 0..255 (a stream partition; STREAM_PARTITIONS is at most 256).
   * @throws RangeError when `tag` is not an integer in 0..255.
   */
  next(nowMs: number = Date.now(), tag = 0): string {
    if (!(tag >= 0 && tag <= 255 && (tag | 0) === tag)) throw new RangeError(`uuid tag ${tag} not in 0..255`);
    if (this.pos + 10 > POOL_BYTES) {
      randomFillSync(this.pool);
      this.pos = 0;
    }
    const p = this.pool;
    let i = this.pos;
    this.pos += 10;
    if (nowMs > this.lastMs) {
      this.setMs(nowMs);
      this.counter = ((p[i]! << 4) | (p[i + 1]! >> 4)) & 0x7ff;
    } else if (++this.counter > 0xfff) {
      this.setMs(this.lastMs + 1);
      this.counter = ((p[i]! << 4) | (p[i + 1]! >> 4)) & 0x7ff;
    }
    const c = this.counter;
    i += 2;
    return (
      this.prefix +
      '7' +
      HEX[c >> 8]![1] +
      HEX[c & 0xff] +
      '-' +
      HEX[0x80 | (p[i]! & 0x3f)] +
      HEX[p[i + 1]!] +
      '-' +
      HEX[p[i + 2]!] +
      HEX[p[i + 3]!] +
      HEX[p[i + 4]!] +
      HEX[p[i + 5]!] +
      HEX[p[i + 6]!] +
      HEX[tag]
    );
  }

  private setMs(ms: number): void {
    this.lastMs = ms;
    const h = ms.toString(16).padStart(12, '0');
    this.prefix = h.slice(0, 8) + '-' + h.slice(8, 12) + '-';
  }
}

/** Extracts the Unix ms timestamp of a UUIDv7. */
export function uuidV7Ms(id: string): number {
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
