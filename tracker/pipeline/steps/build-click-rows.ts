import { buildClicks } from '../clicks.ts';
import type { Step } from '../step-runner.ts';
import type { ClickCtx } from './context.ts';

/** Builds the ClickHouse body and the attribution records of the scored clicks (pure). */
export const buildClickRows: Step<ClickCtx> = {
  name: 'build_rows',
  async run(ctx) {
    ctx.built = buildClicks(ctx.clicks, ctx.verdicts ?? [], ctx.terms, ctx.defaults, ctx.clickEntries);
  },
};
