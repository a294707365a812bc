import type { Redis, RedisKeys } from '../../../infra/index.ts';
import type { ClickEvent } from '../../events.ts';
import type { EngineRecord } from '../../fraud/engine-pool.ts';
import { loadStoredClicks, subIds } from '../clicks.ts';
import type { Step } from '../step-runner.ts';
import { compareIds } from '../streams.ts';
import type { ClickCtx } from './context.ts';

/**
 * Drops spooled copies of clicks that were already processed, and orders the engine's input. A click
 * counts once per click_id: an entry the ingest spooled after an XADD that may have landed (`r 1`) can
 * repeat clicks of an earlier entry, so each of its clicks is looked up in the click store, whose record
 * names the entry that stored it; a record from ANOTHER entry means this is the copy. Within a batch the
 * first occurrence wins. The same rule gives the same answer when a partition is replayed (the record then
 * names this very entry), so the replayed state matches. A copy always comes after the entry it repeats: the
 * ingest spools a group only once its XADD has failed, and replays the spool on the same connection, so Redis
 * ran the first XADD, if at all, before the copy's. @throws RetriableError when Redis fails.
 */
export async function dedupClicks(
  redis: Redis,
  keys: RedisKeys,
  ctx: Pick<ClickCtx, 'decoded' | 'labels'>,
): Promise<Pick<ClickCtx, 'clicks' | 'clickEntries' | 'records' | 'duplicates'>> {
  const repeats = ctx.decoded.filter((d) => d.mayRepeat);
  const stored = await loadStoredClicks(
    redis,
    keys,
    repeats.map((d) => d.event.click_id),
  );
  const copy = new Set<ClickEvent>();
  repeats.forEach((d, i) => {
    const s = stored[i];
    if (s && s.entry !== '' && s.entry !== d.id) copy.add(d.event);
  });
  const seen = new Set<string>();
  const clicks: ClickEvent[] = [];
  const clickEntries: string[] = [];
  let duplicates = 0;
  for (const d of ctx.decoded) {
    const id = d.event.click_id.toLowerCase();
    if (copy.has(d.event) || seen.has(id)) {
      duplicates++;
      continue;
    }
    seen.add(id);
    clicks.push(d.event);
    clickEntries.push(d.id);
  }
  // Records in stream order: an entry holds either clicks or labels, entries are in id order.
  const records: EngineRecord[] = [];
  let li = 0;
  for (let ci = 0; ci < clicks.length || li < ctx.labels.length; ) {
    const takeLabel =
      li < ctx.labels.length && (ci >= clicks.length || compareIds(ctx.labels[li]!.id, clickEntries[ci]!) < 0);
    if (takeLabel) records.push(ctx.labels[li++]!.record);
    else {
      const c = clicks[ci++]!;
      records.push({
        kind: 'click',
        click: {
          click_id: c.click_id,
          ts_ms: c.ts_ms,
          ip: c.ip,
          campaign_id: c.campaign_id,
          affiliate_id: c.affiliate_id,
          link_code: c.link_code,
          // The ingest already appended the link's default sub-ids to the query.
          sub: subIds(c.query),
          user_agent: c.user_agent,
          method: c.method,
          purpose: c.purpose,
          invalid_reason: c.invalid_reason,
        },
      });
    }
  }
  return { clicks, clickEntries, records, duplicates };
}

export const dedupClicksStep: Step<ClickCtx> = {
  name: 'dedup',
  async run(ctx) {
    Object.assign(ctx, await dedupClicks(ctx.deps.redis, ctx.deps.keys, ctx));
  },
};
