import { appendLabels } from '../labels.ts';
import type { Step } from '../step-runner.ts';
import type { ConversionCtx } from './context.ts';

/** Appends the batch's positive labels to their clicks' partition streams (see ../labels.ts). */
export const emitLabels: Step<ConversionCtx> = {
  name: 'emit_labels',
  async run(ctx) {
    if (ctx.labels.length === 0) return;
    await appendLabels(ctx.deps.redis, ctx.deps.keys, ctx.deps.config.STREAM_PARTITIONS, ctx.labels);
  },
};
