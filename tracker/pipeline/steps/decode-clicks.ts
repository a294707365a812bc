import { entryMayRepeat } from '../../events.ts';
import type { EngineRecord } from '../../fraud/engine-pool.ts';
import { type DeadLetter, decodeEntries, isLabelEntry } from '../batches.ts';
import { parseClick } from '../clicks.ts';
import { labelLines } from '../labels.ts';
import type { Step } from '../step-runner.ts';
import type { RawEntry } from '../streams.ts';
import type { ClickCtx } from './context.ts';

/**
 * Splits a click batch into clicks and label entries (in stream order) and dead-letters what does not
 * decode. Pure: the replay of a partition decodes its entries with the same function.
 */
export function decodeClickEntries(entries: readonly RawEntry[]): Pick<ClickCtx, 'decoded' | 'labels' | 'dead'> {
  const decoded: ClickCtx['decoded'] = [];
  const labels: ClickCtx['labels'] = [];
  const dead: DeadLetter[] = [];
  for (const entry of entries) {
    const [id, fields] = entry;
    if (isLabelEntry(fields)) {
      try {
        for (const label of labelLines(fields)) labels.push({ id, record: { kind: 'label', label } as EngineRecord });
      } catch (err) {
        dead.push({ id, fields, reason: (err as Error).message });
      }
      continue;
    }
    const d = decodeEntries([entry], parseClick);
    const mayRepeat = entryMayRepeat(fields);
    for (const e of d.events) decoded.push({ ...e, mayRepeat });
    dead.push(...d.dead);
  }
  return { decoded, labels, dead };
}

export const decodeClicks: Step<ClickCtx> = {
  name: 'decode',
  async run(ctx) {
    Object.assign(ctx, decodeClickEntries(ctx.batch.entries));
  },
};
