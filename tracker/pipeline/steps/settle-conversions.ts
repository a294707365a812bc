import type { Step } from '../step-runner.ts';
import type { ConversionCtx } from './context.ts';

/**
 * Money before ClickHouse: the ledger may still refuse an accepted conversion (budget exhausted, daily cap).
 * That refusal is a change of the stored row, so it reaches ClickHouse as the conversion's version 1 (queued by
 * the Postgres trigger, shipped by ../versions.ts); the rows inserted after this step stay version 0, the row as
 * recorded, so the two never count twice. The live events take the final status. A crash between this step and
 * the insert is safe: the sink is idempotent by conversion id and a replayed conversion rebuilds its version-0
 * row from Postgres. A conversion of a test-mode (sandbox) campaign is recorded (the
 * sandbox shows it, pending) but never reaches the sink: no ledger money, no postbacks.
 */
export const settleConversions: Step<ConversionCtx> = {
  name: 'settle',
  async run(ctx) {
    const { deps } = ctx;
    const live = ctx.accepted.filter((a) => ctx.terms.get(a.campaign_id)?.mode === 'live');
    for (const a of live) await deps.conversionSink?.conversionRecorded(a);
    if (live.length === 0) return;
    const ids = live.map((a) => a.id);
    const final = await deps.sql<{ id: string; status: string; reject_reason: string | null }[]>`
      select id, status, reject_reason from conversions where id = any(${ids}::uuid[])`;
    const byId = new Map(final.map((f) => [f.id.toLowerCase(), f]));
    for (const e of ctx.created) {
      const f = byId.get(e.c.conversion_id.toLowerCase());
      if (f?.status === 'rejected') e.reason = f.reject_reason ?? 'rejected';
    }
  },
};
