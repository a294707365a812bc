/**
 * The in-memory fraud engine of one stream partition ({@link PartitionEngine}): windowed state (./state.ts) feeds
 * the rules (./rules.ts) and an online model (./model.ts) that learns from the partition's own conversions.
 *
 * Score: `fraud_score = 1 − (1 − m) Π(1 − weight_i × strength_i)` (noisy-or, rounded to 4 decimals), where the
 * rules keep their weights and thresholds — except the {@link LEARNED_RULES} (daily volume, user-agent
 * diversity), whose counts are model features instead of fixed penalties — and m is the model's contribution
 * `m = W × risk`:
 * - `risk = 1 / (1 + p / base)`, decreasing in the model's conversion probability p, relative to the partition's
 *   observed base rate `base = (positives + 1) / (labels + 2)` (Laplace), so a source converting at the base rate
 *   has risk ½ and partitions with different base rates score on one scale;
 * - `W = MODEL_WEIGHT_MAX × min(1, labels / MODEL_RAMP_LABELS)` (0.45 × ramp over the first 1,000 labels): below
 *   {@link FRAUD_THRESHOLD}, so the model alone never flags a click invalid, and a cold model adds nothing.
 * `fraud_reasons` lists the rule codes as today and adds {@link MODEL_REASON} when m is the largest contribution
 * and m ≥ 4 × REASON_MIN_CONTRIBUTION (0.2, i.e. risk ≳ 0.44 at full weight: the source converts clearly below
 * the base rate).
 *
 * Learning (progressive validation: every click is scored before anything is learned from it), in event time:
 * a positive label (the click's conversion) is due at max(conversion ts, click ts); a click's negative is due at
 * click ts + `labelDelayMs` and is dropped when a positive for the click arrived before it became due. Before
 * scoring a click, every label due at or before that click's ts is applied, ordered by (due, arrival). So a
 * click's own label only ever affects later clicks. A positive that arrives after the click's negative was
 * applied is still trained. Labels are due against each click's own time rather than the largest time seen
 * (the watermark): one click far ahead of the others (a live click among replayed ones, a skewed clock) would
 * otherwise hold every later label back until time caught up with it; this way it releases at most the labels
 * due before it, once.
 */
import { ByteReader, ByteWriter, SnapshotFormatError } from './bytes.ts';
import { H2, hash64, hashInt } from './hash.ts';
import { LabelHeap, PositiveSet, poppedLabel } from './labels.ts';
import { decodeFeatures, encodeFeatures, FtrlModel, type FtrlOptions, MAX_FEATURES } from './model.ts';
import {
  CLICK_RULES,
  FRAUD_THRESHOLD,
  FRAUD_WEIGHTS,
  type FraudReason,
  LEARNED_RULES,
  REASON_MIN_CONTRIBUTION,
  type ScorableClick,
} from './rules.ts';
import { type ClickObservation, DEFAULT_MAX_KEYS, emptyObservation, FraudState } from './state.ts';
import { parseUserAgent } from './user-agent.ts';

/** A click as the engine needs it (a projection of ClickEvent; `sub` = sub1..sub5, '' when absent). */
export interface EngineClick {
  click_id: string;
  /** Event time, UTC ms. */
  ts_ms: number;
  ip: string;
  campaign_id: number;
  affiliate_id: number;
  link_code: string;
  sub: [string, string, string, string, string];
  user_agent: string;
  method: string;
  purpose: string;
  /** Non-empty when the ingest already marked the click invalid: scored, never learned from as a negative. */
  invalid_reason: string;
}

/** A conversion's label for its click, delivered through the click's partition stream. */
export interface EngineLabel {
  click_id: string;
  /** The click's event time, UTC ms. */
  click_ts_ms: number;
  /** The conversion's event time, UTC ms. */
  conversion_ts_ms: number;
  /** the click's `features` from its verdict */
  features: string;
}

export type EngineRecord = { kind: 'click'; click: EngineClick } | { kind: 'label'; label: EngineLabel };

/** Outcome of one click. Clicks with the same reasons may share one (never mutated) `fraud_reasons` array. */
export interface EngineVerdict {
  /** 0..1, rounded to 4 decimals. */
  fraud_score: number;
  fraud_reasons: string[];
  /** ua-parser-js device type, 'desktop' when it names none, '' without a user agent. */
  device: string;
  os: string;
  browser: string;
  /** Label updates applied to the partition's model before this click was scored. */
  model_version: number;
  /** compact text encoding of the click's hashed model features, stored with the click and returned in its label */
  features: string;
}

/** Thrown when a batch's `at.from` is not the partition state's position (or the state is gone: actual = ''). */
export class FraudStateMismatch extends Error {
  override name = 'FraudStateMismatch';
  constructor(
    readonly partition: number,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`fraud state of partition ${partition} is at ${actual || '(none)'}, the batch starts at ${expected}`);
  }
}

/** Reason code added when the model's contribution is the largest one (see the module docstring). */
export const MODEL_REASON = 'low_quality_source';
/** Largest model contribution W (must stay below FRAUD_THRESHOLD). */
export const MODEL_WEIGHT_MAX = 0.45;
/** Labels after which the model has its full weight. */
export const MODEL_RAMP_LABELS = 1000;
/** The model's reason is listed from this contribution on. */
export const MODEL_REASON_MIN = 4 * REASON_MIN_CONTRIBUTION;
if (MODEL_WEIGHT_MAX >= FRAUD_THRESHOLD) throw new Error('the model alone must not flag a click');

/** Options of one partition's engine; every field has a default. */
export interface PartitionOptions {
  /** Reported in {@link FraudStateMismatch}. */
  partition?: number;
  /** Keys per state table, power of two (default 2^17; see ./state.ts for bytes per key). */
  maxKeys?: number;
  /**
   * Pending negative labels kept at most (default 50,000, ≈ 6 MB, part of every checkpoint); beyond that new
   * clicks are not queued (counted): at high rates the negatives the model learns from are then a sample of the
   * clicks (those that found room), which leaves the ranking intact.
   */
  labelQueueMax?: number;
  /** Event time after a click at which it counts as not converted, ms (default 600,000 = 10 min). */
  labelDelayMs?: number;
  /** Pending positives kept at most (default 65,536). */
  positiveQueueMax?: number;
  /** Positive click ids remembered for de-duplication, power of two (default 2^17). */
  positiveSetMax?: number;
  /** FTRL hyper-parameters (defaults: 2^20 slots, α 1, β 1, λ1 0.5, λ2 1). */
  model?: FtrlOptions;
  /** Labels after which the model has its full weight (default {@link MODEL_RAMP_LABELS}; 0 = full weight at once). */
  modelRampLabels?: number;
}

/** Counters of one partition (for metrics). */
export interface EngineStats {
  clicks: number;
  labels_applied: number;
  positives_applied: number;
  negatives_cancelled: number;
  /** Clicks not queued as negatives because the queue was full. */
  negatives_dropped: number;
  positives_dropped: number;
  positives_duplicate: number;
  labels_malformed: number;
  pending_negatives: number;
  pending_positives: number;
}

const NS = {
  bias: 0x62696173,
  campaign: 0x63616d70,
  affiliate: 0x61666669,
  link: 0x6c696e6b,
  sub: [0x73756231, 0x73756232, 0x73756233, 0x73756234, 0x73756235],
  ua: 0x75612d2d,
  device: 0x64657669,
  ip1m: 0x69316d2d,
  ip24h: 0x69323468,
  ipCampaign: 0x69633168,
  ipLink: 0x696c3130,
  ipUa: 0x69756164,
  ipGap: 0x69676170,
  ipCampaignGap: 0x63676170,
} as const;

/** log2 bucket: 0 → 0, 1 → 1, 2..3 → 2, 4..7 → 3, … */
function lb(v: number): number {
  return v <= 0 ? 0 : 32 - Math.clz32(Math.min(v, 0x7fffffff));
}

/** Per user agent: the parse, its hashes (sketch and model slots), cached per thread. */
interface UaInfo {
  device: string;
  os: string;
  browser: string;
  sketch: number;
  ua: number;
  /**
   * One feature for the parsed (device type, OS, browser): as three features they are mostly redundant
   * with each other and with the user agent's own, and each added coordinate is learning noise while the
   * model has few labels (fraud-eval: +0.004 AUC as one).
   */
  family: number;
}
const uaInfo = new Map<string, UaInfo>();
const UA_INFO_MAX = 20_000;
function userAgentInfo(ua: string): UaInfo {
  let u = uaInfo.get(ua);
  if (u === undefined) {
    const d = parseUserAgent(ua);
    u = {
      ...d,
      sketch: hash64(ua),
      ua: hash64(ua, NS.ua),
      family: hash64(`${d.device}\t${d.os}\t${d.browser}`, NS.device),
    };
    if (uaInfo.size >= UA_INFO_MAX) uaInfo.clear();
    uaInfo.set(ua, u);
  }
  return u;
}

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

const ENGINE_MAGIC = 0x46454e31; // 'FEN1'

/** The fraud engine of one partition (see the module docstring). Not thread-safe; one owner at a time. */
export class PartitionEngine {
  readonly partition: number;
  /** Stream position after the last processed batch ('0-0' when fresh). */
  position = '0-0';
  /** Largest click event time seen, ms (-Infinity when none). */
  watermarkMs = Number.NEGATIVE_INFINITY;
  readonly labelDelayMs: number;
  readonly state: FraudState;
  readonly model: FtrlModel;
  readonly negatives: LabelHeap;
  readonly positives: LabelHeap;
  readonly positiveIds: PositiveSet;
  private seq = 0;
  private readonly rampLabels: number;
  private readonly counters = {
    clicks: 0,
    positives_applied: 0,
    negatives_cancelled: 0,
    negatives_dropped: 0,
    positives_dropped: 0,
    positives_duplicate: 0,
    labels_malformed: 0,
  };
  private readonly obs: ClickObservation = emptyObservation();
  private readonly slots = new Uint32Array(MAX_FEATURES);
  private readonly popped = poppedLabel();
  private readonly scorable: ScorableClick = { method: '', user_agent: '', purpose: '', features: this.obs };

  /** @throws RangeError on capacities that are not powers of two or model bits outside 16..24. */
  constructor(
    readonly options: PartitionOptions = {},
    restored?: { state: FraudState; model: FtrlModel },
  ) {
    this.partition = options.partition ?? 0;
    this.labelDelayMs = options.labelDelayMs ?? 600_000;
    this.rampLabels = options.modelRampLabels ?? MODEL_RAMP_LABELS;
    this.state = restored?.state ?? new FraudState(options.maxKeys ?? DEFAULT_MAX_KEYS);
    this.model = restored?.model ?? new FtrlModel(options.model);
    this.negatives = new LabelHeap(options.labelQueueMax ?? 50_000);
    this.positives = new LabelHeap(options.positiveQueueMax ?? 65_536);
    this.positiveIds = new PositiveSet(options.positiveSetMax ?? 1 << 17);
  }

  /**
   * Runs a batch in stream order and moves the position from `at.from` to `at.to`.
   * @returns one verdict per click record, in order ([] with `replay`, which only rebuilds state).
   * @throws FraudStateMismatch when `at.from` is not {@link position} (nothing is processed then).
   */
  process(
    records: readonly EngineRecord[],
    at: { from: string; to: string },
    opts?: { replay?: boolean },
  ): EngineVerdict[] {
    if (at.from !== this.position) throw new FraudStateMismatch(this.partition, at.from, this.position);
    const replay = opts?.replay === true;
    const out: EngineVerdict[] = [];
    for (const r of records) {
      if (r.kind === 'click') {
        const v = this.click(r.click, replay);
        if (v) out.push(v);
      } else this.label(r.label);
    }
    this.position = at.to;
    return out;
  }

  /** Applies every label due at or before `untilMs`, in (due, arrival) order. */
  private applyDue(untilMs: number): void {
    const wm = untilMs;
    const neg = this.negatives;
    const pos = this.positives;
    const p = this.popped;
    for (;;) {
      const ne = neg.peek();
      const pe = pos.peek();
      let takePos: boolean;
      if (ne < 0 && pe < 0) return;
      if (ne < 0) takePos = true;
      else if (pe < 0) takePos = false;
      else {
        const nd = neg.due[ne]!;
        const pd = pos.due[pe]!;
        takePos = pd < nd || (pd === nd && pos.seq[pe]! < neg.seq[ne]!);
      }
      const heap = takePos ? pos : neg;
      const e = takePos ? pe : ne;
      if (heap.due[e]! > wm) return;
      heap.pop(p);
      if (takePos) {
        this.model.train(p.slots, 0, p.count, 1);
        this.counters.positives_applied++;
      } else if (this.positiveIds.has(p.ka, p.kb)) this.counters.negatives_cancelled++;
      else this.model.train(p.slots, 0, p.count, 0);
    }
  }

  /** Scores one click (null with replay) and records it in the state and the label queue. */
  click(c: EngineClick, replay = false): EngineVerdict | null {
    this.seq++;
    this.counters.clicks++;
    const ts = c.ts_ms;
    if (ts > this.watermarkMs) this.watermarkMs = ts;
    this.applyDue(ts);
    const ipA = hash64(c.ip);
    const ipB = H2[0]!;
    const linkH = hash64(c.link_code, NS.link);
    const u = userAgentInfo(c.user_agent);
    const o = this.state.observeHashed(ipA, ipB, c.campaign_id, linkH, u.sketch, ts, this.obs);

    const s = this.slots;
    const mask = this.model.mask;
    let k = 0;
    s[k++] = NS.bias & mask;
    s[k++] = hashInt(NS.campaign, c.campaign_id) & mask;
    s[k++] = hashInt(NS.affiliate, c.affiliate_id) & mask;
    s[k++] = linkH & mask;
    for (let i = 0; i < 5; i++) {
      const v = c.sub[i]!;
      if (v !== '') s[k++] = hash64(v, NS.sub[i]) & mask;
    }
    s[k++] = u.ua & mask;
    s[k++] = u.family & mask;
    s[k++] = hashInt(NS.ip1m, lb(o.ip_clicks_1m)) & mask;
    s[k++] = hashInt(NS.ip24h, lb(o.ip_clicks_24h)) & mask;
    s[k++] = hashInt(NS.ipCampaign, lb(o.ip_campaign_clicks_1h)) & mask;
    s[k++] = hashInt(NS.ipLink, lb(o.ip_link_earlier)) & mask;
    s[k++] = hashInt(NS.ipUa, lb(o.ip_user_agents_day)) & mask;
    // -1 (no earlier click known) gets its own bucket; gaps in log2 seconds.
    s[k++] = hashInt(NS.ipGap, o.ip_prev_gap_ms < 0 ? 99 : lb(Math.floor(o.ip_prev_gap_ms / 1000))) & mask;
    s[k++] =
      hashInt(NS.ipCampaignGap, o.ip_campaign_prev_gap_ms < 0 ? 99 : lb(Math.floor(o.ip_campaign_prev_gap_ms / 1000))) &
      mask;

    let verdict: EngineVerdict | null = null;
    if (!replay) verdict = this.score(c, u, k);
    if (c.invalid_reason === '') {
      const ca = hash64(c.click_id);
      if (!this.negatives.push(ts + this.labelDelayMs, this.seq, ca, H2[0]!, s, 0, k))
        this.counters.negatives_dropped++;
    }
    return verdict;
  }

  private score(c: EngineClick, u: UaInfo, k: number): EngineVerdict {
    const sc = this.scorable;
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
    const labels = this.model.updates;
    let m = 0;
    if (labels > 0) {
      const p = this.model.predict(this.slots, 0, k);
      const base = (this.counters.positives_applied + 1) / (labels + 2);
      const ramp = this.rampLabels > 0 ? Math.min(1, labels / this.rampLabels) : 1;
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
      model_version: labels,
      features: encodeFeatures(this.slots, 0, k),
    };
  }

  /** Takes in a conversion's label: queued as a positive (due at max(conversion, click) ts) unless a duplicate. */
  label(l: EngineLabel): void {
    this.seq++;
    const a = hash64(l.click_id);
    const b = H2[0]!;
    const count = decodeFeatures(l.features, this.model.mask, this.popped.slots);
    if (count <= 0) {
      this.counters.labels_malformed++;
      return;
    }
    if (!this.positiveIds.add(a, b, this.seq)) {
      this.counters.positives_duplicate++;
      return;
    }
    const due = Math.max(l.conversion_ts_ms, l.click_ts_ms);
    if (!this.positives.push(due, this.seq, a, b, this.popped.slots, 0, count)) this.counters.positives_dropped++;
  }

  stats(): EngineStats {
    return {
      ...this.counters,
      labels_applied: this.model.updates,
      pending_negatives: this.negatives.size,
      pending_positives: this.positives.size,
    };
  }

  /** Compact binary snapshot of the whole partition state (see {@link PartitionEngine.restore}). */
  snapshot(): Uint8Array {
    const w = new ByteWriter();
    w.u32(ENGINE_MAGIC);
    w.u32(this.partition);
    w.str(this.position);
    w.f64(this.watermarkMs);
    w.f64(this.labelDelayMs);
    w.f64(this.rampLabels);
    w.f64(this.seq);
    const c = this.counters;
    for (const v of [
      c.clicks,
      c.positives_applied,
      c.negatives_cancelled,
      c.negatives_dropped,
      c.positives_dropped,
      c.positives_duplicate,
      c.labels_malformed,
    ])
      w.f64(v);
    w.u32(this.negatives.cap);
    w.u32(this.positives.cap);
    w.u32(this.positiveIds.cap);
    this.state.write(w);
    this.model.write(w);
    this.negatives.write(w);
    this.positives.write(w);
    this.positiveIds.write(w);
    return w.finish();
  }

  /**
   * Rebuilds an engine from {@link snapshot} output: processing the same records afterwards gives byte-identical
   * verdicts to the engine that was snapshotted. Capacities and hyper-parameters come from the snapshot.
   * @throws SnapshotFormatError on a truncated or foreign snapshot.
   */
  static restore(bytes: Uint8Array): PartitionEngine {
    const r = new ByteReader(bytes);
    if (r.u32() !== ENGINE_MAGIC) throw new SnapshotFormatError('not a fraud engine snapshot');
    const partition = r.u32();
    const position = r.str();
    const watermark = r.f64();
    const labelDelayMs = r.f64();
    const modelRampLabels = r.f64();
    const seq = r.f64();
    const counts = Array.from({ length: 7 }, () => r.f64());
    const labelQueueMax = r.u32();
    const positiveQueueMax = r.u32();
    const positiveSetMax = r.u32();
    const state = FraudState.read(r);
    const model = FtrlModel.read(r);
    const { bits, alpha, beta, l1, l2 } = model;
    const e = new PartitionEngine(
      {
        partition,
        labelDelayMs,
        modelRampLabels,
        labelQueueMax,
        positiveQueueMax,
        positiveSetMax,
        maxKeys: state.maxKeys,
        model: { bits, alpha, beta, l1, l2 },
      },
      { state, model },
    );
    e.seq = seq;
    e.position = position;
    e.watermarkMs = watermark;
    const c = e.counters;
    [
      c.clicks,
      c.positives_applied,
      c.negatives_cancelled,
      c.negatives_dropped,
      c.positives_dropped,
      c.positives_duplicate,
      c.labels_malformed,
    ] = counts as [number, number, number, number, number, number, number];
    e.negatives.read(r);
    e.positives.read(r);
    e.positiveIds.read(r);
    if (!r.done) throw new SnapshotFormatError('trailing bytes in snapshot');
    return e;
  }
}
