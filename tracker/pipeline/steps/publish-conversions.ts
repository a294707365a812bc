import { publishEvent } from '../../../infra/index.ts';
import { publishLeads } from '../leads.ts';
import type { Step } from '../step-runner.ts';
import type { ConversionCtx } from './context.ts';

/**
 * Publishes a live event per stored conversion. At least once: a batch retried after a crash publishes
 * again with the same event id. A failure is logged, not retried (the data is already consistent).
 */
export const publishConversions: Step<ConversionCtx> = {
  name: 'publish_events',
  async run(ctx) {
    const { redis, keys, log } = ctx.deps;
    for (const { c, reason, affiliate } of ctx.created) {
      await publishEvent(redis, keys, {
        id: c.conversion_id,
        type: reason ? 'conversion.rejected' : 'conversion.created',
        created_at: new Date().toISOString(),
        user_ids: affiliate ? [c.advertiser_id, affiliate] : [c.advertiser_id],
        data: { conversion_id: c.conversion_id, event_id: c.event_id, reject_reason: reason, status: c.status },
      }).catch((err) => log.warn({ err: (err as Error).message }, 'live event not published'));
    }
    // Leads the ledger refused while settling (budget, caps, margin) are not leads any more.
    const refused = new Set(ctx.created.filter((e) => e.reason).map((e) => e.c.conversion_id));
    await publishLeads(
      redis,
      keys,
      ctx.leads.filter((l) => !refused.has(l.conversion_id)),
    ).catch((err) => log.warn({ err: (err as Error).message }, 'lead_signup event not published'));
  },
};
