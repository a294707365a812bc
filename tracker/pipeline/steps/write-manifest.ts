import type { Step } from '../step-runner.ts';
import { manifestKey } from '../streams.ts';
import type { ClickCtx, ConversionCtx } from './context.ts';

/**
 * Writes the batch's manifest (token → entry ids) before anything is inserted, so a consumer taking the
 * batch over after a crash rebuilds exactly this batch and re-inserts it with the same token.
 */
export const writeManifest: Step<ClickCtx | ConversionCtx> = {
  name: 'write_manifest',
  async run({ deps, batch }) {
    if (batch.recovered) return;
    await deps.redis.hset(manifestKey(deps.keys, batch.stream), batch.token, batch.ids.join(' '));
    batch.recovered = true;
  },
};
