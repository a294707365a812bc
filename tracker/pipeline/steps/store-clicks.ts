import { storeClicks } from '../clicks.ts';
import type { Step } from '../step-runner.ts';
import type { ClickCtx } from './context.ts';

/**
 * Writes the batch's click records for attribution. Before the ack: until then a conversion of these
 * clicks waits (their entries are still pending, see ./attribute-conversions.ts).
 */
export const storeClicksStep: Step<ClickCtx> = {
  name: 'store_clicks',
  async run(ctx) {
    const { deps } = ctx;
    await storeClicks(
      deps.redis,
      deps.keys,
      ctx.clicks,
      ctx.built.stored,
      ctx.terms,
      deps.config.ATTRIBUTION_WINDOW_DAYS,
    );
  },
};
