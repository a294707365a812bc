import { encodeConversion, entryFields, MalformedEventError } from '../../events.ts';
import { attribute, recordConversion } from '../conversions.ts';
import type { Step } from '../step-runner.ts';
import type { ConversionCtx } from './context.ts';

/**
 * Attributes and prices each conversion and records it once in Postgres (dedup by advertiser + event_id).
 * A conversion Postgres refuses for its values is dead-lettered; duplicates change nothing. Attributed
 * conversions become positive labels for their clicks.
 */
export const recordConversions: Step<ConversionCtx> = {
  name: 'record',
  async run(ctx) {
    const { deps } = ctx;
    ctx.rows = [];
    ctx.accepted = [];
    ctx.created = [];
    ctx.labels = [];
    ctx.duplicates = 0;
    ctx.rejected = 0;
    for (let i = 0; i < ctx.decoded.length; i++) {
      const c = ctx.decoded[i]!.event;
      const click = ctx.clicks[i] ?? null;
      const a = attribute(
        c,
        click,
        click ? (ctx.terms.get(click.campaign_id) ?? null) : null,
        deps.config.ATTRIBUTION_WINDOW_DAYS,
      );
      let r: Awaited<ReturnType<typeof recordConversion>>;
      try {
        r = await recordConversion(deps.sql, c, a);
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
      if (a.type === 'ok') {
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
