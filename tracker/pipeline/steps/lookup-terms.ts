import type { Step } from '../step-runner.ts';
import type { ClickCtx } from './context.ts';

/** Reads the campaigns' terms and the links' default sub-ids of the batch's clicks (cached in-process). */
export const lookupTerms: Step<ClickCtx> = {
  name: 'lookup_terms',
  async run(ctx) {
    const [terms, defaults] = await Promise.all([
      ctx.deps.campaigns.get(ctx.clicks.map((c) => c.campaign_id)),
      ctx.deps.links.get(ctx.clicks.map((c) => c.link_code)),
    ]);
    ctx.terms = terms;
    ctx.defaults = defaults;
  },
};
