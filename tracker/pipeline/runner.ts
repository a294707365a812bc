/**
 * The pipeline runner: one loop per stream partition, each reading batches through the consumer group and
 * running the named steps of ./steps through ./step-runner.ts (timing per step, retry vs park):
 *   clicks:      decode → dedup → write_manifest → lookup_terms → score → build_rows
 *                → (store_clicks ∥ insert_clicks) → charge_clicks → ack
 *   conversions: decode → write_manifest → attribute → record → settle → insert_conversions → emit_labels
 *                → publish_events → ack
 *
 * Click partitions are owned: the consumer holding a partition's lease keeps its fraud state in the fraud
 * engine (one worker thread per state), checkpoints it, and on taking a partition over restores the
 * checkpoint and replays the entries after it (./partition.ts), so scores do not depend on restarts.
 * Conversion partitions are shared by every consumer of the group, as before.
 *
 * Exactly-once as seen by ClickHouse: before a batch is inserted its manifest (token → entry ids) is written
 * to Redis; the token derives from the stream and the ids only. A consumer taking over pending entries
 * rebuilds the original batches from the manifests and re-inserts each with its original token, which
 * ClickHouse deduplicates (tables and MVs, see the ClickHouse migration). XACK and the manifest's removal
 * happen together, after the insert succeeded. Spooled copies of clicks are dropped by click_id
 * (./steps/dedup-clicks.ts).
 *
 * This file wires the parts: ./run-batch.ts (one batch: steps, retry, park), ./click-loop.ts and
 * ./conversion-loop.ts (one partition each), ./recovery.ts (takeover and replay), ./maintenance.ts (lag,
 * trimming, stale manifests), ./versions.ts (later status and amount changes of conversions, queued in Postgres,
 * shipped to ClickHouse as versioned rows), ./stats.ts (counters), sharing ./runtime.ts.
 */
import os from 'node:os';
import type {
  ClickChargeSink,
  ClickHouseClient,
  Config,
  ConversionSink,
  Logger,
  Redis,
  Sql,
} from '../../infra/index.ts';
import { createMetricsRegistry, type Registry, redisKeys } from '../../infra/index.ts';
import { createFraudEngine } from '../fraud/engine-pool.ts';
import { geoIp } from '../geo/geoip.ts';
import { createCampaignCache, createLinkCache } from './campaigns.ts';
import { clickLoop } from './click-loop.ts';
import { conversionLoop } from './conversion-loop.ts';
import { maintenance } from './maintenance.ts';
import { createPipelineMetrics } from './metrics.ts';
import { type Runtime, sleep } from './runtime.ts';
import { newStreamStats, type PipelineStats, snapshotStats } from './stats.ts';
import type { PipelineDeps, PipelineTestHooks } from './steps/context.ts';
import { ensureStreamGroups } from './streams.ts';
import { shipVersionsLoop } from './versions.ts';

export type { PipelineStats, StreamStats } from './stats.ts';
export type { PipelineTestHooks } from './steps/context.ts';

/** How often the shipper looks for conversion versions to ship (at most maintenanceIntervalMs), ms. */
const VERSIONS_POLL_MS = 250;

/** What `startPipeline` needs. */
export interface PipelineOptions {
  config: Config;
  logger: Logger;
  /** A normal connection; the runner duplicates it for its blocking reads. */
  redis: Redis;
  sql: Sql;
  ch: ClickHouseClient;
  /** Receives accepted conversions; default: none. */
  conversionSink?: ConversionSink;
  /** Receives each batch's CPC click charges; default: none. */
  clickChargeSink?: ClickChargeSink;
  /** Consumer name in the groups; default config PIPELINE_CONSUMER, else `<hostname>-<pid>`. */
  consumerName?: string;
  /** How often pending entries are checked for takeover and streams trimmed, ms (default 1000). */
  maintenanceIntervalMs?: number;
  testHooks?: PipelineTestHooks;
  /** Where the `pipeline_*` metrics are registered; default a new registry with the default process metrics. */
  registry?: Registry;
}

/** A running pipeline. */
export interface Pipeline {
  /** Stops reading, finishes (or abandons, un-acked) the batch in progress, releases leases, pool and connections. */
  close(): Promise<void>;
  stats(): PipelineStats;
  /** The registry holding the `pipeline_*` metrics. */
  registry: Registry;
}

/**
 * Starts the pipeline: creates the consumer groups, then consumes every click and conversion partition
 * until `close()`.
 */
export async function startPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const { config, redis } = opts;
  const log = opts.logger.child({ module: 'pipeline' });
  const keys = redisKeys(config.REDIS_PREFIX);
  const consumer = opts.consumerName ?? config.PIPELINE_CONSUMER ?? `${os.hostname()}-${process.pid}`;
  const maintenanceMs = opts.maintenanceIntervalMs ?? 1_000;
  const leaseMs = Math.min(config.PIPELINE_LEASE_MS, config.PIPELINE_CLAIM_IDLE_MS);
  await ensureStreamGroups(redis, keys, config.STREAM_PARTITIONS);
  // The GeoIP database is read now, so a bad GEOIP_MMDB_PATH stops the start rather than every batch.
  const geo = geoIp(config.GEOIP_MMDB_PATH);
  log.debug({ path: geo.path, built_at: geo.builtAt }, 'geoip database loaded');
  const engine = createFraudEngine({
    threads: config.FRAUD_WORKERS,
    maxKeys: config.FRAUD_STATE_MAX_KEYS,
    labelDelayMs: config.FRAUD_LABEL_DELAY_MS,
  });
  const registry = opts.registry ?? createMetricsRegistry();
  // Read at scrape time: rt is created below.
  const metrics = createPipelineMetrics(registry, () => ({ stats: rt.stats, timings: rt.timings }));
  const deps: PipelineDeps = {
    config,
    log,
    redis,
    sql: opts.sql,
    ch: opts.ch,
    keys,
    engine,
    campaigns: createCampaignCache(opts.sql),
    links: createLinkCache(opts.sql),
    conversionSink: opts.conversionSink,
    clickChargeSink: opts.clickChargeSink,
    testHooks: opts.testHooks,
    metrics,
  };
  const rt: Runtime = {
    deps,
    config,
    log,
    redis,
    keys,
    engine,
    consumer,
    leaseMs,
    maintenanceMs,
    stats: [],
    timings: {},
    connections: [],
    closing: false,
    s: (stream: string) => rt.stats.find((x) => x.stream === stream)!,
    async nap(ms: number) {
      const end = Date.now() + ms;
      while (!rt.closing && Date.now() < end) await sleep(Math.min(50, end - Date.now()));
    },
  };

  const loops: Promise<void>[] = [];
  for (let p = 0; p < config.STREAM_PARTITIONS; p++) {
    for (const [kind, stream] of [
      ['clicks', keys.clicks(p)],
      ['conversions', keys.conversions(p)],
    ] as const) {
      rt.stats.push(newStreamStats(stream, kind));
    }
  }
  for (let p = 0; p < config.STREAM_PARTITIONS; p++) {
    loops.push(clickLoop(rt, p), conversionLoop(rt, p));
  }
  loops.push(maintenance(rt));
  const shipped = { versions_shipped: 0 };
  loops.push(
    shipVersionsLoop(
      {
        sql: opts.sql,
        ch: opts.ch,
        log,
        pollMs: Math.min(VERSIONS_POLL_MS, maintenanceMs),
        closing: () => rt.closing,
        nap: rt.nap,
      },
      shipped,
    ),
  );
  log.info({ consumer, partitions: config.STREAM_PARTITIONS }, 'pipeline started');

  return {
    async close() {
      rt.closing = true;
      await Promise.all(loops);
      await engine.close();
      for (const c of rt.connections) c.disconnect();
      metrics.detach();
      log.info({ consumer }, 'pipeline stopped');
    },
    stats() {
      return snapshotStats(consumer, rt.stats, rt.timings, shipped.versions_shipped);
    },
    registry,
  };
}
