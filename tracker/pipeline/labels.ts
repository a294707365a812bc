/**
 * Conversion labels for the fraud model. An attributed conversion is a positive label for its click; the
 * conversion consumer appends it to the click partition streams (`clicks:{p}`) as an entry
 * `v 1 k l n N d <lines>`. The consumer that owns a partition therefore sees clicks and labels in one
 * ordered log: a replay of the stream rebuilds the same model, and a label can only ever follow its click
 * (a click's own conversion cannot leak into its score).
 *
 * Positives go to EVERY partition, not only the click's: each partition learns its own model (its state
 * must not depend on the order in which partitions are consumed), and conversions are rare (a few per
 * thousand clicks), so sharing them is cheap while it gives every partition's model all the positive
 * evidence. Negatives stay local: a partition knows which of its own clicks went unconverted. Measured on
 * the TalkingData demo sample (bench/fraud-eval.ts): with positives kept local, each added partition cost
 * the model several AUC points; shared, 1, 2 and 4 partitions score alike.
 */
import type { Redis, RedisKeys } from '../../infra/index.ts';
import { RetriableError } from '../../infra/index.ts';
import { entryLines, MalformedEventError } from '../events.ts';
import type { EngineLabel } from '../fraud/engine-pool.ts';
import { LABEL_ENTRY_KIND } from './batches.ts';

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
 * Appends labels to every click partition stream, one XADD each. At least once: a conversion
 * batch retried after a crash appends its labels again, and the partition's fraud engine counts a
 * click's positive label once. @throws RetriableError when Redis fails.
 */
export async function appendLabels(
  redis: Redis,
  keys: RedisKeys,
  partitions: number,
  labels: readonly EngineLabel[],
): Promise<void> {
  if (labels.length === 0) return;
  const lines = labels.map(encodeLabel);
  const d = lines.join('\n');
  try {
    await Promise.all(
      Array.from({ length: partitions }, (_, p) =>
        redis.xadd(keys.clicks(p), '*', 'v', '1', 'k', LABEL_ENTRY_KIND, 'n', String(lines.length), 'd', d),
      ),
    );
  } catch (err) {
    throw new RetriableError(`labels: ${(err as Error).message}`);
  }
}
