import { loadStoredClicks } from '../clicks.ts';
import {
  bindingKey,
  type CustomerBinding,
  customerEntriesProcessedBefore,
  loadBindings,
  viaCustomer,
} from '../recurring.ts';
import type { Step } from '../step-runner.ts';
import { clicksProcessedBefore, compareIds } from '../streams.ts';
import type { ConversionCtx } from './context.ts';

/**
 * Finds each conversion's click in the click store. A click not in the store may still be in flight on a
 * click stream, so a miss is decided only once the click consumers have processed everything written up
 * to the conversion's entry — and the store is read AGAIN after that check: a click consumer stores its
 * clicks before it acknowledges them, so a click acknowledged by the time the check passes is in the
 * store by then. (Trusting the first read instead was a check-then-act race: the click could be stored
 * between the read and the check, and its conversion was rejected `unknown_click`.)
 */
export const attributeConversions: Step<ConversionCtx> = {
  name: 'attribute',
  async run(ctx) {
    const { deps, decoded } = ctx;
    // A conversion attributed through its customer has no click of its own to find (./recurring.ts).
    const clicks = await loadStoredClicks(
      deps.redis,
      deps.keys,
      decoded.map((e) => (viaCustomer(e.event) ? '' : e.event.click_id)),
    );
    decoded.forEach((e, i) => {
      if (viaCustomer(e.event)) clicks[i] = null;
    });
    let latestMissing: string | null = null;
    decoded.forEach((e, i) => {
      if (!clicks[i] && !viaCustomer(e.event) && (latestMissing === null || compareIds(e.id, latestMissing) > 0))
        latestMissing = e.id;
    });
    if (latestMissing !== null) {
      if (!(await clicksProcessedBefore(deps.redis, deps.keys, deps.config.STREAM_PARTITIONS, latestMissing))) {
        return { type: 'retry', delayMs: 100, reason: 'clicks still in flight' };
      }
      const missing = decoded.flatMap((e, i) => (clicks[i] || viaCustomer(e.event) ? [] : [i]));
      const again = await loadStoredClicks(
        deps.redis,
        deps.keys,
        missing.map((i) => decoded[i]!.event.click_id),
      );
      missing.forEach((i, k) => {
        clicks[i] = again[k] ?? null;
      });
    }
    ctx.clicks = clicks;
    const bindings = await customerBindings(ctx);
    if (bindings === null) return { type: 'retry', delayMs: 100, reason: 'customer bindings still in flight' };
    ctx.bindings = bindings;
    ctx.terms = await deps.campaigns.get([
      ...clicks.map((c) => c?.campaign_id ?? 0),
      ...[...ctx.bindings.values()].map((b) => b.click.campaign_id),
    ]);
  },
};

/**
 * The bindings of the batch's customer-attributed conversions. A customer not bound yet may be bound by an earlier
 * entry of the same stream (the customer's partition) that another consumer is still recording: such a miss waits
 * (null: retry) until every entry before the batch is processed, then the bindings are read again. One bound by an
 * earlier conversion of this same batch is found by the record step, which records in stream order.
 */
async function customerBindings(ctx: ConversionCtx): Promise<Map<string, CustomerBinding> | null> {
  const { deps, decoded, batch } = ctx;
  const wanted = decoded.filter((e) => viaCustomer(e.event)).map((e) => e.event);
  if (wanted.length === 0) return new Map();
  const pairs = wanted.map((c) => ({ advertiser_id: c.advertiser_id, customer_id: c.customer_id! }));
  let bindings = await loadBindings(deps.sql, pairs);
  const latest = decoded
    .filter((e) => viaCustomer(e.event) && !bindings.has(bindingKey(e.event.advertiser_id, e.event.customer_id!)))
    .at(-1);
  if (latest === undefined) return bindings;
  if (!(await customerEntriesProcessedBefore(deps.redis, batch.stream, batch.ids[0]!))) return null;
  bindings = await loadBindings(deps.sql, pairs);
  return bindings;
}
