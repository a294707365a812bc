/**
 * Delayed labels of one partition: pending labels ordered by due event time ({@link LabelHeap}) and the set of
 * click ids that got a positive label ({@link PositiveSet}). Both have a fixed capacity.
 */
import { type ByteReader, type ByteWriter, SnapshotFormatError } from './bytes.ts';
import { MAX_FEATURES } from './model.ts';

/**
 * Min-heap of pending labels by (due ms, arrival sequence), each with its click's feature slots and click-id hash.
 * Capacity is fixed (`cap` entries); storage grows by doubling up to it, so a quiet partition stays small.
 * Bytes per entry: 8 due + 8 seq + 8 click hash + 1 count + 4 × {@link MAX_FEATURES} slots + 4 heap index = 125.
 */
export class LabelHeap {
  private size_ = 0;
  private alloc = 0;
  due = new Float64Array(0);
  seq = new Float64Array(0);
  ka = new Uint32Array(0);
  kb = new Uint32Array(0);
  nf = new Uint8Array(0);
  feat = new Uint32Array(0);
  /** heap[i] = entry index; entries [0, size) are always exactly the heap's contents (swap-remove on pop). */
  private heap = new Int32Array(0);
  private where = new Int32Array(0);

  constructor(readonly cap: number) {}

  get size(): number {
    return this.size_;
  }

  private grow(): void {
    const next = Math.min(this.cap, Math.max(1024, this.alloc * 2));
    const g = <T extends Float64Array | Uint32Array | Uint8Array | Int32Array>(
      a: T,
      per: number,
      make: new (n: number) => T,
    ): T => {
      const b = new make(next * per);
      b.set(a as never);
      return b;
    };
    this.due = g(this.due, 1, Float64Array);
    this.seq = g(this.seq, 1, Float64Array);
    this.ka = g(this.ka, 1, Uint32Array);
    this.kb = g(this.kb, 1, Uint32Array);
    this.nf = g(this.nf, 1, Uint8Array);
    this.feat = g(this.feat, MAX_FEATURES, Uint32Array);
    this.heap = g(this.heap, 1, Int32Array);
    this.where = g(this.where, 1, Int32Array);
    this.alloc = next;
  }

  private less(x: number, y: number): boolean {
    const dx = this.due[x]!;
    const dy = this.due[y]!;
    return dx < dy || (dx === dy && this.seq[x]! < this.seq[y]!);
  }

  private place(pos: number, e: number): void {
    this.heap[pos] = e;
    this.where[e] = pos;
  }

  private siftUp(pos: number): void {
    const e = this.heap[pos]!;
    while (pos > 0) {
      const parent = (pos - 1) >> 1;
      const pe = this.heap[parent]!;
      if (!this.less(e, pe)) break;
      this.place(pos, pe);
      pos = parent;
    }
    this.place(pos, e);
  }

  private siftDown(pos: number): void {
    const n = this.size_;
    const e = this.heap[pos]!;
    for (;;) {
      let c = 2 * pos + 1;
      if (c >= n) break;
      if (c + 1 < n && this.less(this.heap[c + 1]!, this.heap[c]!)) c++;
      if (!this.less(this.heap[c]!, e)) break;
      this.place(pos, this.heap[c]!);
      pos = c;
    }
    this.place(pos, e);
  }

  /** Adds a label; false (nothing stored) when the heap is at capacity. */
  push(
    dueMs: number,
    seq: number,
    ka: number,
    kb: number,
    slots: ArrayLike<number>,
    offset: number,
    count: number,
  ): boolean {
    if (this.size_ >= this.cap) return false;
    if (this.size_ >= this.alloc) this.grow();
    const e = this.size_++;
    this.due[e] = dueMs;
    this.seq[e] = seq;
    this.ka[e] = ka;
    this.kb[e] = kb;
    const c = Math.min(count, MAX_FEATURES);
    this.nf[e] = c;
    const base = e * MAX_FEATURES;
    for (let k = 0; k < c; k++) this.feat[base + k] = slots[offset + k]!;
    this.heap[e] = e;
    this.where[e] = e;
    this.siftUp(e);
    return true;
  }

  /** Entry index of the earliest label, or -1 when empty. Valid until the next push/pop. */
  peek(): number {
    return this.size_ === 0 ? -1 : this.heap[0]!;
  }

  /**
   * Removes the earliest label, copying its fields to `out` (features into out.slots from 0).
   */
  pop(out: PoppedLabel): void {
    const top = this.heap[0]!;
    out.dueMs = this.due[top]!;
    out.seq = this.seq[top]!;
    out.ka = this.ka[top]!;
    out.kb = this.kb[top]!;
    out.count = this.nf[top]!;
    out.slots.set(this.feat.subarray(top * MAX_FEATURES, top * MAX_FEATURES + out.count));
    const last = --this.size_;
    if (last > 0) {
      // Keep entries dense in [0, size): move the last entry into the freed index, then fix the heap.
      this.place(0, this.heap[last]!);
      if (top !== last) this.moveEntry(last, top);
      this.siftDown(0);
    }
  }

  private moveEntry(from: number, to: number): void {
    this.due[to] = this.due[from]!;
    this.seq[to] = this.seq[from]!;
    this.ka[to] = this.ka[from]!;
    this.kb[to] = this.kb[from]!;
    this.nf[to] = this.nf[from]!;
    this.feat.copyWithin(to * MAX_FEATURES, from * MAX_FEATURES, (from + 1) * MAX_FEATURES);
    this.place(this.where[from]!, to);
  }

  /** Appends the pending labels (in entry order; heap order is rebuilt from (due, seq), a total order). */
  write(w: ByteWriter): void {
    w.u32(this.size_);
    for (let e = 0; e < this.size_; e++) {
      w.f64(this.due[e]!);
      w.f64(this.seq[e]!);
      w.u32(this.ka[e]!);
      w.u32(this.kb[e]!);
      const c = this.nf[e]!;
      w.u8(c);
      for (let k = 0; k < c; k++) w.u32(this.feat[e * MAX_FEATURES + k]!);
    }
  }

  /** Reads labels written by {@link write} into this (empty) heap. @throws SnapshotFormatError when over capacity. */
  read(r: ByteReader): void {
    const n = r.u32();
    if (n > this.cap) throw new SnapshotFormatError('label queue over capacity');
    const slots = new Uint32Array(MAX_FEATURES);
    for (let e = 0; e < n; e++) {
      const due = r.f64();
      const seq = r.f64();
      const ka = r.u32();
      const kb = r.u32();
      const c = r.u8();
      if (c > MAX_FEATURES) throw new SnapshotFormatError('too many features');
      for (let k = 0; k < c; k++) slots[k] = r.u32();
      this.push(due, seq, ka, kb, slots, 0, c);
    }
  }
}

/** Output cell of {@link LabelHeap.pop}. */
export interface PoppedLabel {
  dueMs: number;
  seq: number;
  ka: number;
  kb: number;
  count: number;
  slots: Uint32Array;
}

export function poppedLabel(): PoppedLabel {
  return { dueMs: 0, seq: 0, ka: 0, kb: 0, count: 0, slots: new Uint32Array(MAX_FEATURES) };
}

/**
 * Bounded set of 64-bit click-id hashes that got a positive label: 8-way set-associative, evicting the oldest
 * insertion of the set when full, so it remembers (at least) the last ~cap/2 positives. Used to drop duplicate
 * deliveries of one conversion label and to cancel the click's pending negative. Error: a click id forgotten
 * (evicted) and then delivered again is trained twice; a 64-bit collision (negligible) drops a label.
 * Bytes per entry: 8 key + 8 insertion sequence.
 */
export class PositiveSet {
  private readonly ka: Uint32Array;
  private readonly kb: Uint32Array;
  private readonly at: Float64Array;
  private readonly setMask: number;
  size = 0;

  /** @param cap power of two ≥ 8. */
  constructor(readonly cap: number) {
    if (cap < 8 || (cap & (cap - 1)) !== 0) throw new RangeError('positive set capacity must be a power of two ≥ 8');
    this.ka = new Uint32Array(cap);
    this.kb = new Uint32Array(cap);
    this.at = new Float64Array(cap);
    this.setMask = (cap - 1) & ~7;
  }

  has(a: number, b: number): boolean {
    const base = a & this.setMask;
    for (let s = base; s < base + 8; s++) {
      if (this.kb[s] === 0) return false;
      if (this.ka[s] === a && this.kb[s] === b) return true;
    }
    return false;
  }

  /** Adds the key (stamped with `seq` for eviction order); false when it was already present. */
  add(a: number, b: number, seq: number): boolean {
    const base = a & this.setMask;
    let victim = base;
    for (let s = base; s < base + 8; s++) {
      if (this.kb[s] === 0) {
        victim = s;
        this.size++;
        break;
      }
      if (this.ka[s] === a && this.kb[s] === b) return false;
      if (this.at[s]! < this.at[victim]!) victim = s;
    }
    this.ka[victim] = a;
    this.kb[victim] = b;
    this.at[victim] = seq;
    return true;
  }

  write(w: ByteWriter): void {
    w.u32(this.size);
    for (let s = 0; s < this.cap; s++) {
      if (this.kb[s] === 0) continue;
      w.u32(s);
      w.u32(this.ka[s]!);
      w.u32(this.kb[s]!);
      w.f64(this.at[s]!);
    }
  }

  read(r: ByteReader): void {
    const n = r.u32();
    for (let i = 0; i < n; i++) {
      const s = r.u32();
      if (s >= this.cap) throw new SnapshotFormatError('positive set slot out of range');
      this.ka[s] = r.u32();
      this.kb[s] = r.u32();
      this.at[s] = r.f64();
    }
    this.size = n;
  }
}
