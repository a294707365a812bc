/**
 * The ingest's prom-client metrics. Every labelled child is bound once here, so the click path only calls
 * `inc()` / `observe()` on prepared objects: no label objects, no strings, no awaits per click.
 */
import { counterOn, gaugeOn, histogramOn, LATENCY_BUCKETS_S, type Registry } from '../../infra/index.ts';
import type { ReqState } from './http.ts';

/** Outcome label of a click: what it was answered. */
export const CLICK_OUTCOMES = ['redirect', 'not_found', 'rejected', 'unavailable', 'error', 'aborted'] as const;
/** Outcome label of a postback. */
export const POSTBACK_OUTCOMES = ['accepted', 'unauthorized', 'rejected', 'unavailable', 'error', 'aborted'] as const;

type Inc = { inc(n?: number): void };
type Observe = { observe(v: number): void };

/** Per-stream (clicks | conversions) metrics of one group-commit writer. */
export interface WriterMetrics {
  /** One observe per flushed group: the lines it carried. */
  groupSize: Observe;
  /** One observe per XADD, seconds from send to acknowledgement (or failure). */
  xaddSeconds: Observe;
}

/** The tracker's metrics (the spool's size gauges live in ./spool-monitor.ts, on the same registry). */
export interface TrackerMetrics {
  /** Counts one answered click and observes its time to answer. */
  click(st: ReqState): void;
  /** Counts one answered postback. */
  postback(st: ReqState): void;
  clicksWriter: WriterMetrics;
  conversionsWriter: WriterMetrics;
  replayedEvents: Inc;
  linkHit: Inc;
  linkMiss: Inc;
}

/** Status → index into the outcome list; 0 (never answered) is `aborted`. */
function outcomeIndex(status: number, ok: number, notFound: 'not_found' | 'rejected'): number {
  if (status === 0) return 5;
  if (status === ok) return 0;
  if (status === 401) return 1;
  if (status === 404) return notFound === 'not_found' ? 1 : 2;
  if (status === 503) return 3;
  if (status < 500) return 2;
  return 4;
}

/**
 * Registers `tracker_clicks_total{outcome}`, `tracker_postbacks_total{outcome}`,
 * `tracker_redirect_duration_seconds`, `tracker_xadd_duration_seconds{stream}`, `tracker_group_commit_size{stream}`,
 * `tracker_spool_replayed_events_total`, `tracker_link_cache_entries` (read from `linkEntries` at scrape time) and
 * `tracker_link_cache_lookups_total{result}` on `registry`.
 */
export function createTrackerMetrics(registry: Registry, linkEntries: () => number): TrackerMetrics {
  const clicks = counterOn(registry, {
    name: 'tracker_clicks_total',
    help: 'Clicks answered, by outcome (redirect, not_found, rejected, unavailable, error, aborted)',
    labelNames: ['outcome'],
  });
  const postbacks = counterOn(registry, {
    name: 'tracker_postbacks_total',
    help: 'Conversion postbacks answered, by outcome (accepted, unauthorized, rejected, unavailable, error, aborted)',
    labelNames: ['outcome'],
  });
  const redirect = histogramOn(registry, {
    name: 'tracker_redirect_duration_seconds',
    help: 'Time from a click request to its answer (the 302 waits for its XADD), seconds',
    buckets: LATENCY_BUCKETS_S,
  });
  const xadd = histogramOn(registry, {
    name: 'tracker_xadd_duration_seconds',
    help: 'Time of one group-commit XADD, seconds',
    labelNames: ['stream'],
    buckets: LATENCY_BUCKETS_S,
  });
  const group = histogramOn(registry, {
    name: 'tracker_group_commit_size',
    help: 'Events per group-commit XADD',
    labelNames: ['stream'],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
  });
  const replayed = counterOn(registry, {
    name: 'tracker_spool_replayed_events_total',
    help: 'Spooled events replayed into Redis',
  });
  gaugeOn(registry, {
    name: 'tracker_link_cache_entries',
    help: 'Entries of the in-process link cache (links and remembered unknown codes)',
    collect() {
      this.set(linkEntries());
    },
  });
  const lookups = counterOn(registry, {
    name: 'tracker_link_cache_lookups_total',
    help: 'Link cache lookups of clicks: hit (cached link or unknown code) or miss (asked Postgres)',
    labelNames: ['result'],
  });
  const clickBy = CLICK_OUTCOMES.map((o) => clicks.labels(o));
  const postbackBy = POSTBACK_OUTCOMES.map((o) => postbacks.labels(o));
  const writer = (stream: string): WriterMetrics => ({
    groupSize: group.labels(stream),
    xaddSeconds: xadd.labels(stream),
  });
  return {
    click(st) {
      clickBy[outcomeIndex(st.status, 302, 'not_found')]!.inc();
      redirect.observe((performance.now() - st.t0) / 1000);
    },
    postback(st) {
      postbackBy[outcomeIndex(st.status, 200, 'rejected')]!.inc();
    },
    clicksWriter: writer('clicks'),
    conversionsWriter: writer('conversions'),
    replayedEvents: replayed,
    linkHit: lookups.labels('hit'),
    linkMiss: lookups.labels('miss'),
  };
}
