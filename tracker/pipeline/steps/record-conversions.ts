import { encodeConversion, entryFields, MalformedEventError } from '../../events.ts';
import { type Attribution, attribute, recordConversion } from '../conversions.ts';
import { isLead } from '../leads.ts';
import { attributeCustomer, bindingKey, loadBindings, viaCustomer } from '../recurring.ts';
import type { Step } from '../step-runner.ts';
import type { ConversionCtx } from './context.ts';

/**
 * Attributes and prices each conversion and records it once in Postgres (dedup by advertiser + event_id).
 * A conversion Postgres refuses for its values is dead-lettered; duplicates change nothing. Attributed
 * conversions become positive labels for their clicks. Conversions are recorded in stream order, so one that
 * binds a customer (click_id + customer_id) is bound before a later one of the batch is attributed through it.
 */
export const recordConversions: Step<ConversionCtx> = {
  name: 'record',
  async run(ctx) {
    const { deps } = ctx;
    ctx.rows = [];
    ctx.accepted = [];
    ctx.created = [];
    ctx.labels = [];
    ctx.leads = [];
    ctx.duplicates = 0;
    ctx.rejected = 0;
    for (let i = 0; i < ctx.decoded.length; i++) {
      let c = ctx.decoded[i]!.event;
      const customer = viaCustomer(c);
      let a: Attribution;
      if (customer) {
        const binding = await bindingOf(ctx, c.advertiser_id, c.customer_id!);
        const terms = binding ? await termsOf(ctx, binding.click.campaign_id) : null;
        a = attributeCustomer(c, binding, terms);
        // Recorded against the bound click (its id, sub-ids, country and landing page, as the click's own
        // conversions), or none: a click_id posted with a renewal is not what attributes it.
        c = { ...c, click_id: binding && a.click ? binding.click_id : '' };
      } else {
        const click = ctx.clicks[i] ?? null;
        a = attribute(
          c,
          click,
          click ? (ctx.terms.get(click.campaign_id) ?? null) : null,
          deps.config.ATTRIBUTION_WINDOW_DAYS,
        );
      }
      let r: Awaited<ReturnType<typeof recordConversion>>;
      try {
        r = await recordConversion(deps.sql, c, a, !customer && a.type === 'ok');
      } catch (err) {
        if (!(err instanceof MalformedEventError)) throw err;
        ctx.dead.push({ id: ctx.decoded[i]!.id, fields: entryFields([encodeConversion(c)]), reason: err.message });
        continue;
      }
      if (!r.stored) {
        ctx.duplicates++;
        continue;
      }
      ctx.rows.push(r.row!);
      if (r.accepted) ctx.accepted.push(r.accepted);
      if (r.rejectReason) ctx.rejected++;
      ctx.created.push({ c, reason: r.rejectReason, affiliate: a.type === 'ok' ? a.click.affiliate_id : null });
      if (r.accepted && a.type === 'ok' && isLead(c, a.campaign)) {
        ctx.leads.push({
          conversion_id: c.conversion_id,
          event_id: c.event_id,
          advertiser_id: c.advertiser_id,
          affiliate_id: r.accepted.affiliate_id,
          campaign_id: r.accepted.campaign_id,
          click_id: c.click_id,
          customer_id: c.customer_id ?? '',
          event_time_ms: c.event_time_ms,
          fraud_score: r.accepted.fraud_score,
        });
      }
      // A customer's later conversion says nothing new about its click's traffic (its first one was the label).
      if (a.type === 'ok' && !customer) {
        ctx.labels.push({
          click_id: c.click_id,
          click_ts_ms: a.click.ts_ms,
          conversion_ts_ms: c.event_time_ms,
          features: a.click.features,
        });
      }
    }
  },
};

/** The customer's binding: from the attribute step, else read again (an earlier conversion of this batch may have made it). */
async function bindingOf(ctx: ConversionCtx, advertiserId: number, customerId: string) {
  const key = bindingKey(advertiserId, customerId);
  const known = ctx.bindings.get(key);
  if (known) return known;
  const got = (await loadBindings(ctx.deps.sql, [{ advertiser_id: advertiserId, customer_id: customerId }])).get(key);
  if (got) ctx.bindings.set(key, got);
  return got ?? null;
}

async function termsOf(ctx: ConversionCtx, campaignId: number) {
  const known = ctx.terms.get(campaignId);
  if (known) return known;
  const got = (await ctx.deps.campaigns.get([campaignId])).get(campaignId) ?? null;
  if (got) ctx.terms.set(campaignId, got);
  return got;
}
