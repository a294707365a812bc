import type { ClickEvent } from '../../events.ts';
import { storeClicks } from '../clicks.ts';
import type { Step } from '../step-runner.ts';
import type { ClickCtx } from './context.ts';

/**
 * Whether a click can ever be attributed a conversion: only a click the ingest recorded as valid. A click on an
 * unknown link, a disabled link or an inactive campaign (`invalid_reason` ≠ '') is rejected `invalid_click` by
 * `attribute` (../conversions.ts) whatever happens later, so its record would only hold Redis memory for the whole
 * attribution window — and such clicks are anonymous and free to send (random codes with 255-character sub-ids).
 */
export function mayConvert(c: ClickEvent): boolean {
  return c.invalid_reason === '';
}

/**
 * Writes the batch's click records for attribution, for the clicks that may convert ({@link mayConvert}); the others
 * are still counted in ClickHouse (build_rows/insert) but store nothing in Redis. Before the ack: until then a
 * conversion of these clicks waits (their entries are still pending, see ./attribute-conversions.ts). A conversion
 * naming a click that was not stored is rejected `unknown_click` (rather than `invalid_click`) once it has waited.
 * Trade-off: the de-duplication of spooled copies (./dedup-clicks.ts) finds no record for such a click, so in the
 * rare stall case a repeated never-convertible click may be counted twice in ClickHouse, as an invalid click.
 */
export const storeClicksStep: Step<ClickCtx> = {
  name: 'store_clicks',
  async run(ctx) {
    const { deps } = ctx;
    const clicks: ClickEvent[] = [];
    const stored: string[] = [];
    for (let i = 0; i < ctx.clicks.length; i++) {
      const c = ctx.clicks[i]!;
      if (!mayConvert(c)) continue;
      clicks.push(c);
      stored.push(ctx.built.stored[i]!);
    }
    await storeClicks(deps.redis, deps.keys, clicks, stored, ctx.terms, deps.config.ATTRIBUTION_WINDOW_DAYS);
  },
};
