/**
 * Conversion caps (README "Caps"): daily (in the campaign's time zone) and total, per campaign and per affiliate on
 * it. Counted in `cap_conversion_counts` in the transaction that books the conversion, under the campaign's row lock
 * (lockCampaign), so the check and the count of one conversion are serialized against every other conversion of the
 * campaign: a cap is never passed, whatever the concurrency.
 */
import { CAP_THRESHOLDS, type CapThresholdData, capThreshold, type TransactionSql } from '../infra/index.ts';
import type { CampaignRow } from './accounts.ts';
import type { Effects } from './context.ts';

interface CapCounter {
  /** 0 = the whole campaign. */
  affiliate_id: number;
  /** 't' or the campaign-local day. */
  period: string;
  cap: number | null;
  n: number;
}

/** The conversion caps and counts a conversion of (campaign, affiliate) is checked against. */
export interface ConversionCaps {
  /** The campaign-local day (YYYY-MM-DD) of the booking. */
  day: string;
  counters: CapCounter[];
}

/** Reads the caps and counts for one conversion (one query). Caller holds the campaign's row lock. */
export async function conversionCaps(
  tx: TransactionSql,
  c: CampaignRow,
  affiliateId: number,
  now: Date,
): Promise<ConversionCaps> {
  const [r] = await tx<
    {
      day: string;
      c_daily: number | null;
      c_total: number | null;
      a_daily: number | null;
      a_total: number | null;
      c_daily_n: number | null;
      c_total_n: number | null;
      a_daily_n: number | null;
      a_total_n: number | null;
    }[]
  >`
    select d.day, c.conversion_cap_daily as c_daily, c.conversion_cap_total as c_total,
           ca.conversion_cap_daily as a_daily, ca.conversion_cap_total as a_total,
           (select n from cap_conversion_counts k where k.campaign_id = c.id and k.affiliate_id = 0
              and k.period = d.day) as c_daily_n,
           (select n from cap_conversion_counts k where k.campaign_id = c.id and k.affiliate_id = 0
              and k.period = 't') as c_total_n,
           (select n from cap_conversion_counts k where k.campaign_id = c.id and k.affiliate_id = ${affiliateId}
              and k.period = d.day) as a_daily_n,
           (select n from cap_conversion_counts k where k.campaign_id = c.id and k.affiliate_id = ${affiliateId}
              and k.period = 't') as a_total_n
    from campaigns c
    left join campaign_affiliates ca on ca.campaign_id = c.id and ca.affiliate_id = ${affiliateId}
    cross join lateral (select to_char(${now}::timestamptz at time zone c.time_zone, 'YYYY-MM-DD') as day) d
    where c.id = ${c.id}`;
  const day = r!.day;
  return {
    day,
    counters: [
      { affiliate_id: 0, period: day, cap: r!.c_daily, n: r!.c_daily_n ?? 0 },
      { affiliate_id: 0, period: 't', cap: r!.c_total, n: r!.c_total_n ?? 0 },
      { affiliate_id: affiliateId, period: day, cap: r!.a_daily, n: r!.a_daily_n ?? 0 },
      { affiliate_id: affiliateId, period: 't', cap: r!.a_total, n: r!.a_total_n ?? 0 },
    ],
  };
}

/** True when one more conversion would pass a conversion cap. */
export function capsFull(caps: ConversionCaps): boolean {
  return caps.counters.some((k) => k.cap !== null && k.n >= k.cap);
}

/**
 * Counts a booked conversion on its four counters (whether or not a cap is set, so a cap set later counts what was
 * booked before), in the caller's transaction. A count reaching a threshold queues `cap.threshold_reached` (exactly
 * once: counts move by one under the campaign lock), published after commit; a count reaching its cap queues a link
 * invalidation, so trackers reload `link_caps()` and send the campaign's (affiliate's) new clicks to the fallback.
 */
export async function countConversion(
  tx: TransactionSql,
  fx: Effects,
  c: CampaignRow,
  caps: ConversionCaps,
): Promise<void> {
  const rows = caps.counters.map((k) => [c.id, k.affiliate_id, k.period, 1]);
  const counted = await tx<{ affiliate_id: number; period: string; n: number }[]>`
    insert into cap_conversion_counts (campaign_id, affiliate_id, period, n) values ${tx(rows)}
    on conflict (campaign_id, affiliate_id, period) do update set n = cap_conversion_counts.n + 1
    returning affiliate_id, period, n`;
  const reached: CapThresholdData[] = [];
  for (const k of caps.counters) {
    if (k.cap === null) continue;
    const n = counted.find((r) => Number(r.affiliate_id) === k.affiliate_id && r.period === k.period)?.n ?? 0;
    if (n === k.cap) fx.invalidations.push(c.id);
    for (const pct of CAP_THRESHOLDS) {
      if (n !== capThreshold(k.cap, pct)) continue;
      reached.push({
        campaign_id: c.id,
        affiliate_id: k.affiliate_id === 0 ? null : k.affiliate_id,
        metric: 'conversions',
        period: k.period === 't' ? 'total' : 'daily',
        day: k.period === 't' ? null : k.period,
        threshold_percent: pct,
        cap: k.cap,
        count: n,
      });
    }
  }
  if (reached.length === 0) return;
  const approved = await tx<{ id: number }[]>`
    select affiliate_id as id from campaign_affiliates where campaign_id = ${c.id} and status = 'approved'`;
  for (const t of reached) {
    const ids =
      t.affiliate_id === null
        ? [c.advertiser_id, ...approved.map((a) => Number(a.id))]
        : [c.advertiser_id, t.affiliate_id];
    fx.events.push({ type: 'cap.threshold_reached', user_ids: [...new Set(ids)], data: { ...t } });
  }
}
