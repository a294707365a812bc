/**
 * Taking entries over: rebuilding the original batches of pending entries from their manifests, and
 * recovering a click partition (restore its fraud state's checkpoint, replay the acknowledged entries after
 * it, process the pending ones as their original batches). See ./partition.ts and the header of ./runner.ts.
 */
import type { Redis } from '../../infra/index.ts';
import { type Batch, toBatches } from './batches.ts';
import { checkpointKey, loadCheckpoint } from './partition.ts';
import { runClickBatch } from './run-batch.ts';
import type { BatchResult, Runtime } from './runtime.ts';
import type { PartitionPosition } from './steps/context.ts';
import { decodeClickEntries } from './steps/decode-clicks.ts';
import { dedupClicks } from './steps/dedup-clicks.ts';
import { compareIds, GROUP, groupStates, type RawEntry, readManifests } from './streams.ts';

/** Entries read per XRANGE while replaying a partition into its fraud state. */
const REPLAY_CHUNK = 2_000;

/**
 * Rebuilds the original batches of taken-over pending entries from the manifests; entries of no
 * manifest were never inserted and form new batches. Entries deleted from the stream are acked.
 */
export async function planRecovered(
  rt: Runtime,
  stream: string,
  partition: number,
  entries: Array<[string, string[] | null]>,
): Promise<Batch[]> {
  const { config, redis, keys, s } = rt;
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
async function replay(rt: Runtime, partition: number, entries: RawEntry[], position: PartitionPosition) {
  const { redis, keys, engine, s } = rt;
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
export async function recoverPartition(
  rt: Runtime,
  partition: number,
  conn: Redis,
  position: PartitionPosition,
  owned: () => boolean,
): Promise<BatchResult> {
  const { log, redis, keys, engine, consumer, s } = rt;
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
    log.error({ stream, entries: stale.length, checkpoint: position.at }, 'pending entries older than the checkpoint');
  }
  const lastDelivered = (await groupStates(redis, stream)).get(GROUP)?.lastDeliveredId ?? '0-0';
  const done = new Set<string>();
  let cursor = position.at;
  while (compareIds(cursor, lastDelivered) < 0) {
    if (rt.closing || !owned()) return 'abandoned';
    const chunk = (await conn.xrange(stream, `(${cursor}`, lastDelivered, 'COUNT', REPLAY_CHUNK)) as RawEntry[];
    if (chunk.length === 0) break;
    let acked: RawEntry[] = [];
    let held: RawEntry[] = [];
    const flushHeld = async (): Promise<BatchResult> => {
      const batches = held.length > 0 ? await planRecovered(rt, stream, partition, held) : [];
      held = [];
      for (const b of batches) {
        const r = await runClickBatch(rt, b, st, position, owned);
        if (r !== 'done') return r;
        for (const id of b.ids) done.add(id);
      }
      return 'done';
    };
    for (const entry of chunk) {
      if (done.has(entry[0])) continue;
      if (pending.has(entry[0])) {
        await replay(rt, partition, acked, position);
        acked = [];
        held.push(entry);
      } else {
        const r = await flushHeld();
        if (r !== 'done') return r;
        acked.push(entry);
      }
    }
    await replay(rt, partition, acked, position);
    const r = await flushHeld();
    if (r !== 'done') return r;
    cursor = chunk[chunk.length - 1]![0];
  }
  log.info({ stream, from: snap?.at ?? null, to: position.at, pending: pending.size }, 'partition recovered');
  return 'done';
}
