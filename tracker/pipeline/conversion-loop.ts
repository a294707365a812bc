/**
 * The loop of one conversion partition, shared by every consumer of the group: this consumer's own pending
 * entries first (after a restart under the same name), then, every so often, entries another consumer
 * left pending too long (XAUTOCLAIM), else new entries.
 */
import { type Batch, toBatches } from './batches.ts';
import { planRecovered } from './recovery.ts';
import { runConversionBatch } from './run-batch.ts';
import type { Runtime } from './runtime.ts';
import { backoffMs } from './step-runner.ts';
import { GROUP, type RawEntry } from './streams.ts';

/** Consumes conversion partition `partition` (shared by every consumer of the group). */
export async function conversionLoop(rt: Runtime, partition: number) {
  const { config, log, redis, keys, consumer, maintenanceMs, connections, s, nap } = rt;
  const stream = keys.conversions(partition);
  const st = s(stream);
  const conn = redis.duplicate();
  conn.on('error', (err: Error) => log.debug({ err: err.message, stream }, 'redis error'));
  connections.push(conn);
  let ownPendingFrom: string | null = '0-0';
  let lastClaim = 0;
  let claimFrom = '0-0';
  const claimEveryMs = Math.max(50, Math.min(config.PIPELINE_CLAIM_IDLE_MS / 2, maintenanceMs));
  const run = (b: Batch) => runConversionBatch(rt, b, st);
  for (let attempt = 0; !rt.closing; ) {
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
        batches = await planRecovered(rt, stream, partition, entries);
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
        batches = await planRecovered(rt, stream, partition, claimed);
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
        if (rt.closing || (await run(b)) !== 'done') break;
      }
      attempt = 0;
    } catch (err) {
      log.warn({ stream, err: (err as Error).message }, 'stream read failed, retrying');
      await nap(backoffMs(attempt++));
    }
  }
}
