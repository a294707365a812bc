import { geoIp } from '../../geo/geoip.ts';
import { buildClicks } from '../clicks.ts';
import type { Step } from '../step-runner.ts';
import type { ClickCtx } from './context.ts';

/** Builds the ClickHouse body and the attribution records of the scored clicks, with each click's country (GeoIP). */
export const buildClickRows: Step<ClickCtx> = {
  name: 'build_rows',
  async run(ctx) {
    // The database is loaded by the first batch (or the tracker of this process) and shared afterwards.
    const geo = geoIp(ctx.deps.config.GEOIP_MMDB_PATH);
    ctx.built = buildClicks(ctx.clicks, ctx.verdicts ?? [], ctx.terms, ctx.defaults, ctx.clickEntries, geo);
  },
};
