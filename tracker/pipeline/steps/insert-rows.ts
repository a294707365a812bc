import { CLICK_COLUMNS, insertRows, insertTsv } from '../clicks.ts';
import type { Step } from '../step-runner.ts';
import type { ClickCtx, ConversionCtx } from './context.ts';

/** Inserts the click batch's body with the batch's deduplication token (a re-insert adds nothing). */
export const insertClicks: Step<ClickCtx> = {
  name: 'insert_clicks',
  async run({ deps, batch, built, clicks }) {
    await insertTsv(deps.ch, 'clicks', CLICK_COLUMNS, built.tsv, batch.token);
    const m = deps.metrics;
    if (m) {
      m.rowsInserted('clicks', clicks.length);
      const now = Date.now();
      for (const c of clicks) m.clickToQueryable.observe(Math.max(0, now - c.received_ms) / 1000);
    }
    await deps.testHooks?.afterInsert?.({ stream: batch.stream, ids: batch.ids, token: batch.token });
  },
};

/** Inserts the conversion batch's rows with the batch's deduplication token (a re-insert adds nothing). */
export const insertConversions: Step<ConversionCtx> = {
  name: 'insert_conversions',
  async run({ deps, batch, rows }) {
    await insertRows(deps.ch, 'conversions', rows, batch.token);
    deps.metrics?.rowsInserted('conversions', rows.length);
    await deps.testHooks?.afterInsert?.({ stream: batch.stream, ids: batch.ids, token: batch.token });
  },
};
