/**
 * The pipeline's counters: per stream as seen by this consumer, and the time per step (see ./runner.ts,
 * whose `stats()` returns them).
 */
import type { StepTimings } from './step-runner.ts';

/** Counters of one stream as seen by this consumer. */
export interface StreamStats {
  stream: string;
  kind: 'clicks' | 'conversions';
  /** Entries acknowledged by this consumer. */
  processed_entries: number;
  /** Events (clicks or conversions) in those entries, dead letters and duplicates excluded. */
  processed_events: number;
  dead_lettered: number;
  /** Conversions recorded as rejected (conversion streams only). */
  rejected: number;
  /** Conversions ignored as duplicates of an earlier (advertiser, event_id); clicks dropped as spooled copies. */
  duplicates: number;
  /** Batches taken over from pending entries (own after restart, or another consumer's). */
  recovered_batches: number;
  /** Batches parked (dead-lettered whole after a failure no retry fixes). */
  parked_batches: number;
  /** Stream entries replayed into the fraud state after restoring a checkpoint (click streams). */
  replayed_entries: number;
  retries: number;
  /** Entries not yet delivered to the group, as of the last maintenance pass (null: unknown). */
  lag: number | null;
  /** Entries delivered but not acknowledged, group-wide, as of the last maintenance pass. */
  pending: number | null;
}

/** What `Pipeline.stats()` returns. */
export interface PipelineStats {
  consumer: string;
  streams: StreamStats[];
  /** Time per step name since start, over every partition. */
  steps: StepTimings;
  /** Conversion versions (later status or amount changes) this process shipped to ClickHouse. */
  versions_shipped: number;
}

/** Zeroed counters of one stream. */
export function newStreamStats(stream: string, kind: StreamStats['kind']): StreamStats {
  return {
    stream,
    kind,
    processed_entries: 0,
    processed_events: 0,
    dead_lettered: 0,
    rejected: 0,
    duplicates: 0,
    recovered_batches: 0,
    parked_batches: 0,
    replayed_entries: 0,
    retries: 0,
    lag: null,
    pending: null,
  };
}

/** A copy of the counters and timings, so callers can keep it while the pipeline runs on. */
export function snapshotStats(
  consumer: string,
  stats: readonly StreamStats[],
  timings: StepTimings,
  versionsShipped = 0,
): PipelineStats {
  return {
    consumer,
    versions_shipped: versionsShipped,
    streams: stats.map((x) => ({ ...x })),
    steps: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, { ...v }])),
  };
}
