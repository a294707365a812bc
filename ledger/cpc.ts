/**
 * CPC click charges: a campaign pays `revenue_amount` per valid click, the affiliate earns `payout_amount`
 * per click straight into `approved` (clicks have no hold period).
 */
import { z } from 'zod';
import { MAX_MINOR_UNITS, parseWith } from '../infra/index.ts';
import { affiliate, chargeLegs, chargeSource, lockCampaign, marginGuard } from './accounts.ts';
import { minorFromText } from './amounts.ts';
import { addSpend, pauseIfExhausted, spentOn } from './budget.ts';
import { id, idemKey, type LedgerContext } from './context.ts';
import { accountKey, post, postingByKey } from './postings.ts';

/** The click-charge methods of the ledger. */
export function cpcFlows({ run, today }: LedgerContext) {
  return {
    /**
     * Charges a CPC campaign for `count` valid clicks (fraud-flagged ones excluded by the caller), crediting
     * the affiliate's `approved` with payout_amount per click. Charges only as many clicks as the budget and
     * daily cap allow and pauses the campaign when its budget is exhausted. Idempotent by key (the replay
     * returns the first result). Amounts are minor units. A campaign paying more per click than it charges
     * (payout_amount > revenue_amount) is charged nothing (`meta.refused: 'negative_margin'`) unless it carries
     * an admin's `margin_override`, which the posting's meta then records.
     * @throws VALIDATION_ERROR, NOT_FOUND (campaign), IDEMPOTENCY_CONFLICT (same key, other count/affiliate).
     */
    async chargeClicks(
      campaignId: number,
      count: number,
      idempotencyKey: string,
      opts: { affiliateId?: number } = {},
    ): Promise<{ posting_id: string; charged_clicks: number; revenue: number; payout: number; replayed: boolean }> {
      parseWith(id, campaignId);
      parseWith(z.number().int().min(0).max(1e9), count);
      parseWith(idemKey, idempotencyKey);
      const key = `clicks:${campaignId}:${idempotencyKey}`;
      return run(async (tx, fx) => {
        const done = await postingByKey(tx, key);
        const hashBody = { campaignId, count, affiliateId: opts.affiliateId ?? null };
        if (done) {
          const p = await post(tx, { idempotencyKey: key, type: 'click_charge', legs: [], hashBody });
          return {
            posting_id: p.id,
            ...(p.meta as { charged_clicks: number; revenue: number; payout: number }),
            replayed: true,
          };
        }
        const c = await lockCampaign(tx, campaignId);
        const cpc = c.revenue_amount;
        const ppc = opts.affiliateId ? c.payout_amount : 0;
        let n = c.status === 'active' ? count : 0;
        // The platform never pays more per click than it earns without an admin's override.
        const refused = ppc > cpc && !c.margin_override;
        if (refused) n = 0;
        const guard = marginGuard(c.advertiser_id, c.currency, ppc > cpc ? c.margin_override : null);
        if (cpc > 0 && n > 0) {
          const day = today();
          const [src] = await tx<{ room: string }[]>`
            select (balance - pending_debits)::text as room from ledger_accounts
            where key = ${accountKey(chargeSource(c))} for update`;
          const room = minorFromText(src?.room ?? '0', `funds of campaign ${c.id}`)!;
          n = Math.min(n, Math.floor(room / cpc));
          if (c.daily_cap !== null) n = Math.min(n, Math.floor((c.daily_cap - (await spentOn(tx, c.id, day))) / cpc));
          n = Math.max(n, 0);
        }
        // One posting's legs stay within MAX_MINOR_UNITS (infra/contracts.ts §6): clicks past it in one batch are
        // left uncharged, like clicks past the budget, rather than refusing (and parking) the whole click batch.
        if (cpc > 0) n = Math.min(n, Math.floor(MAX_MINOR_UNITS / cpc));
        if (ppc > 0) n = Math.min(n, Math.floor(MAX_MINOR_UNITS / ppc));
        const revenue = n * cpc;
        const payout = n * ppc;
        const day = today();
        const p = await post(tx, {
          idempotencyKey: key,
          type: 'click_charge',
          legs:
            revenue > 0 || payout > 0
              ? chargeLegs(
                  chargeSource(c),
                  opts.affiliateId ? affiliate(opts.affiliateId, 'approved', c.currency) : null,
                  c.advertiser_id,
                  c.currency,
                  revenue,
                  payout,
                )
              : [],
          hashBody,
          mustCover: guard.mustCover,
          advertiserId: c.advertiser_id,
          affiliateId: opts.affiliateId ?? null,
          campaignId: c.id,
          meta: {
            charged_clicks: n,
            requested_clicks: count,
            revenue,
            payout,
            day,
            ...(refused ? { refused: 'negative_margin' } : {}),
            ...guard.meta,
          },
        });
        // A concurrent charge of the same key committed while this one waited for the campaign's lock: its posting
        // stands, and its spend is booked already.
        if (p.replayed) {
          return {
            posting_id: p.id,
            ...(p.meta as { charged_clicks: number; revenue: number; payout: number }),
            replayed: true,
          };
        }
        await addSpend(tx, c, day, revenue);
        if (n < count && c.status === 'active') await pauseIfExhausted(tx, fx, c, cpc);
        if (revenue > 0 || payout > 0) {
          fx.wallet([c.advertiser_id, opts.affiliateId], {
            reason: 'click_charge',
            campaign_id: c.id,
            revenue,
            payout,
          });
        }
        return { posting_id: p.id, charged_clicks: n, revenue, payout, replayed: false };
      });
    },
  };
}
