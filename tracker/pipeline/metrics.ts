/**
 * The pipeline's prom-client metrics. Lag, pending, retries, dead letters and ClickHouse insert errors are read from
 * the runner's counters (./stats.ts, the step timings) when scraped; the rest is observed where it happens.
 */
import { counterOn, gaugeOn, histogramOn, LATENCY_BUCKETS_S, type Registry } from '../../infra/index.ts';
import type { StreamStats } from './stats.ts';
import type { StepTimings } from './step-runner.ts';

/** What the steps observe (see ./steps/context.ts `PipelineDeps.metrics`). */
export interface PipelineMetrics {
  /** Seconds of one run of `step` of the `loop` (clicks | conversions) loop. */
  stepSeconds(loop: 'clicks' | 'conversions', step: string, seconds: number): void;
  /** Rows inserted into ClickHouse table `table`. */
  rowsInserted(table: 'clicks' | 'conversions', n: number): void;
  fraudScore: { observe(v: number): void };
  fraudModelVersion: { set(v: number): void };
  /** Seconds from a click's receipt by the tracker to its row being in ClickHouse. */
  clickToQueryable: { observe(v: number): void };
}

/** Steps whose failures are ClickHouse insert errors. */
const INSERT_STEPS = ['insert_clicks', 'insert_conversions'];

/** The last part of a stream key is its partition: `<prefix>clicks:{3}` → '3'. */
function partitionOf(stream: string): string {
  return /\{?(\d+)\}?$/.exec(stream)?.[1] ?? '';
}

/**
 * Registers `pipeline_stream_lag{stream,partition}`, `pipeline_stream_pending{stream,partition}`,
 * `pipeline_batch_retries_total`, `pipeline_dead_letters_total`, `pipeline_clickhouse_insert_errors_total` (from
 * `read()` at scrape time), and `pipeline_step_duration_seconds{loop,step}`, `pipeline_rows_inserted_total{table}`,
 * `pipeline_fraud_score`, `pipeline_fraud_model_version`, `pipeline_click_to_queryable_seconds` on `registry`.
 * Several pipelines on one registry (tests) each add their counters through their own `read`.
 */
export function createPipelineMetrics(
  registry: Registry,
  read: () => { stats: readonly StreamStats[]; timings: StepTimings },
): PipelineMetrics & { detach(): void } {
  const sources = pipelineSources(registry);
  sources.add(read);
  const all = () => [...sources].map((f) => f());
  gaugeOn(registry, {
    name: 'pipeline_stream_lag',
    help: 'Entries of a stream partition not yet delivered to the consumer group (as of the last maintenance pass)',
    labelNames: ['stream', 'partition'],
    collect() {
      this.reset();
      for (const { stats } of all())
        for (const s of stats)
          if (s.lag !== null) this.set({ stream: s.kind, partition: partitionOf(s.stream) }, s.lag);
    },
  });
  gaugeOn(registry, {
    name: 'pipeline_stream_pending',
    help: 'Entries of a stream partition delivered but not acknowledged, group-wide (as of the last maintenance pass)',
    labelNames: ['stream', 'partition'],
    collect() {
      this.reset();
      for (const { stats } of all())
        for (const s of stats)
          if (s.pending !== null) this.set({ stream: s.kind, partition: partitionOf(s.stream) }, s.pending);
    },
  });
  // Counters fed from cumulative numbers: each scrape adds what grew since the last one.
  const fromTotal = (name: string, help: string, total: () => number) => {
    let seen = 0;
    counterOn(registry, {
      name,
      help,
      collect() {
        const t = total();
        if (t > seen) this.inc(t - seen);
        seen = t;
      },
    });
  };
  const sum = (f: (x: { stats: readonly StreamStats[]; timings: StepTimings }) => number) => () =>
    all().reduce((n, x) => n + f(x), 0);
  fromTotal(
    'pipeline_batch_retries_total',
    'Batch attempts that failed and were retried',
    sum((x) => x.stats.reduce((n, s) => n + s.retries, 0)),
  );
  fromTotal(
    'pipeline_dead_letters_total',
    'Stream entries moved to the dead-letter stream (bad entries and parked batches)',
    sum((x) => x.stats.reduce((n, s) => n + s.dead_lettered, 0)),
  );
  fromTotal(
    'pipeline_clickhouse_insert_errors_total',
    'Failed ClickHouse inserts of click and conversion batches',
    sum((x) => INSERT_STEPS.reduce((n, k) => n + (x.timings[k]?.failures ?? 0), 0)),
  );
  const steps = histogramOn(registry, {
    name: 'pipeline_step_duration_seconds',
    help: 'Time of one run of a batch step, seconds',
    labelNames: ['loop', 'step'],
    buckets: LATENCY_BUCKETS_S,
  });
  const rows = counterOn(registry, {
    name: 'pipeline_rows_inserted_total',
    help: 'Rows inserted into ClickHouse, by table',
    labelNames: ['table'],
  });
  const score = histogramOn(registry, {
    name: 'pipeline_fraud_score',
    help: 'Fraud scores given to clicks (0..1; invalid from 0.5)',
    buckets: [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1],
  });
  const version = gaugeOn(registry, {
    name: 'pipeline_fraud_model_version',
    help: 'Label updates the fraud model had applied when it scored the latest click batch',
  });
  const queryable = histogramOn(registry, {
    name: 'pipeline_click_to_queryable_seconds',
    help: 'Time from a click reaching the tracker to its row being inserted into ClickHouse, seconds',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800],
  });
  const rowsBy = { clicks: rows.labels('clicks'), conversions: rows.labels('conversions') };
  return {
    stepSeconds: (loop, step, seconds) => steps.observe({ loop, step }, seconds),
    rowsInserted: (table, n) => rowsBy[table].inc(n),
    fraudScore: score,
    fraudModelVersion: version,
    clickToQueryable: queryable,
    detach: () => sources.delete(read),
  };
}

type Source = () => { stats: readonly StreamStats[]; timings: StepTimings };
const SOURCES = new WeakMap<Registry, Set<Source>>();

/** The counter sources of every pipeline registered on `registry`. */
function pipelineSources(registry: Registry): Set<Source> {
  let set = SOURCES.get(registry);
  if (!set) {
    set = new Set();
    SOURCES.set(registry, set);
  }
  return set;
}
