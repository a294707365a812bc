/**
 * Conversion versions → ClickHouse. A conversion's first ClickHouse row (version 0, sign 1) is the pipeline's,
 * built from the row as it was inserted into Postgres. Every later change of its status or amounts (approve,
 * reject, reverse, reconcile, hold release, the ledger refusing it) is a version that a Postgres trigger queues
 * in `conversion_versions` in the change's own transaction (migration 00011). The shipper here drains that
 * queue: per version one cancel row (sign −1, the previous state and version) and one row of the new state
 * (sign 1), so sign-weighted sums in ClickHouse follow Postgres.
 *
 * Exactly once per version: a batch of queued rows is claimed (`batch` = its smallest id) and committed before
 * its insert, whose deduplication token is {@link batchToken}; a batch's rows never change, so an
 * insert that timed out but landed, a retry, or two shippers shipping one stale batch add nothing. Only then is
 * the batch marked shipped. Rows land in any order (sums commute; "latest" is by version), so several
 * pipeline processes may ship at once.
 */
import type { ClickHouseClient, Logger, Sql } from '../../infra/index.ts';
import { type ClickRow, chTime, insertRows } from './clicks.ts';

/**
 * A Postgres `conversions` row as the ClickHouse rows need it: a query's row (times as Date) or the trigger's
 * `to_jsonb` snapshot (times as ISO strings). Money in minor units; `amount` null when none was posted.
 */
export interface ConversionSnapshot {
  id: string;
  event_id: string;
  click_id: string | null;
  advertiser_id: number;
  campaign_id: number | null;
  affiliate_id: number | null;
  link_code: string | null;
  goal: string;
  status: string;
  reject_reason: string | null;
  amount: number | null;
  currency: string | null;
  payout: number;
  revenue: number;
  event_time: string | Date;
  click_time: string | Date | null;
  fraud_score: number;
  sub1: string | null;
  sub2: string | null;
  sub3: string | null;
  sub4: string | null;
  sub5: string | null;
  country: string | null;
  device: string | null;
  /** The click's landing page (0: the campaign's destination_url); null or absent: recorded before it existed. */
  landing_id?: number | null;
  /** 's2s', 'browser' or 'pixel' (ConversionSource); absent: a version recorded before it existed (s2s). */
  source?: string;
  version: number;
}

/** The `conversions` columns a {@link ConversionSnapshot} query selects. */
export const SNAPSHOT_COLUMNS = `id, event_id, click_id, advertiser_id, campaign_id, affiliate_id, link_code, goal,
  status, reject_reason, amount, currency, payout, revenue, event_time, click_time, fraud_score,
  sub1, sub2, sub3, sub4, sub5, country, device, landing_id, source, version`;

const ms = (t: string | Date | null) => (t === null ? 0 : t instanceof Date ? t.getTime() : Date.parse(t));

/**
 * The ClickHouse `conversions` row of a snapshot: `sign` 1 for a state, −1 to cancel it. `clickId` overrides the
 * click id (the pipeline keeps the posted text when Postgres could not store it as a UUID).
 */
export function conversionRow(s: ConversionSnapshot, sign: 1 | -1, clickId?: string): ClickRow {
  return {
    conversion_id: s.id,
    event_id: s.event_id,
    click_id: clickId ?? s.click_id ?? '',
    advertiser_id: s.advertiser_id,
    campaign_id: s.campaign_id ?? 0,
    affiliate_id: s.affiliate_id ?? 0,
    link_code: s.link_code ?? '',
    goal: s.goal,
    status: s.status,
    reject_reason: s.reject_reason ?? '',
    amount: s.amount ?? -1,
    currency: s.currency ?? '',
    payout: s.payout,
    revenue: s.revenue,
    event_time: chTime(ms(s.event_time)),
    click_time: chTime(ms(s.click_time)),
    sub1: s.sub1 ?? '',
    sub2: s.sub2 ?? '',
    sub3: s.sub3 ?? '',
    sub4: s.sub4 ?? '',
    sub5: s.sub5 ?? '',
    country: s.country ?? '',
    device: s.device ?? '',
    landing_id: s.landing_id ?? 0,
    source: s.source ?? 's2s',
    fraud_score: s.fraud_score,
    version: s.version,
    sign,
  };
}

/**
 * The version-0 state of a conversion whose stored row is `current`: itself while it is at version 0, else the
 * `old` side of its version 1 (what the pipeline's first ClickHouse row must be on a replay after later changes).
 * @throws Error when version 1 is missing from the queue (it is never deleted).
 */
export async function versionZero(sql: Sql, current: ConversionSnapshot): Promise<ConversionSnapshot> {
  if (current.version === 0) return current;
  const [v] = await sql<{ old: ConversionSnapshot }[]>`
    select old from conversion_versions where conversion_id = ${current.id} and version = 1`;
  if (!v) throw new Error(`conversion ${current.id} is at version ${current.version} without a version 1`);
  return v.old;
}

/** What one shipping pass did. */
export interface ShipResult {
  /** Versions inserted into ClickHouse by this pass (each as two rows). */
  shipped: number;
  /** Batches this pass claimed or re-shipped. */
  batches: number;
}

/** What the shipper needs. */
export interface ShipperOptions {
  sql: Sql;
  ch: ClickHouseClient;
  /** Versions per batch (one ClickHouse insert of twice as many rows); default 1000. */
  batchSize?: number;
  /** A claimed batch not marked shipped this long after its claim is shipped again (its shipper died), ms. */
  staleMs?: number;
  /** At most this many batches per pass; default 20. */
  maxBatches?: number;
}

/**
 * Token of a batch's ClickHouse insert (distinct from the stream batches' tokens): the batch id and its first
 * version, so a batch id reused after Postgres was rebuilt under a ClickHouse that kept its deduplication log
 * is not taken for an old batch.
 */
export const batchToken = (batch: number, first: { id: string; version: number }) =>
  `conversion_versions:${batch}:${first.id}:${first.version}`;

/** Inserts one claimed batch (again, if it already landed: deduplicated) and marks it shipped. */
async function shipBatch(o: ShipperOptions, batch: number): Promise<number> {
  const versions = await o.sql<{ old: ConversionSnapshot; new: ConversionSnapshot }[]>`
    select old, new from conversion_versions where batch = ${batch} order by id`;
  if (versions.length === 0) return 0;
  const rows = versions.flatMap((v) => [conversionRow(v.old, -1), conversionRow(v.new, 1)]);
  await insertRows(o.ch, 'conversions', rows, batchToken(batch, versions[0]!.new));
  await o.sql`update conversion_versions set shipped_at = now() where batch = ${batch} and shipped_at is null`;
  return versions.length;
}

/** Claims the oldest unclaimed versions as one batch, committed. @returns its id, or null when none wait. */
async function claimBatch(o: ShipperOptions): Promise<number | null> {
  const [b] = await o.sql<{ batch: number }[]>`
    with picked as (
      select id from conversion_versions where batch is null order by id limit ${o.batchSize ?? 1000}
      for update skip locked)
    update conversion_versions v set batch = (select min(id) from picked), claimed_at = now()
    where v.id in (select id from picked)
    returning v.batch`;
  return b?.batch ?? null;
}

/**
 * One shipping pass: first the batches claimed more than `staleMs` ago and never marked shipped (plus `retry`,
 * this shipper's own failed ones), then new batches until none wait or `maxBatches` is reached.
 * @throws on a Postgres or ClickHouse failure (what was claimed stays claimed and is shipped again later).
 */
export async function shipConversionVersions(o: ShipperOptions, retry: Set<number> = new Set()): Promise<ShipResult> {
  const out: ShipResult = { shipped: 0, batches: 0 };
  const stale = await o.sql<{ batch: number }[]>`
    select distinct batch from conversion_versions
    where shipped_at is null and batch is not null
      and claimed_at < now() - make_interval(secs => ${(o.staleMs ?? 10_000) / 1000})
    order by batch limit 20`;
  for (const batch of new Set([...retry, ...stale.map((s) => s.batch)])) {
    out.shipped += await shipBatch(o, batch);
    out.batches++;
    retry.delete(batch);
  }
  for (let i = 0; i < (o.maxBatches ?? 20); i++) {
    const batch = await claimBatch(o);
    if (batch === null) break;
    try {
      out.shipped += await shipBatch(o, batch);
    } catch (err) {
      retry.add(batch);
      throw err;
    }
    out.batches++;
  }
  return out;
}

/**
 * Ships conversion versions every `pollMs` (sooner while a pass finds more) until `closing()`; failures are
 * logged and retried with a growing delay.
 * @param nap sleeps up to its argument, ms, returning early when the pipeline closes.
 */
export async function shipVersionsLoop(
  o: ShipperOptions & { log: Logger; pollMs: number; closing(): boolean; nap(ms: number): Promise<void> },
  counters: { versions_shipped: number },
): Promise<void> {
  const retry = new Set<number>();
  let failures = 0;
  while (!o.closing()) {
    try {
      const r = await shipConversionVersions(o, retry);
      counters.versions_shipped += r.shipped;
      failures = 0;
      if (r.batches >= (o.maxBatches ?? 20)) continue;
    } catch (err) {
      failures++;
      o.log.warn({ err: (err as Error).message, failures }, 'shipping conversion versions failed, retrying');
    }
    await o.nap(failures === 0 ? o.pollMs : Math.min(5_000, o.pollMs * 2 ** failures));
  }
}
