/**
 * A click's score (see the module docstring of ./engine.ts): the fixed rules' noisy-or, the model's
 * contribution, and the reasons, carried as a bitmask (one shared array per mask).
 */
import type { EngineClick, EngineVerdict } from './engine-types.ts';
import type { UaInfo } from './features.ts';
import { encodeFeatures, type FtrlModel } from './model.ts';
import {
  CLICK_RULES,
  FRAUD_THRESHOLD,
  FRAUD_WEIGHTS,
  type FraudReason,
  LEARNED_RULES,
  REASON_MIN_CONTRIBUTION,
  type ScorableClick,
} from './rules.ts';
import { trafficKind } from './traffic.ts';

/** Reason code added when the model's contribution is the largest one (see the module docstring of ./engine.ts). */
export const MODEL_REASON = 'low_quality_source';
/** Largest model contribution W (must stay below FRAUD_THRESHOLD). */
export const MODEL_WEIGHT_MAX = 0.45;
/** Labels after which the model has its full weight. */
export const MODEL_RAMP_LABELS = 1000;
/** The model's reason is listed from this contribution on. */
export const MODEL_REASON_MIN = 4 * REASON_MIN_CONTRIBUTION;
if (MODEL_WEIGHT_MAX >= FRAUD_THRESHOLD) throw new Error('the model alone must not flag a click');

const RULE_COUNT = CLICK_RULES.length;
const MODEL_BIT = 1 << RULE_COUNT;
/** One shared reasons array per reason bitmask. */
const reasonLists = new Map<number, string[]>();
const reasonListBits = new Map<string[], number>();
/**
 * The (shared, never mutated) reasons array of a bitmask: bit i = CLICK_RULES[i]'s code, bit CLICK_RULES.length =
 * {@link MODEL_REASON}.
 */
export function reasonsOf(bits: number): string[] {
  let r = reasonLists.get(bits);
  if (r === undefined) {
    r = CLICK_RULES.filter((_, i) => bits & (1 << i)).map(([code]) => code as string);
    if (bits & MODEL_BIT) r.push(MODEL_REASON);
    reasonLists.set(bits, r);
    reasonListBits.set(r, bits);
  }
  return r;
}
/** Inverse of {@link reasonsOf} (by array identity, else by codes). */
export function reasonBits(reasons: string[]): number {
  const known = reasonListBits.get(reasons);
  if (known !== undefined) return known;
  let bits = 0;
  for (const code of reasons) {
    const i = CLICK_RULES.findIndex(([c]) => c === code);
    bits |= i >= 0 ? 1 << i : code === MODEL_REASON ? MODEL_BIT : 0;
  }
  return bits;
}
// Verdicts carry reasons as a Uint16 bitmask across threads: the rules plus the model's bit.
if (RULE_COUNT + 1 > 16) throw new Error('more than 15 click rules: widen the packed reasons');
const RULE_WEIGHTS = CLICK_RULES.map(([code]) => FRAUD_WEIGHTS[code as FraudReason]);
const RULE_LEARNED = CLICK_RULES.map(([code]) => LEARNED_RULES.has(code));

/**
 * Scores click `c` (its rules over `sc`, which holds its observation) and, once the model has labels, adds
 * the model's contribution for the `k` feature slots in `slots`; `positivesApplied` and `rampLabels` give the
 * base rate and the model's weight.
 */
export function scoreVerdict(
  c: EngineClick,
  u: UaInfo,
  k: number,
  sc: ScorableClick,
  model: FtrlModel,
  slots: Uint32Array,
  positivesApplied: number,
  rampLabels: number,
): EngineVerdict {
  sc.method = c.method;
  sc.user_agent = c.user_agent;
  sc.purpose = c.purpose;
  let clean = 1;
  let bits = 0;
  let maxRule = 0;
  for (let i = 0; i < RULE_COUNT; i++) {
    if (RULE_LEARNED[i]) continue;
    const strength = CLICK_RULES[i]![1](sc);
    if (strength <= 0) continue;
    const contribution = RULE_WEIGHTS[i]! * Math.min(1, strength);
    if (contribution >= REASON_MIN_CONTRIBUTION) bits |= 1 << i;
    if (contribution > maxRule) maxRule = contribution;
    clean *= 1 - contribution;
  }
  const labels = model.updates;
  let m = 0;
  if (labels > 0) {
    const p = model.predict(slots, 0, k);
    const base = (positivesApplied + 1) / (labels + 2);
    const ramp = rampLabels > 0 ? Math.min(1, labels / rampLabels) : 1;
    m = (MODEL_WEIGHT_MAX * ramp) / (1 + p / base);
    if (m >= MODEL_REASON_MIN && m > maxRule) bits |= MODEL_BIT;
    clean *= 1 - m;
  }
  return {
    fraud_score: Math.round((1 - clean) * 10_000) / 10_000,
    fraud_reasons: reasonsOf(bits),
    device: u.device,
    os: u.os,
    browser: u.browser,
    bot_reason: trafficKind(u.kind, c.method, c.purpose),
    model_version: labels,
    features: encodeFeatures(slots, 0, k),
  };
}
