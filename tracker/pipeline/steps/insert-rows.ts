import { insertRows } from '../clicks.ts';
import type { Step } from '../step-runner.ts';
import type { ClickCtx, ConversionCtx } from './context.ts';

/** Inserts the batch's rows into `table` with the batch's deduplication token (a re-insert adds nothing). */
export function insertRowsStep(table: 'clicks' | 'conversions'): Step<ClickCtx | ConversionCtx> {
  return {
    name: `insert_${table}`,
    async run({ deps, batch, rows }) {
      await insertRows(deps.ch, table, rows, batch.token);
      await deps.testHooks?.afterInsert?.({ stream: batch.stream, ids: batch.ids, token: batch.token });
    },
  };
}
