import type { Batch, DeadLetter } from '../batches.ts';
import { GROUP, manifestKey } from '../streams.ts';
import type { PipelineDeps } from './context.ts';

/**
 * Dead-letters `dead` (each entry with its reason), acknowledges the batch and removes its manifest, in
 * one MULTI (every key carries the partition's hash tag). @throws the first failed reply.
 */
export async function deadLetterAndAck(deps: PipelineDeps, batch: Batch, dead: readonly DeadLetter[]): Promise<void> {
  const { redis, keys, log } = deps;
  const m = redis.multi();
  for (const d of dead) m.xadd(keys.deadLetter(batch.stream), '*', ...d.fields, 'reason', d.reason, 'source_id', d.id);
  if (batch.ids.length > 0) m.xack(batch.stream, GROUP, ...batch.ids);
  m.hdel(manifestKey(keys, batch.stream), batch.token);
  const res = await m.exec();
  const failed = res?.find(([e]) => e);
  if (!res || failed) throw failed?.[0] ?? new Error('ack transaction aborted');
  if (dead.length > 0)
    log.warn({ stream: batch.stream, dead: dead.map((d) => ({ id: d.id, reason: d.reason })) }, 'dead-lettered');
}
