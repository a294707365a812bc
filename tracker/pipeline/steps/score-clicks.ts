import type { Step } from '../step-runner.ts';
import type { ClickCtx } from './context.ts';

/**
 * Runs the batch's clicks and labels through the partition's fraud engine (one pool task): the state moves
 * from the partition's position to the batch's last id and returns a verdict per click. Done once per
 * batch: a retry of a later step keeps these verdicts, since the state has already taken the batch in.
 * @throws FraudStateMismatch when the engine's state is not at the partition's position (its worker was
 * replaced): the runner then recovers the partition from its checkpoint.
 */
export const scoreClicks: Step<ClickCtx> = {
  name: 'score',
  async run(ctx) {
    if (ctx.verdicts) return;
    const to = ctx.batch.ids[ctx.batch.ids.length - 1]!;
    ctx.verdicts = await ctx.deps.engine.process(ctx.batch.partition, ctx.records, { from: ctx.position.at, to });
    ctx.position.at = to;
    const m = ctx.deps.metrics;
    if (m && ctx.verdicts.length > 0) {
      for (const v of ctx.verdicts) m.fraudScore.observe(v.fraud_score);
      m.fraudModelVersion.set(ctx.verdicts[ctx.verdicts.length - 1]!.model_version);
    }
  },
};
