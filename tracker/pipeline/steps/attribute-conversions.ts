import { loadStoredClicks } from '../clicks.ts';
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
    const clicks = await loadStoredClicks(
      deps.redis,
      deps.keys,
      decoded.map((e) => e.event.click_id),
    );
    let latestMissing: string | null = null;
    decoded.forEach((e, i) => {
      if (!clicks[i] && (latestMissing === null || compareIds(e.id, latestMissing) > 0)) latestMissing = e.id;
    });
    if (latestMissing !== null) {
      if (!(await clicksProcessedBefore(deps.redis, deps.keys, deps.config.STREAM_PARTITIONS, latestMissing))) {
        return { type: 'retry', delayMs: 100, reason: 'clicks still in flight' };
      }
      const missing = decoded.flatMap((_e, i) => (clicks[i] ? [] : [i]));
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
    ctx.terms = await deps.campaigns.get(clicks.map((c) => c?.campaign_id ?? 0));
  },
};
