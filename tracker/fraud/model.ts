/**
 * Online logistic regression by FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View from the Trenches",
 * KDD 2013, Algorithm 1) over hashed binary features: each active feature of a click is one slot index in
 * [0, 2^bits); the weight of slot i is computed lazily from its accumulators z_i, n_i:
 *   w_i = 0 if |z_i| ≤ λ1, else −(z_i − sgn(z_i) λ1) / ((β + √n_i) / α + λ2)
 * and a label y ∈ {0, 1} updates, with g = p − y: σ = (√(n_i + g²) − √n_i) / α, z_i += g − σ w_i, n_i += g².
 *
 * Memory: two Float64Array of 2^bits slots (default 2^20 = 16 MB per model; 2^18 = 4 MB is plenty for a few
 * hundred thousand distinct feature values). Hash collisions merge features (probability per pair 2^−bits);
 * the L1 term keeps rare features (seen once) at weight 0. Snapshots carry only the slots with n_i ≠ 0.
 */
import { type ByteReader, type ByteWriter, SnapshotFormatError } from './bytes.ts';

/** FTRL-Proximal hyper-parameters (McMahan et al. 2013 notation). */
export interface FtrlOptions {
  /** log2 of the slot count, 16..24 (default 20). */
  bits?: number;
  /** Learning-rate scale α (default 1). */
  alpha?: number;
  /** Learning-rate offset β (default 1, as in the paper). */
  beta?: number;
  /** L1 strength λ1 (default 0.5; bench/fraud-eval.ts: 2 cost the demo ~1.5 AUC points, the paper tunes it per data set). */
  l1?: number;
  /** L2 strength λ2 (default 1). */
  l2?: number;
}

/** Most features one click can have (the engine's feature set uses ≤ 22). */
export const MAX_FEATURES = 24;

const MODEL_MAGIC = 0x4654524c; // 'FTRL'

/** FTRL-Proximal logistic regression over hashed features (see the module docstring). */
export class FtrlModel {
  readonly bits: number;
  readonly mask: number;
  readonly alpha: number;
  readonly beta: number;
  readonly l1: number;
  readonly l2: number;
  readonly z: Float64Array;
  readonly n: Float64Array;
  /** Label updates applied. */
  updates = 0;
  private readonly w = new Float64Array(MAX_FEATURES);

  /** @throws RangeError when bits is outside 16..24. */
  constructor(o: FtrlOptions = {}) {
    this.bits = o.bits ?? 20;
    if (!Number.isInteger(this.bits) || this.bits < 16 || this.bits > 24) throw new RangeError('bits must be 16..24');
    this.mask = (1 << this.bits) - 1;
    this.alpha = o.alpha ?? 1;
    this.beta = o.beta ?? 1;
    this.l1 = o.l1 ?? 0.5;
    this.l2 = o.l2 ?? 1;
    this.z = new Float64Array(1 << this.bits);
    this.n = new Float64Array(1 << this.bits);
  }

  /** Computes the weights of `count` slots into the scratch buffer and returns the logit. */
  private logit(slots: ArrayLike<number>, offset: number, count: number): number {
    let s = 0;
    const { z, n, l1, l2, alpha, beta } = this;
    for (let k = 0; k < count; k++) {
      const i = slots[offset + k]!;
      const zi = z[i]!;
      let wi = 0;
      if (zi > l1) wi = -(zi - l1) / ((beta + Math.sqrt(n[i]!)) / alpha + l2);
      else if (zi < -l1) wi = -(zi + l1) / ((beta + Math.sqrt(n[i]!)) / alpha + l2);
      this.w[k] = wi;
      s += wi;
    }
    return s;
  }

  /**
   * Probability of y = 1 for the features `slots[offset .. offset+count)` (slot indexes, already masked).
   * @param count ≤ {@link MAX_FEATURES}.
   */
  predict(slots: ArrayLike<number>, offset: number, count: number): number {
    const s = this.logit(slots, offset, count);
    return 1 / (1 + Math.exp(-Math.max(-35, Math.min(35, s))));
  }

  /** One FTRL-Proximal update with label y (0 or 1). */
  train(slots: ArrayLike<number>, offset: number, count: number, y: number): void {
    const s = this.logit(slots, offset, count);
    const p = 1 / (1 + Math.exp(-Math.max(-35, Math.min(35, s))));
    const g = p - y;
    const g2 = g * g;
    const { z, n, alpha } = this;
    for (let k = 0; k < count; k++) {
      const i = slots[offset + k]!;
      const ni = n[i]!;
      const sigma = (Math.sqrt(ni + g2) - Math.sqrt(ni)) / alpha;
      z[i] = z[i]! + g - sigma * this.w[k]!;
      n[i] = ni + g2;
    }
    this.updates++;
  }

  /** Slots in use (n ≠ 0). */
  activeSlots(): number {
    let c = 0;
    for (let i = 0; i < this.n.length; i++) if (this.n[i] !== 0) c++;
    return c;
  }

  /** Appends the model (hyper-parameters, update count, non-zero slots only) to a snapshot. */
  write(w: ByteWriter): void {
    w.u32(MODEL_MAGIC);
    w.u8(this.bits);
    w.f64(this.alpha);
    w.f64(this.beta);
    w.f64(this.l1);
    w.f64(this.l2);
    w.f64(this.updates);
    w.u32(this.activeSlots());
    for (let i = 0; i < this.n.length; i++) {
      if (this.n[i] === 0) continue;
      w.u32(i);
      w.f64(this.z[i]!);
      w.f64(this.n[i]!);
    }
  }

  /** Reads a model written by {@link write}. @throws SnapshotFormatError on a malformed snapshot. */
  static read(r: ByteReader): FtrlModel {
    if (r.u32() !== MODEL_MAGIC) throw new SnapshotFormatError('not a model snapshot');
    const bits = r.u8();
    const m = new FtrlModel({ bits, alpha: r.f64(), beta: r.f64(), l1: r.f64(), l2: r.f64() });
    m.updates = r.f64();
    const count = r.u32();
    for (let k = 0; k < count; k++) {
      const i = r.u32();
      if (i > m.mask) throw new SnapshotFormatError('model slot out of range');
      m.z[i] = r.f64();
      m.n[i] = r.f64();
    }
    return m;
  }
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64_CODES = Uint16Array.from(B64, (c) => c.charCodeAt(0));
const FEATURE_CODES = new Uint16Array(4 * MAX_FEATURES);
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/**
 * Text encoding of a click's feature slots (stored with the click, returned in its label): 4 base64url characters
 * (24 bits) per slot, in order. E.g. 20 features → 80 characters.
 */
export function encodeFeatures(slots: ArrayLike<number>, offset: number, count: number): string {
  // One string built from a reused code buffer, not 4 concatenations per slot: this runs for every click, and
  // the intermediate strings were a measurable share of the scoring worker's garbage.
  const codes = FEATURE_CODES;
  let j = 0;
  for (let k = 0; k < count; k++) {
    const v = slots[offset + k]!;
    codes[j++] = B64_CODES[(v >>> 18) & 63]!;
    codes[j++] = B64_CODES[(v >>> 12) & 63]!;
    codes[j++] = B64_CODES[(v >>> 6) & 63]!;
    codes[j++] = B64_CODES[v & 63]!;
  }
  return String.fromCharCode.apply(null, codes.subarray(0, j) as unknown as number[]);
}

/**
 * Decodes {@link encodeFeatures} output into `out` (from 0), masking each slot with `mask`.
 * @returns the number of slots, or -1 when the text is malformed (wrong length, other characters, too many).
 */
export function decodeFeatures(text: string, mask: number, out: Uint32Array | number[]): number {
  if (text.length % 4 !== 0 || text.length / 4 > MAX_FEATURES) return -1;
  const count = text.length / 4;
  for (let k = 0; k < count; k++) {
    let v = 0;
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(k * 4 + j);
      const d = c < 128 ? B64_INDEX[c]! : -1;
      if (d < 0) return -1;
      v = (v << 6) | d;
    }
    out[k] = v & mask;
  }
  return count;
}
