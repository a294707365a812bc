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
 *
 * This file holds the engine (state, label queues, snapshots); ./features.ts builds a click's model features,
 * ./scoring.ts scores it, ./engine-types.ts declares what goes in and out.
 */
import { ByteReader, ByteWriter, SnapshotFormatError } from './bytes.ts';
import type {
  EngineClick,
  EngineLabel,
  EngineRecord,
  EngineStats,
  EngineVerdict,
  PartitionOptions,
} from './engine-types.ts';
import { FraudStateMismatch } from './engine-types.ts';
import { fillFeatures, NS, type UaInfo, userAgentInfo } from './features.ts';
import { H2, hash64 } from './hash.ts';
import { LabelHeap, PositiveSet, poppedLabel } from './labels.ts';
import { decodeFeatures, FtrlModel, MAX_FEATURES } from './model.ts';
import type { ScorableClick } from './rules.ts';
import { MODEL_RAMP_LABELS, scoreVerdict } from './scoring.ts';
import { type ClickObservation, DEFAULT_MAX_KEYS, emptyObservation, FraudState } from './state.ts';

const ENGINE_MAGIC = 0x46454e31; // 'FEN1'

/** The counters a snapshot carries, in their order there. */
const SNAPSHOT_COUNTERS = [
  'clicks',
  'positives_applied',
  'negatives_cancelled',
  'negatives_dropped',
  'positives_dropped',
  'positives_duplicate',
  'labels_malformed',
] as const;

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
    const k = fillFeatures(s, this.model.mask, c, linkH, u, o);

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
    return scoreVerdict(
      c,
      u,
      k,
      this.scorable,
      this.model,
      this.slots,
      this.counters.positives_applied,
      this.rampLabels,
    );
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
    for (const name of SNAPSHOT_COUNTERS) w.f64(c[name]);
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
    const counts = SNAPSHOT_COUNTERS.map(() => r.f64());
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
    SNAPSHOT_COUNTERS.forEach((name, i) => {
      c[name] = counts[i]!;
    });
    e.negatives.read(r);
    e.positives.read(r);
    e.positiveIds.read(r);
    if (!r.done) throw new SnapshotFormatError('trailing bytes in snapshot');
    return e;
  }
}
