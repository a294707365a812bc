/**
 * Bounded, keyed, windowed fraud state of one stream partition: computes the rules' {@link ClickFeatures} (and a
 * few extras for the model) for each click from the clicks before it, in memory, with no I/O and no clock — event
 * time is the click's own `ts_ms` and every window ends at it. Same input sequence → same output, bit for bit.
 *
 * Structures (all fixed-capacity typed arrays, allocated once; `cap` = `maxKeys` per table, default 2^17):
 *
 * - **Key tables** ({@link KeyTable}): 8-way set-associative hash tables keyed by a 64-bit hash (two 32-bit
 *   halves) of ip / ip+campaign / ip+link. A new key takes an empty way of its set, else evicts the way seen
 *   least recently (smallest last-seen event time; ties → lowest slot), so a flood of new keys (10^6 random IPs)
 *   recycles the stalest entries and a flood from one key touches one entry: memory never grows. Error: two
 *   different keys share an entry only on a full 64-bit collision (≈ n²/2^65, negligible); evicting a key that is
 *   still live (only when its 8-way set holds 8 keys fresher than it) loses its history — its next click counts
 *   from 1, i.e. an undercount; at load ≤ 50 % this is rare (each set then holds ~4 keys on average).
 * - **Bucketed window counters** ({@link BucketCounters}): a window W is kept as W/B buckets of width B plus the
 *   current one, summed at the click's bucket. The sum covers `[ts − W − (ts mod B), ts]` ⊇ `(ts − W, ts]`:
 *   it can OVERCOUNT by the clicks of at most one bucket width B older than the window, never undercount (except
 *   after eviction, above). Counts saturate at 65,535 per bucket. Clicks older than the newest bucket − W/B are
 *   not counted (out of order by more than the window). Windows:
 *   `ip_clicks_1m` 6 × 10 s (+1) · `ip_clicks_24h` 24 × 1 h (+1) · `ip_campaign_clicks_1h` 12 × 5 min (+1) ·
 *   `ip_link_earlier` 10 × 1 min (+1), made exact at 0: it is 0 when the key's last click is older than 10 min.
 * - **Distinct user agents per IP per UTC day**: linear counting (Whang, Vander-Zanden & Taylor 1990) over a
 *   128-bit bitmap: estimate `round(−m ln(V))`, m = 128, V = fraction of zero bits; reset when the UTC day
 *   changes. Exact up to ~7 agents unless two share a bit (probability ≈ k²/256); standard error ≈ 7 % at 50
 *   (the rule's hard limit); saturates near 620. A click from an earlier UTC day than the IP's current sketch
 *   counts as 1 (its day's sketch is gone).
 *
 * Bytes per key (typed-array payload): ip table 108 (key 8, last-seen 8, 1 m 7×2 + head 4, 24 h 25×2 + head 4,
 * UA bitmap 16 + day 4); ip+campaign 46 (key 8, last 8, 13×2, head 4); ip+link 42 (key 8, last 8, 11×2, head 4):
 * 196 bytes per key for the three tables, 25.7 MB per partition at the default 2^17 keys per table.
 */
import { type ByteReader, type ByteWriter, SnapshotFormatError } from './bytes.ts';
import { H2, hash64, mix64 } from './hash.ts';
import { type ClickFeatures, FRAUD_LIMITS } from './rules.ts';

/** Ways per set of a {@link KeyTable}. */
const WAYS = 8;

/** Default keys per table (2^17). */
export const DEFAULT_MAX_KEYS = 1 << 17;

/**
 * Fixed-capacity 8-way set-associative table of 64-bit keys with last-seen eviction (see the module docstring).
 * Slot payloads live in parallel arrays owned by the caller; {@link fresh} tells the caller to reset them.
 */
export class KeyTable {
  readonly cap: number;
  private readonly setMask: number;
  readonly ka: Uint32Array;
  /** Second key half; always odd when occupied, 0 = empty slot. */
  readonly kb: Uint32Array;
  /** Last-seen event time per slot, ms. */
  readonly last: Float64Array;
  /** Occupied slots. */
  size = 0;
  /** Keys evicted to make room since creation. */
  evictions = 0;
  /** Whether the last {@link find} inserted the key (the payload must be reset). */
  fresh = false;

  /** @param cap power of two ≥ 8. @throws RangeError otherwise. */
  constructor(cap: number) {
    if (cap < WAYS || (cap & (cap - 1)) !== 0)
      throw new RangeError(`table capacity must be a power of two ≥ 8: ${cap}`);
    this.cap = cap;
    this.setMask = (cap - 1) & ~(WAYS - 1);
    this.ka = new Uint32Array(cap);
    this.kb = new Uint32Array(cap);
    this.last = new Float64Array(cap);
  }

  /** Slot of key (a, b) or -1 (read-only). */
  lookup(a: number, b: number): number {
    const base = a & this.setMask;
    for (let s = base; s < base + WAYS; s++) {
      if (this.kb[s] === 0) return -1;
      if (this.ka[s] === a && this.kb[s] === b) return s;
    }
    return -1;
  }

  /** Slot of key (a, b), inserted (evicting the set's least recently seen key if needed) when absent. */
  find(a: number, b: number, tsMs: number): number {
    const base = a & this.setMask;
    let victim = base;
    let victimLast = Number.POSITIVE_INFINITY;
    for (let s = base; s < base + WAYS; s++) {
      const kb = this.kb[s]!;
      if (kb === 0) {
        // No deletions ever happen, so the first empty way ends the key's probe sequence.
        this.ka[s] = a;
        this.kb[s] = b;
        this.last[s] = tsMs;
        this.size++;
        this.fresh = true;
        return s;
      }
      if (kb === b && this.ka[s] === a) {
        this.fresh = false;
        return s;
      }
      if (this.last[s]! < victimLast) {
        victimLast = this.last[s]!;
        victim = s;
      }
    }
    this.ka[victim] = a;
    this.kb[victim] = b;
    this.last[victim] = tsMs;
    this.evictions++;
    this.fresh = true;
    return victim;
  }

  /** Marks slot `s` seen at `tsMs` (last-seen only moves forward). */
  touch(s: number, tsMs: number): void {
    if (tsMs > this.last[s]!) this.last[s] = tsMs;
  }
}

/**
 * Per-slot sliding window counters: `buckets` = W/B + 1 buckets of `widthMs` = B (see the module docstring for the
 * error bound). `head` is the index (floor(ts / B)) of the newest bucket of the slot.
 */
export class BucketCounters {
  readonly counts: Uint16Array;
  readonly head: Int32Array;
  constructor(
    cap: number,
    readonly buckets: number,
    readonly widthMs: number,
  ) {
    this.counts = new Uint16Array(cap * buckets);
    this.head = new Int32Array(cap);
  }

  reset(slot: number, tsMs: number): void {
    this.counts.fill(0, slot * this.buckets, (slot + 1) * this.buckets);
    this.head[slot] = Math.floor(tsMs / this.widthMs);
  }

  /** Counts one event at `tsMs`, then returns the window's sum ending at `tsMs` (including it). */
  add(slot: number, tsMs: number): number {
    const n = this.buckets;
    const base = slot * n;
    const b = Math.floor(tsMs / this.widthMs);
    let h = this.head[slot]!;
    if (b > h) {
      const k = Math.min(n, b - h);
      for (let i = 1; i <= k; i++) this.counts[base + ((h + i) % n)] = 0;
      this.head[slot] = b;
      h = b;
    }
    if (b <= h - n) return 1; // older than everything kept: only the click itself is known
    const at = base + (b % n);
    if (this.counts[at]! < 0xffff) this.counts[at]!++;
    let sum = 0;
    // A late click's window ends at its own bucket: buckets newer than b are not in it.
    for (let j = Math.max(b - n + 1, h - n + 1); j <= b; j++) sum += this.counts[base + (j % n)]!;
    return sum;
  }
}

/** What {@link FraudState.observe} reports for a click: the rules' features plus the model's extras. */
export interface ClickObservation extends ClickFeatures {
  /** Event time since the IP's previous click (ms, ≥ 0), or -1 when the IP has no known earlier click. */
  ip_prev_gap_ms: number;
  /** Event time since the previous click from the IP on the same campaign (ms), or -1. */
  ip_campaign_prev_gap_ms: number;
}

/** A fresh {@link ClickObservation} to reuse as `out`. */
export function emptyObservation(): ClickObservation {
  return {
    ip_clicks_1m: 0,
    ip_clicks_24h: 0,
    ip_campaign_clicks_1h: 0,
    ip_link_earlier: 0,
    ip_user_agents_day: 0,
    ip_prev_gap_ms: -1,
    ip_campaign_prev_gap_ms: -1,
  };
}

const DAY_MS = 86_400_000;
const UA_BITS = 128;
/** −m ln(V) for every possible number of zero bits, so estimating costs a lookup. */
const LINEAR_COUNT = Array.from({ length: UA_BITS + 1 }, (_, zeros) =>
  zeros === 0 ? Math.round(UA_BITS * Math.log(UA_BITS)) : Math.round(-UA_BITS * Math.log(zeros / UA_BITS)),
);

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

const STATE_MAGIC = 0x46535431; // 'FST1'

/** The bounded windowed state of one partition (see the module docstring). */
export class FraudState {
  readonly ip: KeyTable;
  readonly ipCampaign: KeyTable;
  readonly ipLink: KeyTable;
  private readonly ip1m: BucketCounters;
  private readonly ip24h: BucketCounters;
  private readonly ipUa: Uint32Array;
  private readonly ipUaDay: Int32Array;
  private readonly camp1h: BucketCounters;
  private readonly link10m: BucketCounters;

  /** @param maxKeys keys per table, power of two ≥ 8 (default 2^17). @throws RangeError otherwise. */
  constructor(readonly maxKeys = DEFAULT_MAX_KEYS) {
    this.ip = new KeyTable(maxKeys);
    this.ipCampaign = new KeyTable(maxKeys);
    this.ipLink = new KeyTable(maxKeys);
    this.ip1m = new BucketCounters(maxKeys, 7, 10_000);
    this.ip24h = new BucketCounters(maxKeys, 25, 3_600_000);
    this.ipUa = new Uint32Array(maxKeys * 4);
    this.ipUaDay = new Int32Array(maxKeys);
    this.camp1h = new BucketCounters(maxKeys, 13, 300_000);
    this.link10m = new BucketCounters(maxKeys, 11, 60_000);
  }

  /**
   * Records a click and returns its features (into `out`), computed from the clicks recorded before it plus itself.
   * Keys are pre-hashed (see {@link observe}): the IP's 64-bit hash (ipA, ipB), the link code's and the user
   * agent's 32-bit hashes.
   */
  observeHashed(
    ipA: number,
    ipB: number,
    campaignId: number,
    linkHash: number,
    uaHash: number,
    tsMs: number,
    out: ClickObservation,
  ): ClickObservation {
    // ip
    const ip = this.ip;
    const s = ip.find(ipA, ipB, tsMs);
    const dayIndex = Math.floor(tsMs / DAY_MS);
    if (ip.fresh) {
      this.ip1m.reset(s, tsMs);
      this.ip24h.reset(s, tsMs);
      this.ipUa.fill(0, s * 4, s * 4 + 4);
      this.ipUaDay[s] = dayIndex;
      out.ip_prev_gap_ms = -1;
    } else {
      const prev = ip.last[s]!;
      out.ip_prev_gap_ms = tsMs >= prev ? tsMs - prev : 0;
      ip.touch(s, tsMs);
    }
    out.ip_clicks_1m = this.ip1m.add(s, tsMs);
    out.ip_clicks_24h = this.ip24h.add(s, tsMs);
    const day = this.ipUaDay[s]!;
    if (dayIndex < day) out.ip_user_agents_day = 1;
    else {
      const u = s * 4;
      if (dayIndex > day) {
        this.ipUa.fill(0, u, u + 4);
        this.ipUaDay[s] = dayIndex;
      }
      const bit = uaHash & (UA_BITS - 1);
      this.ipUa[u + (bit >>> 5)]! |= 1 << (bit & 31);
      const ones =
        popcount32(this.ipUa[u]!) +
        popcount32(this.ipUa[u + 1]!) +
        popcount32(this.ipUa[u + 2]!) +
        popcount32(this.ipUa[u + 3]!);
      out.ip_user_agents_day = LINEAR_COUNT[UA_BITS - ones]!;
    }

    // ip + campaign
    const ca = mix64(ipA, ipB, campaignId);
    const cb = H2[0]!;
    const cs = this.ipCampaign.find(ca, cb, tsMs);
    if (this.ipCampaign.fresh) {
      this.camp1h.reset(cs, tsMs);
      out.ip_campaign_prev_gap_ms = -1;
    } else {
      const prev = this.ipCampaign.last[cs]!;
      out.ip_campaign_prev_gap_ms = tsMs >= prev ? tsMs - prev : 0;
      this.ipCampaign.touch(cs, tsMs);
    }
    out.ip_campaign_clicks_1h = this.camp1h.add(cs, tsMs);

    // ip + link
    const la = mix64(ipA, ipB, linkHash ^ 0x6c696e6b);
    const lb = H2[0]!;
    const ls = this.ipLink.find(la, lb, tsMs);
    if (this.ipLink.fresh) {
      this.link10m.reset(ls, tsMs);
      this.link10m.add(ls, tsMs);
      out.ip_link_earlier = 0;
    } else {
      const prev = this.ipLink.last[ls]!;
      this.ipLink.touch(ls, tsMs);
      const inWindow = this.link10m.add(ls, tsMs) - 1;
      out.ip_link_earlier = prev >= tsMs - FRAUD_LIMITS.duplicateWindowMs ? Math.max(1, inWindow) : 0;
    }
    return out;
  }

  /** {@link observeHashed} from the raw strings (convenience for tests and tools). */
  observe(
    ip: string,
    campaignId: number,
    linkCode: string,
    userAgent: string,
    tsMs: number,
    out: ClickObservation = emptyObservation(),
  ): ClickObservation {
    const ipA = hash64(ip);
    const ipB = H2[0]!;
    return this.observeHashed(ipA, ipB, campaignId, hash64(linkCode), hash64(userAgent), tsMs, out);
  }

  /** Occupied entries per table. */
  sizes(): { ip: number; ipCampaign: number; ipLink: number } {
    return { ip: this.ip.size, ipCampaign: this.ipCampaign.size, ipLink: this.ipLink.size };
  }

  /** Appends the state (occupied slots only, with their slot index) to a snapshot. */
  write(w: ByteWriter): void {
    w.u32(STATE_MAGIC);
    w.u32(this.maxKeys);
    const table = (t: KeyTable, payload: (s: number) => void) => {
      w.u32(t.size);
      w.f64(t.evictions);
      for (let s = 0; s < t.cap; s++) {
        if (t.kb[s] === 0) continue;
        w.u32(s);
        w.u32(t.ka[s]!);
        w.u32(t.kb[s]!);
        w.f64(t.last[s]!);
        payload(s);
      }
    };
    const counters = (c: BucketCounters, s: number) => {
      w.i32(c.head[s]!);
      for (let i = s * c.buckets; i < (s + 1) * c.buckets; i++) w.u16(c.counts[i]!);
    };
    table(this.ip, (s) => {
      counters(this.ip1m, s);
      counters(this.ip24h, s);
      for (let i = 0; i < 4; i++) w.u32(this.ipUa[s * 4 + i]!);
      w.i32(this.ipUaDay[s]!);
    });
    table(this.ipCampaign, (s) => counters(this.camp1h, s));
    table(this.ipLink, (s) => counters(this.link10m, s));
  }

  /** Reads a state written by {@link write}. @throws SnapshotFormatError on a malformed snapshot. */
  static read(r: ByteReader): FraudState {
    if (r.u32() !== STATE_MAGIC) throw new SnapshotFormatError('not a fraud state snapshot');
    const st = new FraudState(r.u32());
    const table = (t: KeyTable, payload: (s: number) => void) => {
      const n = r.u32();
      t.evictions = r.f64();
      for (let i = 0; i < n; i++) {
        const s = r.u32();
        if (s >= t.cap) throw new SnapshotFormatError('slot out of range');
        t.ka[s] = r.u32();
        t.kb[s] = r.u32();
        t.last[s] = r.f64();
        payload(s);
      }
      t.size = n;
    };
    const counters = (c: BucketCounters, s: number) => {
      c.head[s] = r.i32();
      for (let i = s * c.buckets; i < (s + 1) * c.buckets; i++) c.counts[i] = r.u16();
    };
    table(st.ip, (s) => {
      counters(st.ip1m, s);
      counters(st.ip24h, s);
      for (let i = 0; i < 4; i++) st.ipUa[s * 4 + i] = r.u32();
      st.ipUaDay[s] = r.i32();
    });
    table(st.ipCampaign, (s) => counters(st.camp1h, s));
    table(st.ipLink, (s) => counters(st.link10m, s));
    return st;
  }
}

/** Bytes of typed-array payload per key, per table (see the module docstring). */
export const STATE_BYTES_PER_KEY = { ip: 108, ipCampaign: 46, ipLink: 42 } as const;
