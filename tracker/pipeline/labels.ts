/**
 * Conversion labels for the fraud model. An attributed conversion is a positive label for its click; the
 * conversion consumer appends it to the click's OWN partition stream (`clicks:{p}`, p = the click_id's tag),
 * as an entry `v 1 k l n N d <lines>`. The consumer that owns the partition therefore sees a click and,
 * later, its label in one ordered log: a replay of the stream rebuilds the same model, and a label can only
 * ever follow its click (a click's own conversion cannot leak into its score).
 */
import type { Redis, RedisKeys } from '../../infra/index.ts';
import { RetriableError } from '../../infra/index.ts';
import { entryLines, MalformedEventError } from '../events.ts';
import type { EngineLabel } from '../fraud/engine-pool.ts';
import { LABEL_ENTRY_KIND } from './batches.ts';
import { idTag } from './clicks.ts';

/** One label as a line: click_id, click ts (ms), conversion ts (ms), the click's model features. */
export function encodeLabel(l: EngineLabel): string {
  return `${l.click_id}\t${l.click_ts_ms}\t${l.conversion_ts_ms}\t${l.features.replace(/[\t\n\r]/g, ' ')}`;
}

/** Decodes one label line. @throws MalformedEventError */
export function decodeLabel(line: string): EngineLabel {
  const p = line.split('\t');
  if (p.length !== 4) throw new MalformedEventError(`label: expected 4 fields, got ${p.length}`);
  const click_ts_ms = Number(p[1]);
  const conversion_ts_ms = Number(p[2]);
  if (!Number.isSafeInteger(click_ts_ms) || !Number.isSafeInteger(conversion_ts_ms)) {
    throw new MalformedEventError('label: times are not integers');
  }
  return { click_id: p[0]!, click_ts_ms, conversion_ts_ms, features: p[3]! };
}

/** The labels of a label entry. @throws MalformedEventError */
export function labelLines(fields: string[]): EngineLabel[] {
  return entryLines(fields).map(decodeLabel);
}

/**
 * Appends labels to their clicks' partition streams, one XADD per partition. At least once: a conversion
 * batch retried after a crash appends its labels again, and the partition's fraud engine counts a
 * click's positive label once. @throws RetriableError when Redis fails.
 */
export async function appendLabels(
  redis: Redis,
  keys: RedisKeys,
  partitions: number,
  labels: readonly EngineLabel[],
): Promise<void> {
  const byPartition = new Map<number, string[]>();
  for (const l of labels) {
    const p = idTag(l.click_id) % partitions;
    let lines = byPartition.get(p);
    if (!lines) {
      lines = [];
      byPartition.set(p, lines);
    }
    lines.push(encodeLabel(l));
  }
  try {
    await Promise.all(
      [...byPartition].map(([p, lines]) =>
        redis.xadd(
          keys.clicks(p),
          '*',
          'v',
          '1',
          'k',
          LABEL_ENTRY_KIND,
          'n',
          String(lines.length),
          'd',
          lines.join('\n'),
        ),
      ),
    );
  } catch (err) {
    throw new RetriableError(`labels: ${(err as Error).message}`);
  }
}
