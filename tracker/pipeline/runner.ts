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
import { publishEvent, redisKeys } from '../../infra/index.ts';
import { createFraudEngine, FraudStateMismatch } from '../fraud/engine-pool.ts';
import { type Batch, type DeadLetter, entryEventCount, MAX_BATCH_EVENTS, toBatches } from './batches.ts';
import { createCampaignCache, createLinkCache } from './campaigns.ts';
import { checkpointAt, checkpointKey, createLease, leaseKey, loadCheckpoint, saveCheckpoint } from './partition.ts';
import { backoffMs, runSteps, type StepList, type StepOutcome, type StepTimings } from './step-runner.ts';
import { deadLetterAndAck } from './steps/ack.ts';
import { attributeConversions } from './steps/attribute-conversions.ts';
import { buildClickRows } from './steps/build-click-rows.ts';
import { chargeClicks } from './steps/charge-clicks.ts';
import type { ClickCtx, ConversionCtx, PartitionPosition, PipelineDeps, PipelineTestHooks } from './steps/context.ts';
import { decodeClickEntries, decodeClicks } from './steps/decode-clicks.ts';
import { decodeConversions } from './steps/decode-conversions.ts';
import { dedupClicks, dedupClicksStep } from './steps/dedup-clicks.ts';
import { emitLabels } from './steps/emit-labels.ts';
import { insertClicks, insertConversions } from './steps/insert-rows.ts';
import { lookupTerms } from './steps/lookup-terms.ts';
import { publishConversions } from './steps/publish-conversions.ts';
import { recordConversions } from './steps/record-conversions.ts';
import { scoreClicks } from './steps/score-clicks.ts';
import { settleConversions } from './steps/settle-conversions.ts';
import { storeClicksStep } from './steps/store-clicks.ts';
import { writeManifest } from './steps/write-manifest.ts';
import {
  compareIds,
  ensureStreamGroups,
  GROUP,
  groupStates,
  manifestKey,
  type RawEntry,
  readManifests,
  trimStream,
} from './streams.ts';

export type { PipelineTestHooks } from './steps/context.ts';

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

export interface PipelineStats {
  consumer: string;
  streams: StreamStats[];
  /** Time per step name since start, over every partition. */
  steps: StepTimings;
}

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
}

export interface Pipeline {
  /** Stops reading, finishes (or abandons, un-acked) the batch in progress, releases leases, pool and connections. */
  close(): Promise<void>;
  stats(): PipelineStats;
}

const CLICK_STEPS: StepList<ClickCtx> = [
  decodeClicks,
  dedupClicksStep,
  writeManifest,
  lookupTerms,
  scoreClicks,
  buildClickRows,
  // Independent (each idempotent): the click records only have to exist before the ack, as the rows do.
  [storeClicksStep, insertClicks],
  chargeClicks,
];

const CONVERSION_STEPS: StepList<ConversionCtx> = [
  decodeConversions,
  writeManifest,
  attributeConversions,
  recordConversions,
  settleConversions,
  insertConversions,
  emitLabels,
  publishConversions,
];

/** A click read stops lingering for more once it holds this many clicks (half a full batch). */
const LINGER_UNTIL_EVENTS = MAX_BATCH_EVENTS / 2;

/** Entries read per XRANGE while replaying a partition into its fraud state. */
const REPLAY_CHUNK = 2_000;

/** How a batch ended: acknowledged (or parked), left pending, or its partition must be recovered first. */
type BatchResult = 'done' | 'abandoned' | 'recover';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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
  const engine = createFraudEngine({
    threads: config.FRAUD_WORKERS,
    maxKeys: config.FRAUD_STATE_MAX_KEYS,
    labelDelayMs: config.FRAUD_LABEL_DELAY_MS,
  });
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
  };
  let closing = false;
  const stats: StreamStats[] = [];
  const timings: StepTimings = {};
  const connections: Redis[] = [];
  const s = (stream: string) => stats.find((x) => x.stream === stream)!;

  /** Sleeps up to `ms`, waking early when the pipeline closes. */
  async function nap(ms: number) {
    const end = Date.now() + ms;
    while (!closing && Date.now() < end) await sleep(Math.min(50, end - Date.now()));
  }

  /**
   * Parks a batch no retry can fix: every entry goes to the dead-letter stream with the reason, the batch is
   * acknowledged, and an alert is published (admins see `pipeline.batch_parked`). The partition moves on.
   */
  async function park(batch: Batch, out: Extract<StepOutcome, { type: 'park' }>, st: StreamStats) {
    const dead: DeadLetter[] = batch.entries.map(([id, fields]) => ({ id, fields, reason: `parked: ${out.reason}` }));
    await deadLetterAndAck(deps, batch, dead);
    st.processed_entries += batch.ids.length;
    st.dead_lettered += dead.length;
    st.parked_batches++;
    log.error({ stream: batch.stream, step: out.step, reason: out.reason, entries: batch.ids.length }, 'batch parked');
    await publishEvent(redis, keys, {
      id: `parked:${batch.token}`,
      type: 'pipeline.batch_parked',
      created_at: new Date().toISOString(),
      user_ids: [],
      data: { stream: batch.stream, step: out.step, reason: out.reason, entries: batch.ids.length, token: batch.token },
    }).catch((err) => log.warn({ err: (err as Error).message }, 'park alert not published'));
  }

  /**
   * Runs one batch's steps until it is acknowledged or parked (`done`), or the pipeline closes or the
   * partition's lease is lost (`abandoned`: it stays pending), or its fraud state was lost (`recover`).
   */
  async function runBatch<C extends ClickCtx | ConversionCtx>(
    steps: StepList<C>,
    ctx: C,
    st: StreamStats,
    finish: (ctx: C) => void,
    owned: () => boolean = () => true,
  ): Promise<BatchResult> {
    let touched = Date.now();
    let unexpected = 0;
    for (let attempt = 0; !closing && owned(); attempt++) {
      const out = await runSteps(steps, ctx, timings, attempt, unexpected);
      if (out.type === 'ok') {
        try {
          await deadLetterAndAck(deps, ctx.batch, ctx.dead);
          finish(ctx);
          st.processed_entries += ctx.batch.ids.length;
          st.dead_lettered += ctx.dead.length;
          return 'done';
        } catch (err) {
          log.warn({ stream: ctx.batch.stream, err: (err as Error).message }, 'ack failed, retrying');
          await nap(100);
          continue;
        }
      }
      if (out.error instanceof FraudStateMismatch) {
        log.warn({ stream: ctx.batch.stream, reason: out.reason }, 'fraud state lost, recovering the partition');
        return 'recover';
      }
      if (out.type === 'park') {
        try {
          await park(ctx.batch, out, st);
          return 'done';
        } catch (err) {
          log.warn({ stream: ctx.batch.stream, err: (err as Error).message }, 'parking failed, retrying');
          await nap(100);
          continue;
        }
      }
      st.retries++;
      if (out.unexpected) unexpected++;
      if (out.error !== undefined)
        log.warn({ stream: ctx.batch.stream, attempt, reason: out.reason }, 'batch failed, retrying');
      // A live consumer retrying through an outage keeps its entries from looking abandoned: re-claim
      // them (resets their idle time) unless someone else touched them meanwhile.
      const half = Math.floor(config.PIPELINE_CLAIM_IDLE_MS / 2);
      if (Date.now() - touched >= half && ctx.batch.ids.length > 0) {
        touched = Date.now();
        await redis.xclaim(ctx.batch.stream, GROUP, consumer, half, ...ctx.batch.ids, 'JUSTID').catch(() => {});
      }
      await nap(out.delayMs);
    }
    return 'abandoned';
  }

  function clickCtx(batch: Batch, position: PartitionPosition): ClickCtx {
    return {
      deps,
      batch,
      position,
      dead: [],
      decoded: [],
      labels: [],
      clicks: [],
      clickEntries: [],
      records: [],
      duplicates: 0,
      terms: new Map(),
      defaults: new Map(),
      built: { tsv: '', stored: [], invalid: new Uint8Array(0) },
    };
  }

  function conversionCtx(batch: Batch): ConversionCtx {
    return {
      deps,
      batch,
      dead: [],
      decoded: [],
      clicks: [],
      terms: new Map(),
      rows: [],
      accepted: [],
      created: [],
      labels: [],
      duplicates: 0,
      rejected: 0,
    };
  }

  /**
   * Rebuilds the original batches of taken-over pending entries from the manifests; entries of no
   * manifest were never inserted and form new batches. Entries deleted from the stream are acked.
   */
  async function planRecovered(
    stream: string,
    partition: number,
    entries: Array<[string, string[] | null]>,
  ): Promise<Batch[]> {
    const gone = entries.filter(([, f]) => !f).map(([id]) => id);
    if (gone.length > 0) await redis.xack(stream, GROUP, ...gone);
    const live = entries.filter((e): e is RawEntry => e[1] !== null);
    if (live.length === 0) return [];
    const manifests = await readManifests(redis, keys, stream);
    const owner = new Map<string, string>();
    for (const [token, ids] of manifests) for (const id of ids) owner.set(id, token);
    const byId = new Map(live.map((e) => [e[0], e]));
    const batches: Batch[] = [];
    let loose: RawEntry[] = [];
    const done = new Set<string>();
    const flushLoose = () => {
      batches.push(...toBatches(stream, partition, loose, config.PIPELINE_BATCH_SIZE));
      loose = [];
    };
    for (const e of live) {
      const token = owner.get(e[0]);
      if (!token) {
        loose.push(e);
        continue;
      }
      if (done.has(token)) continue;
      done.add(token);
      flushLoose();
      const ids = manifests.get(token)!;
      const batchEntries: RawEntry[] = [];
      for (const id of ids) {
        let entry = byId.get(id);
        if (!entry) entry = ((await redis.xrange(stream, id, id)) as RawEntry[])[0];
        if (entry) batchEntries.push(entry);
      }
      batches.push({ stream, partition, ids, entries: batchEntries, token, recovered: true });
      s(stream).recovered_batches++;
    }
    flushLoose();
    return batches;
  }

  /** Replays acknowledged entries into a partition's fraud state (no insert, no ack). */
  async function replay(partition: number, entries: RawEntry[], position: PartitionPosition) {
    if (entries.length === 0) return;
    const decoded = decodeClickEntries(entries);
    const { records } = await dedupClicks(redis, keys, decoded);
    const to = entries[entries.length - 1]![0];
    await engine.process(partition, records, { from: position.at, to }, { replay: true });
    position.at = to;
    s(keys.clicks(partition)).replayed_entries += entries.length;
  }

  /**
   * Takes a click partition over: restores its checkpoint, claims every pending entry (we hold the lease,
   * so whoever read them is gone), then walks the stream after the checkpoint in order: acknowledged
   * entries are replayed into the state, pending ones are processed as their original batches (rebuilt
   * from the manifests), so they are scored exactly as they would have been without the interruption.
   * @returns `done` when the partition is current up to the group's last delivered id.
   */
  async function recoverPartition(
    partition: number,
    conn: Redis,
    position: PartitionPosition,
    owned: () => boolean,
  ): Promise<BatchResult> {
    const stream = keys.clicks(partition);
    const st = s(stream);
    const snap = await loadCheckpoint(redis, checkpointKey(keys, stream));
    await engine.restore(partition, snap);
    position.at = snap?.at ?? '0-0';
    const pending = new Set<string>();
    for (let from = '0-0'; ; ) {
      const [next, claimed] = (await conn.xautoclaim(stream, GROUP, consumer, 0, from, 'COUNT', 1000, 'JUSTID')) as [
        string,
        string[],
      ];
      for (const id of claimed) pending.add(id);
      if (next === '0-0') break;
      from = next;
    }
    const stale = [...pending].filter((id) => compareIds(id, position.at) <= 0);
    if (stale.length > 0) {
      // Only a consumer that kept working after losing its lease leaves these; the state already holds them.
      log.error(
        { stream, entries: stale.length, checkpoint: position.at },
        'pending entries older than the checkpoint',
      );
    }
    const lastDelivered = (await groupStates(redis, stream)).get(GROUP)?.lastDeliveredId ?? '0-0';
    const done = new Set<string>();
    let cursor = position.at;
    while (compareIds(cursor, lastDelivered) < 0) {
      if (closing || !owned()) return 'abandoned';
      const chunk = (await conn.xrange(stream, `(${cursor}`, lastDelivered, 'COUNT', REPLAY_CHUNK)) as RawEntry[];
      if (chunk.length === 0) break;
      let acked: RawEntry[] = [];
      let held: RawEntry[] = [];
      const flushHeld = async (): Promise<BatchResult> => {
        const batches = held.length > 0 ? await planRecovered(stream, partition, held) : [];
        held = [];
        for (const b of batches) {
          const r = await runClickBatch(b, st, position, owned);
          if (r !== 'done') return r;
          for (const id of b.ids) done.add(id);
        }
        return 'done';
      };
      for (const entry of chunk) {
        if (done.has(entry[0])) continue;
        if (pending.has(entry[0])) {
          await replay(partition, acked, position);
          acked = [];
          held.push(entry);
        } else {
          const r = await flushHeld();
          if (r !== 'done') return r;
          acked.push(entry);
        }
      }
      await replay(partition, acked, position);
      const r = await flushHeld();
      if (r !== 'done') return r;
      cursor = chunk[chunk.length - 1]![0];
    }
    log.info({ stream, from: snap?.at ?? null, to: position.at, pending: pending.size }, 'partition recovered');
    return 'done';
  }

  function runClickBatch(batch: Batch, st: StreamStats, position: PartitionPosition, owned: () => boolean) {
    return runBatch(
      CLICK_STEPS,
      clickCtx(batch, position),
      st,
      (ctx) => {
        st.processed_events += ctx.clicks.length;
        st.duplicates += ctx.duplicates;
      },
      owned,
    );
  }

  /**
   * Reads the next click entries: blocks up to PIPELINE_BLOCK_MS for the first, then, while the batch is
   * small, lingers up to PIPELINE_LINGER_MS for more (Kafka's linger.ms): a batch's fixed costs (a fraud
   * task, a ClickHouse insert and its part, the acks) are then spread over more clicks at moderate rates,
   * for at most that much more click-to-report latency.
   */
  async function readClicks(conn: Redis, stream: string): Promise<RawEntry[]> {
    const read = async (count: number, blockMs: number): Promise<RawEntry[]> => {
      const res = (
        blockMs > 0
          ? await conn.xreadgroup('GROUP', GROUP, consumer, 'COUNT', count, 'BLOCK', blockMs, 'STREAMS', stream, '>')
          : await conn.xreadgroup('GROUP', GROUP, consumer, 'COUNT', count, 'STREAMS', stream, '>')
      ) as Array<[string, RawEntry[]]> | null;
      return res?.[0]?.[1] ?? [];
    };
    const entries = await read(config.PIPELINE_BATCH_SIZE, config.PIPELINE_BLOCK_MS);
    if (entries.length === 0 || config.PIPELINE_LINGER_MS === 0) return entries;
    const until = Date.now() + config.PIPELINE_LINGER_MS;
    let events = entries.reduce((n, e) => n + entryEventCount(e[1]), 0);
    while (!closing && events < LINGER_UNTIL_EVENTS && entries.length < config.PIPELINE_BATCH_SIZE) {
      const left = until - Date.now();
      if (left <= 0) break;
      await sleep(Math.min(left, 20));
      const more = await read(config.PIPELINE_BATCH_SIZE - entries.length, 0);
      for (const e of more) {
        entries.push(e);
        events += entryEventCount(e[1]);
      }
    }
    return entries;
  }

  /** Consumes click partition `p` whenever this consumer holds its lease. */
  async function clickLoop(partition: number) {
    const stream = keys.clicks(partition);
    const st = s(stream);
    const conn = redis.duplicate();
    connections.push(conn);
    const lease = createLease(redis, leaseKey(keys, stream), consumer, leaseMs);
    const ckptKey = checkpointKey(keys, stream);
    let owned = false;
    let lost = false;
    const isOwned = () => owned && !lost;
    const renewTimer = setInterval(
      () => {
        if (!owned) return;
        lease.renew().then(
          (ok) => {
            if (!ok) lost = true;
          },
          () => {},
        );
      },
      Math.max(20, Math.floor(leaseMs / 3)),
    );
    renewTimer.unref();
    const position: PartitionPosition = { at: '0-0' };
    // The state may be checkpointed only where every entry up to its position is acknowledged: a state
    // that already holds a pending batch would make a takeover skip that batch.
    let settled = false;
    let checkpointed = '';
    let lastCheckpoint = Date.now();
    const checkpoint = async (force: boolean) => {
      if (!settled || position.at === checkpointed || position.at === '0-0') return;
      if (!force && Date.now() - lastCheckpoint < config.PIPELINE_CHECKPOINT_MS) return;
      const snap = await engine.snapshot(partition);
      await saveCheckpoint(redis, ckptKey, snap);
      checkpointed = snap.at;
      lastCheckpoint = Date.now();
    };
    for (let attempt = 0; !closing; ) {
      try {
        if (lost) {
          log.warn({ stream }, 'partition lease lost');
          owned = false;
          lost = false;
        }
        if (!owned) {
          settled = false;
          if (!(await lease.acquire())) {
            await nap(Math.max(50, Math.floor(leaseMs / 2)));
            continue;
          }
          owned = true;
          const r = await recoverPartition(partition, conn, position, isOwned);
          if (r === 'recover') owned = false;
          if (r !== 'done') continue;
          settled = true;
          checkpointed = '';
          await checkpoint(true);
        }
        const entries = await readClicks(conn, stream);
        const batches = toBatches(stream, partition, entries, config.PIPELINE_BATCH_SIZE);
        for (const b of batches) {
          if (closing || !isOwned()) break;
          settled = false;
          const r = await runClickBatch(b, st, position, isOwned);
          if (r === 'recover') owned = false; // restore the checkpoint and replay on the next turn
          if (r !== 'done') break;
          settled = true;
          await checkpoint(false);
        }
        // Idle: make the checkpoint current, so a takeover replays little and trimming can proceed.
        if (batches.length === 0 && isOwned()) await checkpoint(true);
        attempt = 0;
      } catch (err) {
        log.warn({ stream, err: (err as Error).message }, 'click partition failed, retrying');
        if (err instanceof FraudStateMismatch) owned = false;
        await nap(backoffMs(attempt++));
      }
    }
    clearInterval(renewTimer);
    if (owned && !lost) {
      await checkpoint(true).catch(() => {});
      await lease.release().catch(() => {});
    }
  }

  /** Consumes conversion partition `p` (shared by every consumer of the group). */
  async function conversionLoop(partition: number) {
    const stream = keys.conversions(partition);
    const st = s(stream);
    const conn = redis.duplicate();
    connections.push(conn);
    let ownPendingFrom: string | null = '0-0';
    let lastClaim = 0;
    let claimFrom = '0-0';
    const claimEveryMs = Math.max(50, Math.min(config.PIPELINE_CLAIM_IDLE_MS / 2, maintenanceMs));
    const run = (b: Batch) =>
      runBatch(CONVERSION_STEPS, conversionCtx(b), st, (ctx) => {
        st.processed_events += ctx.created.length;
        st.duplicates += ctx.duplicates;
        st.rejected += ctx.rejected;
      });
    for (let attempt = 0; !closing; ) {
      try {
        let batches: Batch[] = [];
        if (ownPendingFrom !== null) {
          // After a restart under the same name: our own pending entries first.
          const res = (await conn.xreadgroup(
            'GROUP',
            GROUP,
            consumer,
            'COUNT',
            config.PIPELINE_BATCH_SIZE * 10,
            'STREAMS',
            stream,
            ownPendingFrom,
          )) as Array<[string, Array<[string, string[] | null]>]> | null;
          const entries = res?.[0]?.[1] ?? [];
          ownPendingFrom = entries.length > 0 ? entries[entries.length - 1]![0] : null;
          batches = await planRecovered(stream, partition, entries);
        } else if (Date.now() - lastClaim >= claimEveryMs) {
          const [next, claimed] = (await conn.xautoclaim(
            stream,
            GROUP,
            consumer,
            config.PIPELINE_CLAIM_IDLE_MS,
            claimFrom,
            'COUNT',
            config.PIPELINE_BATCH_SIZE,
          )) as [string, Array<[string, string[] | null]>, string[]?];
          claimFrom = next;
          if (next === '0-0') lastClaim = Date.now();
          if (claimed.length > 0) log.info({ stream, entries: claimed.length }, 'took over pending entries');
          batches = await planRecovered(stream, partition, claimed);
        }
        if (batches.length === 0) {
          const res = (await conn.xreadgroup(
            'GROUP',
            GROUP,
            consumer,
            'COUNT',
            config.PIPELINE_BATCH_SIZE,
            'BLOCK',
            config.PIPELINE_BLOCK_MS,
            'STREAMS',
            stream,
            '>',
          )) as Array<[string, RawEntry[]]> | null;
          batches = toBatches(stream, partition, res?.[0]?.[1] ?? [], config.PIPELINE_BATCH_SIZE);
        }
        for (const b of batches) {
          if (closing || (await run(b)) !== 'done') break;
        }
        attempt = 0;
      } catch (err) {
        log.warn({ stream, err: (err as Error).message }, 'stream read failed, retrying');
        await nap(backoffMs(attempt++));
      }
    }
  }

  async function maintenance() {
    while (!closing) {
      for (const st of stats) {
        try {
          const states = await groupStates(redis, st.stream);
          const g = states.get(GROUP);
          st.lag = g?.lag ?? null;
          st.pending = g?.pending ?? null;
          // A click stream keeps every entry after its checkpoint: a takeover replays them into the state.
          const keepFrom = st.kind === 'clicks' ? await checkpointAt(redis, checkpointKey(keys, st.stream)) : undefined;
          await trimStream(redis, st.stream, states, keepFrom);
          // Manifests whose entries are all acknowledged (a crash between XACK and HDEL) are stale.
          const manifests = await readManifests(redis, keys, st.stream);
          const minPending = g?.minPendingId ?? null;
          for (const [token, ids] of manifests) {
            const last = ids[ids.length - 1] ?? '0-0';
            if (minPending === null || compareIds(last, minPending) < 0) {
              const again = await groupStates(redis, st.stream);
              const mp = again.get(GROUP)?.minPendingId ?? null;
              if (mp === null || compareIds(last, mp) < 0) await redis.hdel(manifestKey(keys, st.stream), token);
            }
          }
        } catch (err) {
          log.warn({ stream: st.stream, err: (err as Error).message }, 'maintenance failed');
        }
      }
      await nap(maintenanceMs);
    }
  }

  const loops: Promise<void>[] = [];
  for (let p = 0; p < config.STREAM_PARTITIONS; p++) {
    for (const [kind, stream] of [
      ['clicks', keys.clicks(p)],
      ['conversions', keys.conversions(p)],
    ] as const) {
      stats.push({
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
      });
    }
  }
  for (let p = 0; p < config.STREAM_PARTITIONS; p++) {
    loops.push(clickLoop(p), conversionLoop(p));
  }
  loops.push(maintenance());
  log.info({ consumer, partitions: config.STREAM_PARTITIONS }, 'pipeline started');

  return {
    async close() {
      closing = true;
      await Promise.all(loops);
      await engine.close();
      for (const c of connections) c.disconnect();
      log.info({ consumer }, 'pipeline stopped');
    },
    stats() {
      return {
        consumer,
        streams: stats.map((x) => ({ ...x })),
        steps: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, { ...v }])),
      };
    },
  };
}
