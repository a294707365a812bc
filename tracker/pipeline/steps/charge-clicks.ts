import { cpcCharges } from '../campaigns.ts';
import type { Step } from '../step-runner.ts';
import type { ClickCtx } from './context.ts';

/**
 * CPC money after the data, before the ack: a retried batch re-charges with the same key (the batch
 * token), which the ledger answers with the first result. Clicks of test-mode (sandbox) campaigns are
 * stored like any other but never charged.
 */
export const chargeClicks: Step<ClickCtx> = {
  name: 'charge_clicks',
  async run(ctx) {
    const sink = ctx.deps.clickChargeSink;
    if (!sink) return;
    // Only clicks of live CPC campaigns can be charged; the rest need no row.
    const rows: Array<{ campaign_id: number; affiliate_id: number; is_invalid: number }> = [];
    ctx.clicks.forEach((c, i) => {
      const t = ctx.terms.get(c.campaign_id);
      if (t?.payout_model === 'CPC' && t.mode === 'live') {
        rows.push({ campaign_id: c.campaign_id, affiliate_id: c.affiliate_id, is_invalid: ctx.built.invalid[i]! });
      }
    });
    const charges = cpcCharges(rows, ctx.terms);
    if (charges.length > 0) await sink.clicksCharged(charges, ctx.batch.token);
  },
};
