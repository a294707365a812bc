import { cpcCharges } from '../campaigns.ts';
import type { Step } from '../step-runner.ts';
import type { ClickCtx } from './context.ts';

/**
 * CPC money after the data, before the ack: a retried batch re-charges with the same key (the batch
 * token), which the ledger answers with the first result.
 */
export const chargeClicks: Step<ClickCtx> = {
  name: 'charge_clicks',
  async run(ctx) {
    const sink = ctx.deps.clickChargeSink;
    if (!sink) return;
    const charges = cpcCharges(ctx.rows, ctx.terms);
    if (charges.length > 0) await sink.clicksCharged(charges, ctx.batch.token);
  },
};
