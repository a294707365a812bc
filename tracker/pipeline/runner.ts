/**
 * The pipeline runner: one loop per stream partition (clicks and conversions), each reading
 * batches through the consumer group and running the named steps
 *   readBatch → decode → (clicks) gatherFeatures → scoreFraud → storeClicks → insertClicks → ack
 *                        (conversions) attribute → record → insertConversions → sink → events → ack
 * Every step's failure is classified once, here: malformed input is dead-lettered and
 * acknowledged; anything else is retried with backoff and never acknowledged.
 *
 * Exactly-once as seen by ClickHouse: before a batch is inserted its manifest (token → entry ids)
 * is written to Redis; the token derives from the stream and the ids only. A consumer taking over
 * pending entries (its own after a restart, or another's via XAUTOCLAIM) rebuilds the original
 * batches from the manifests and re-inserts each with its original token, which ClickHouse
 * deduplicates (tables and MVs, see the ClickHouse migration). XACK and the manifest's removal
 * happen together, after the insert succeeded.
 */
import os from 'node:os';
import type { ClickHouseClient, Config, Logger, Redis, Sql } from '../../infra/index.ts';
import { isRetriable, publishEvent, redisKeys } from '../../infra/index.ts';
import {
  type ClickEvent,
  type ConversionEvent,
  encodeConversion,
  entryFields,
  entryLines,
  MalformedEventError,
} from '../events.ts';
import { createFraudPool, type FraudPool } from '../fraud/pool.ts';
import { type ClickChargeSink, cpcCharges, createCampaignCache, createLinkCache } from './campaigns.ts';
import {
  buildClicks,
  type ClickRow,
  gatherFeatures,
  insertRows,
  parseClick,
  scoreFraud,
  storeClicks,
} from './clicks.ts';
import {
  attribute,
  type ConversionSink,
  loadClicks,
  type PricedConversion,
  parseConversion,
  recordConversion,
} from './conversions.ts';
import {
  batchToken,
  clicksProcessedBefore,
  compareIds,
  ensureStreamGroups,
  GROUP,
  groupStates,
  manifestKey,
  type RawEntry,
  readManifests,
  trimStream,
} from './streams.ts';

/** Counters of one stream as seen by this consumer. */
export interface StreamStats {
  stream: string;
  kind: 'clicks' | 'conversions';
  /** Entries acknowledged by this consumer. */
  processed_entries: number;
  /** Events (clicks or conversions) in those entries, dead letters excluded. */
  processed_events: number;
  dead_lettered: number;
  /** Conversions recorded as rejected (conversion streams only). */
  rejected: number;
  /** Conversions ignored as duplicates of an earlier (advertiser, event_id). */
  duplicates: number;
  /** Batches taken over from pending entries (own after restart, or another consumer's). */
  recovered_batches: number;
  retries: number;
  /** Entries not yet delivered to the group, as of the last maintenance pass (null: unknown). */
  lag: number | null;
  /** Entries delivered but not acknowledged, group-wide, as of the last maintenance pass. */
  pending: number | null;
}

export interface PipelineStats {
  consumer: string;
  streams: StreamStats[];
}

/** Test-only fault injection. */
export interface PipelineTestHooks {
  /** Called after a batch's ClickHouse insert succeeded and before it is acknowledged. */
  afterInsert?(info: { stream: string; ids: string[]; token: string }): void | Promise<void>;
}

export interface PipelineOptions {
  config: Config;
  logger: Logger;
  /** A normal connection; the runner duplicates it for its blocking reads. */
  redis: Redis;
  sql: Sql;
  ch: ClickHouseClient;
  /** Receives accepted conversions (contract 5); default: none. */
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
  /** Stops reading, finishes (or abandons, un-acked) the batch in progress, releases the pool and connections. */
  close(): Promise<void>;
  stats(): PipelineStats;
}

interface Batch {
  ids: string[];
  entries: RawEntry[];
  token: string;
  /** Rebuilt from a manifest: the manifest is already written. */
  recovered: boolean;
}

type Outcome = { type: 'ok' } | { type: 'retry'; delayMs: number; error?: unknown };

/**
 * Most events (clicks or conversions) in one batch. Entries hold a group commit of the ingest (from one to
 * hundreds of events), so batches are bounded by events too: large enough that per-batch costs (round trips,
 * one ClickHouse part) are spread over many rows, small enough to keep a batch well under a second.
 */
export const MAX_BATCH_EVENTS = 10_000;

/** Events an entry says it holds (its `n` field); 1 when it has none (it is dead-lettered whole). */
function entryEventCount(fields: string[]): number {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'n') {
      const n = Number(fields[i + 1]);
      return Number.isSafeInteger(n) && n > 0 ? n : 1;
    }
  }
  return 1;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Exponential backoff with jitter: 100 ms, 200 ms, … capped at 10 s. */
export function backoffMs(attempt: number): number {
  const base = Math.min(100 * 2 ** Math.min(attempt, 10), 10_000);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/** A decoded entry: its good events and the lines that did not decode (dead-lettered). */
interface Decoded<T> {
  events: Array<{ id: string; event: T }>;
  dead: Array<{ id: string; fields: string[]; reason: string }>;
}

/** Decodes the entries of a batch; bad entries or lines become dead letters with their reason. */
export function decodeEntries<T>(entries: RawEntry[], parse: (line: string) => T): Decoded<T> {
  const out: Decoded<T> = { events: [], dead: [] };
  for (const [id, fields] of entries) {
    let lines: string[];
    try {
      lines = entryLines(fields);
    } catch (err) {
      out.dead.push({ id, fields, reason: (err as Error).message });
      continue;
    }
    const bad: string[] = [];
    let reason = '';
    for (const line of lines) {
      try {
        out.events.push({ id, event: parse(line) });
      } catch (err) {
        if (!(err instanceof MalformedEventError)) throw err;
        bad.push(line);
        reason ||= err.message;
      }
    }
    if (bad.length > 0) out.dead.push({ id, fields: ['v', '1', 'n', String(bad.length), 'd', bad.join('\n')], reason });
  }
  return out;
}

/**
 * Starts the pipeline: creates the consumer groups, then consumes every click and conversion
 * partition until `close()`.
 */
export async function startPipeline(opts: PipelineOptions): Promise<Pipeline> {
  const { config, redis, sql, ch } = opts;
  const log = opts.logger.child({ module: 'pipeline' });
  const keys = redisKeys(config.REDIS_PREFIX);
  const consumer = opts.consumerName ?? config.PIPELINE_CONSUMER ?? `${os.hostname()}-${process.pid}`;
  const maintenanceMs = opts.maintenanceIntervalMs ?? 1_000;
  const campaigns = createCampaignCache(sql);
  const links = createLinkCache(sql);
  await ensureStreamGroups(redis, keys, config.STREAM_PARTITIONS);
  const pool: FraudPool = createFraudPool(config.FRAUD_WORKERS);
  let closing = false;
  const stats: StreamStats[] = [];
  const connections: Redis[] = [];

  async function deadLetterAndAck(
    stream: string,
    batch: Batch,
    dead: Decoded<unknown>['dead'],
    s: StreamStats,
    events: number,
  ) {
    const m = redis.multi();
    for (const d of dead) m.xadd(keys.deadLetter(stream), '*', ...d.fields, 'reason', d.reason, 'source_id', d.id);
    if (batch.ids.length > 0) m.xack(stream, GROUP, ...batch.ids);
    m.hdel(manifestKey(keys, stream), batch.token);
    const res = await m.exec();
    const failed = res?.find(([e]) => e);
    if (!res || failed) throw failed?.[0] ?? new Error('ack transaction aborted');
    s.processed_entries += batch.ids.length;
    s.processed_events += events;
    s.dead_lettered += dead.length;
    if (dead.length > 0) log.warn({ stream, dead: dead.map((d) => ({ id: d.id, reason: d.reason })) }, 'dead-lettered');
  }

  async function writeManifest(stream: string, batch: Batch) {
    if (batch.recovered) return;
    await redis.hset(manifestKey(keys, stream), batch.token, batch.ids.join(' '));
    batch.recovered = true;
  }

  async function clickBatch(stream: string, batch: Batch, s: StreamStats): Promise<Outcome> {
    const decoded = decodeEntries<ClickEvent>(batch.entries, parseClick);
    const clicks = decoded.events.map((e) => e.event);
    if (clicks.length > 0) {
      // Independent steps run together (each is idempotent, so a retry after a partial failure is safe): the
      // manifest only has to exist before the insert, and the click store only before the ack (until then a
      // conversion of these clicks waits, since their entries are still pending).
      const [, features, terms, defaults] = await Promise.all([
        writeManifest(stream, batch),
        gatherFeatures(redis, keys, clicks),
        campaigns.get(clicks.map((c) => c.campaign_id)),
        links.get(clicks.map((c) => c.link_code)),
      ]);
      const scored = await scoreFraud(pool, clicks, features);
      const { rows, stored } = buildClicks(clicks, scored, terms, defaults);
      await Promise.all([
        storeClicks(redis, keys, clicks, stored, terms, config.ATTRIBUTION_WINDOW_DAYS),
        insertRows(ch, 'clicks', rows, batch.token),
      ]);
      // CPC money after the data, before the ack: a retried batch re-charges with the same key, which the ledger
      // answers with the first result.
      const charges = opts.clickChargeSink ? cpcCharges(rows, terms) : [];
      if (charges.length > 0) await opts.clickChargeSink!.clicksCharged(charges, batch.token);
    } else await writeManifest(stream, batch);
    await opts.testHooks?.afterInsert?.({ stream, ids: batch.ids, token: batch.token });
    await deadLetterAndAck(stream, batch, decoded.dead, s, clicks.length);
    return { type: 'ok' };
  }

  /** Updates rows and their pending live events with the status Postgres holds after the sink ran. */
  async function applyFinalStatus(
    rows: ClickRow[],
    created: Array<{ c: ConversionEvent; reason: string | null }>,
  ): Promise<void> {
    const ids = rows.map((r) => String(r.conversion_id));
    const final = await sql<{ id: string; status: string; reject_reason: string | null }[]>`
      select id, status, reject_reason from conversions where id = any(${ids}::uuid[])`;
    const byId = new Map(final.map((f) => [f.id.toLowerCase(), f]));
    for (const row of rows) {
      const f = byId.get(String(row.conversion_id).toLowerCase());
      if (!f) continue;
      row.status = f.status;
      row.reject_reason = f.reject_reason ?? '';
    }
    for (const e of created) {
      const f = byId.get(e.c.conversion_id.toLowerCase());
      if (f?.status === 'rejected') e.reason = f.reject_reason ?? 'rejected';
    }
  }

  async function conversionBatch(stream: string, batch: Batch, s: StreamStats): Promise<Outcome> {
    const decoded = decodeEntries<ConversionEvent>(batch.entries, parseConversion);
    const convs = decoded.events.map((e) => e.event);
    await writeManifest(stream, batch);
    const clicks = await loadClicks(redis, keys, convs);
    // A click not in the store may still be in flight on a click stream: decide only once the
    // click consumers have processed everything written before this conversion.
    let latestMissing: string | null = null;
    decoded.events.forEach((e, i) => {
      if (!clicks[i] && (latestMissing === null || compareIds(e.id, latestMissing) > 0)) latestMissing = e.id;
    });
    if (
      latestMissing !== null &&
      !(await clicksProcessedBefore(redis, keys, config.STREAM_PARTITIONS, latestMissing))
    ) {
      return { type: 'retry', delayMs: 100 };
    }
    const terms = await campaigns.get(clicks.map((c) => c?.campaign_id ?? 0));
    const rows: ClickRow[] = [];
    const accepted: PricedConversion[] = [];
    const created: Array<{ c: ConversionEvent; reason: string | null; affiliate: number | null }> = [];
    for (let i = 0; i < convs.length; i++) {
      const c = convs[i]!;
      const click = clicks[i] ?? null;
      const a = attribute(
        c,
        click,
        click ? (terms.get(click.campaign_id) ?? null) : null,
        config.ATTRIBUTION_WINDOW_DAYS,
      );
      let r: Awaited<ReturnType<typeof recordConversion>>;
      try {
        r = await recordConversion(sql, c, a);
      } catch (err) {
        if (!(err instanceof MalformedEventError)) throw err;
        decoded.dead.push({
          id: decoded.events[i]!.id,
          fields: entryFields([encodeConversion(c)]),
          reason: err.message,
        });
        continue;
      }
      if (!r.stored) {
        s.duplicates++;
        continue;
      }
      rows.push(r.row!);
      if (r.accepted) accepted.push(r.accepted);
      if (r.rejectReason) s.rejected++;
      created.push({ c, reason: r.rejectReason, affiliate: a.type === 'ok' ? a.click.affiliate_id : null });
    }
    // Money before ClickHouse: the ledger may still refuse an accepted conversion (budget exhausted, daily cap), so
    // the rows take their final status from Postgres, the source of truth, and reports agree with the money. A crash
    // between the sink and the insert is safe: the sink is idempotent by conversion id and a replayed conversion
    // rebuilds its row from Postgres.
    for (const a of accepted) await opts.conversionSink?.conversionRecorded(a);
    if (accepted.length > 0) await applyFinalStatus(rows, created);
    await insertRows(ch, 'conversions', rows, batch.token);
    await opts.testHooks?.afterInsert?.({ stream, ids: batch.ids, token: batch.token });
    for (const { c, reason, affiliate } of created) {
      // At-least-once: a batch retried after a crash publishes again with the same event id.
      await publishEvent(redis, keys, {
        id: c.conversion_id,
        type: reason ? 'conversion.rejected' : 'conversion.created',
        created_at: new Date().toISOString(),
        user_ids: affiliate ? [c.advertiser_id, affiliate] : [c.advertiser_id],
        data: { conversion_id: c.conversion_id, event_id: c.event_id, reject_reason: reason, status: c.status },
      }).catch((err) => log.warn({ err: (err as Error).message }, 'live event not published'));
    }
    await deadLetterAndAck(stream, batch, decoded.dead, s, created.length);
    return { type: 'ok' };
  }

  /** Runs one batch until it is acknowledged or the pipeline closes (then it stays pending). */
  async function runBatch(stream: string, kind: StreamStats['kind'], batch: Batch, s: StreamStats) {
    let touched = Date.now();
    for (let attempt = 0; !closing; attempt++) {
      let out: Outcome;
      try {
        out = kind === 'clicks' ? await clickBatch(stream, batch, s) : await conversionBatch(stream, batch, s);
      } catch (err) {
        // Not acknowledged, so nothing is lost: outages are expected; other errors are logged louder.
        out = { type: 'retry', delayMs: backoffMs(attempt), error: err };
        const e = err as Error;
        if (isRetriable(err)) log.warn({ stream, attempt, err: e.message }, 'batch failed, retrying');
        else log.error({ stream, attempt, err: e.message }, 'batch failed (unexpected), retrying');
      }
      if (out.type === 'ok') return;
      s.retries++;
      // A live consumer retrying through an outage keeps its entries from looking abandoned: re-claim
      // them (resets their idle time) unless someone else touched them meanwhile.
      const half = Math.floor(config.PIPELINE_CLAIM_IDLE_MS / 2);
      if (Date.now() - touched >= half && batch.ids.length > 0) {
        touched = Date.now();
        await redis.xclaim(stream, GROUP, consumer, half, ...batch.ids, 'JUSTID').catch(() => {});
      }
      await nap(out.delayMs);
    }
  }

  /**
   * Splits entries into batches of at most PIPELINE_BATCH_SIZE entries and {@link MAX_BATCH_EVENTS} events,
   * so a batch's cost (memory, time in Redis and ClickHouse) stays bounded whatever the ingest's group size.
   */
  function toBatches(stream: string, entries: RawEntry[]): Batch[] {
    const out: Batch[] = [];
    let part: RawEntry[] = [];
    let events = 0;
    const close = () => {
      const ids = part.map((e) => e[0]);
      out.push({ ids, entries: part, token: batchToken(stream, ids), recovered: false });
      part = [];
      events = 0;
    };
    for (const e of entries) {
      const n = entryEventCount(e[1]);
      if (part.length > 0 && (part.length >= config.PIPELINE_BATCH_SIZE || events + n > MAX_BATCH_EVENTS)) close();
      part.push(e);
      events += n;
    }
    if (part.length > 0) close();
    return out;
  }

  /**
   * Rebuilds the original batches of taken-over pending entries from the manifests; entries of no
   * manifest were never inserted and form new batches. Entries deleted from the stream are acked.
   */
  async function planRecovered(stream: string, entries: Array<[string, string[] | null]>): Promise<Batch[]> {
    const gone = entries.filter(([, f]) => !f).map(([id]) => id);
    if (gone.length > 0) await redis.xack(stream, GROUP, ...gone);
    const live = entries.filter((e): e is RawEntry => e[1] !== null);
    if (live.length === 0) return [];
    const manifests = await readManifests(redis, keys, stream);
    const owner = new Map<string, string>();
    for (const [token, ids] of manifests) for (const id of ids) owner.set(id, token);
    const byId = new Map(live.map((e) => [e[0], e]));
    const batches: Batch[] = [];
    const loose: RawEntry[] = [];
    const done = new Set<string>();
    for (const e of live) {
      const token = owner.get(e[0]);
      if (!token) {
        loose.push(e);
        continue;
      }
      if (done.has(token)) continue;
      done.add(token);
      const ids = manifests.get(token)!;
      const batchEntries: RawEntry[] = [];
      for (const id of ids) {
        let entry = byId.get(id);
        if (!entry) {
          const r = (await redis.xrange(stream, id, id)) as RawEntry[];
          entry = r[0];
        }
        if (entry) batchEntries.push(entry);
      }
      batches.push({ ids, entries: batchEntries, token, recovered: true });
    }
    const fresh = toBatches(stream, loose);
    s(stream).recovered_batches += batches.length;
    return [...batches, ...fresh];
  }

  const s = (stream: string) => stats.find((x) => x.stream === stream)!;

  async function loop(stream: string, kind: StreamStats['kind']) {
    const st = s(stream);
    const conn = redis.duplicate();
    connections.push(conn);
    let ownPendingFrom: string | null = '0-0';
    let lastClaim = 0;
    let claimFrom = '0-0';
    const claimEveryMs = Math.max(50, Math.min(config.PIPELINE_CLAIM_IDLE_MS / 2, maintenanceMs));
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
          batches = await planRecovered(stream, entries);
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
          batches = await planRecovered(stream, claimed);
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
          batches = toBatches(stream, res?.[0]?.[1] ?? []);
        }
        for (const b of batches) {
          if (closing) break;
          await runBatch(stream, kind, b, st);
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
          await trimStream(redis, st.stream, states);
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

  /** Sleeps up to `ms`, waking early when the pipeline closes. */
  async function nap(ms: number) {
    const end = Date.now() + ms;
    while (!closing && Date.now() < end) await sleep(Math.min(50, end - Date.now()));
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
        retries: 0,
        lag: null,
        pending: null,
      });
    }
  }
  for (const st of stats) loops.push(loop(st.stream, st.kind));
  loops.push(maintenance());
  log.info({ consumer, partitions: config.STREAM_PARTITIONS }, 'pipeline started');

  return {
    async close() {
      closing = true;
      await Promise.all(loops);
      await pool.close();
      for (const c of connections) c.disconnect();
      log.info({ consumer }, 'pipeline stopped');
    },
    stats() {
      return { consumer, streams: stats.map((x) => ({ ...x })) };
    },
  };
}
