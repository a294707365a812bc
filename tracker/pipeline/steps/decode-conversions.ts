import { decodeEntries } from '../batches.ts';
import { parseConversion } from '../conversions.ts';
import type { Step } from '../step-runner.ts';
import type { ConversionCtx } from './context.ts';

/** Decodes a conversion batch; lines that do not decode are dead-lettered with their reason. */
export const decodeConversions: Step<ConversionCtx> = {
  name: 'decode',
  async run(ctx) {
    const d = decodeEntries(ctx.batch.entries, parseConversion);
    ctx.decoded = d.events;
    ctx.dead = d.dead;
  },
};
