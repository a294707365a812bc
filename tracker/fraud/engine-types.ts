/**
 * What the fraud engine of a partition takes and gives (./engine.ts; packed across threads by
 * ./engine-worker.ts): click and label records, verdicts, options, counters, and the state-position error.
 */
import type { FtrlOptions } from './model.ts';
import type { TrafficKind } from './traffic.ts';

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

/** One record of a click-stream batch: a click to score, or a conversion's label. */
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
  /**
   * Why the click is not a visitor's: 'previewer', 'scanner', 'prefetch', 'bot'; '' when it is (./traffic.ts). A
   * click with a kind counts as invalid.
   */
  bot_reason: TrafficKind;
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
  /** Labels after which the model has its full weight (default MODEL_RAMP_LABELS, ./scoring.ts; 0 = full weight at once). */
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
