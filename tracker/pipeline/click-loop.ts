/**
 * The loop of one click partition: holds the partition's lease (renewing it), recovers the partition on
 * taking it over, reads click batches (lingering for more while a batch is small), runs them and
 * checkpoints the fraud state where every entry up to it is acknowledged.
 */
import type { Redis } from '../../infra/index.ts';
import { FraudStateMismatch } from '../fraud/engine-pool.ts';
import { entryEventCount, MAX_BATCH_EVENTS, toBatches } from './batches.ts';
import { checkpointKey, createLease, leaseKey, saveCheckpoint } from './partition.ts';
import { recoverPartition } from './recovery.ts';
import { runClickBatch } from './run-batch.ts';
import { type Runtime, sleep } from './runtime.ts';
import { backoffMs } from './step-runner.ts';
import type { PartitionPosition } from './steps/context.ts';
import { GROUP, type RawEntry } from './streams.ts';

/** A click read stops lingering for more once it holds this many clicks (half a full batch). */
const LINGER_UNTIL_EVENTS = MAX_BATCH_EVENTS / 2;

/**
 * Reads the next click entries: blocks up to PIPELINE_BLOCK_MS for the first, then, while the batch is
 * small, lingers up to PIPELINE_LINGER_MS for more (Kafka's linger.ms): a batch's fixed costs (a fraud
 * task, a ClickHouse insert and its part, the acks) are then spread over more clicks at moderate rates,
 * for at most that much more click-to-report latency.
 */
async function readClicks(rt: Runtime, conn: Redis, stream: string): Promise<RawEntry[]> {
  const { config, consumer } = rt;
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
  while (!rt.closing && events < LINGER_UNTIL_EVENTS && entries.length < config.PIPELINE_BATCH_SIZE) {
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

/** Consumes click partition `partition` whenever this consumer holds its lease. */
export async function clickLoop(rt: Runtime, partition: number) {
  const { config, log, redis, keys, engine, consumer, leaseMs, connections, s, nap } = rt;
  const stream = keys.clicks(partition);
  const st = s(stream);
  const conn = redis.duplicate();
  conn.on('error', (err: Error) => log.debug({ err: err.message, stream }, 'redis error'));
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
  for (let attempt = 0; !rt.closing; ) {
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
        const r = await recoverPartition(rt, partition, conn, position, isOwned);
        if (r === 'recover') owned = false;
        if (r !== 'done') continue;
        settled = true;
        checkpointed = '';
        await checkpoint(true);
      }
      const entries = await readClicks(rt, conn, stream);
      const batches = toBatches(stream, partition, entries, config.PIPELINE_BATCH_SIZE);
      for (const b of batches) {
        if (rt.closing || !isOwned()) break;
        settled = false;
        const r = await runClickBatch(rt, b, st, position, isOwned);
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
