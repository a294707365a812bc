/**
 * Leads and recurring commissions (README "Leads and recurring commissions"): the customer bindings that attribute a
 * conversion posted with a `customer_id` and no `click_id` (or a renewal) to the click of the customer's first
 * attributed conversion, and the pricing of a renewal by the campaign's recurring terms.
 */
import { type Redis, RetriableError, type Sql } from '../../infra/index.ts';
import { type ConversionEvent, RENEWAL_GOAL } from '../events.ts';

export { viaCustomer } from '../events.ts';

import type { FraudVerdict } from '../fraud/rules.ts';
import { type CampaignTerms, percentOf, priceConversion } from './campaigns.ts';
import type { StoredClick } from './clicks.ts';
import type { Attribution } from './conversions.ts';
import { CLOCK_SKEW_MS } from './conversions.ts';
import { GROUP } from './streams.ts';

/** A customer bound to a click: what `customer_bindings` holds (migration 00019). */
export interface CustomerBinding {
  advertiser_id: number;
  customer_id: string;
  click_id: string;
  /** The click record as the click store held it when the customer was bound. */
  click: StoredClick;
  /** Event time of the conversion that bound the customer (its first sale or lead), ms. */
  first_event_time_ms: number;
}

/** Key of a binding in the maps below. */
export function bindingKey(advertiserId: number, customerId: string): string {
  return `${advertiserId}\t${customerId}`;
}

/**
 * The bindings of the given (advertiser, customer) pairs, keyed by {@link bindingKey}; unknown pairs are absent.
 * @throws RetriableError when Postgres is down.
 */
export async function loadBindings(
  sql: Sql,
  pairs: ReadonlyArray<{ advertiser_id: number; customer_id: string }>,
): Promise<Map<string, CustomerBinding>> {
  const out = new Map<string, CustomerBinding>();
  if (pairs.length === 0) return out;
  let rows: Array<{ advertiser_id: number; customer_id: string; click_id: string; click: StoredClick; ms: number }>;
  try {
    rows = await sql`
      select b.advertiser_id, b.customer_id, b.click_id, b.click,
             (extract(epoch from b.first_event_time) * 1000)::int8 as ms
      from customer_bindings b
      join unnest(${pairs.map((p) => p.advertiser_id)}::int8[], ${pairs.map((p) => p.customer_id)}::text[])
        as k(advertiser_id, customer_id) using (advertiser_id, customer_id)`;
  } catch (err) {
    throw new RetriableError(`customer bindings: ${(err as Error).message}`);
  }
  for (const r of rows) {
    out.set(bindingKey(r.advertiser_id, r.customer_id), {
      advertiser_id: r.advertiser_id,
      customer_id: r.customer_id,
      click_id: r.click_id,
      click: r.click,
      first_event_time_ms: Number(r.ms),
    });
  }
  return out;
}

/**
 * Whether every entry of `stream` before `firstId` (the first entry of the batch being processed) has been processed:
 * none is still pending in the pipeline's group. The ingest puts every conversion carrying a customer reference on
 * the customer's partition, so the conversion that binds a customer sits before the customer's later conversions in
 * one stream; Redis delivers a stream's entries in order, so an earlier entry not pending is done, and the batch's
 * own earlier entries are recorded before (in order). Decides that a customer is really unknown rather than bound by
 * an entry another consumer is still recording. A batch waits only on entries before all of its own, so waits never
 * form a cycle (each waits on strictly earlier entries); a batch of entries that are not contiguous (taken over
 * after a crash) is therefore decided without waiting on entries between its own.
 */
export async function customerEntriesProcessedBefore(redis: Redis, stream: string, firstId: string): Promise<boolean> {
  const pending = (await redis.xpending(stream, GROUP, '-', `(${firstId}`, 1)) as unknown[];
  return pending.length === 0;
}

/** `ms` plus `months` calendar months in UTC; a day past the target month's end becomes its last day (Jan 31 + 1 → Feb 28/29). */
export function addMonthsUtc(ms: number, months: number): number {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() + months;
  const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  return Date.UTC(
    y,
    m,
    Math.min(d.getUTCDate(), last),
    d.getUTCHours(),
    d.getUTCMinutes(),
    d.getUTCSeconds(),
    d.getUTCMilliseconds(),
  );
}

/**
 * Attributes and prices a conversion through its customer's binding (pure). Rules, in order:
 * - no binding (or a browser conversion whose key's mode is not the campaign's) → `unknown_customer`;
 * - campaign gone, `draft` or `archived` → `campaign_inactive`;
 * - event time before the bound click (beyond the clock skew) → `event_before_click`;
 * - the advertiser posted status `rejected` → `advertiser_rejected`;
 * - a renewal: the campaign pays none (`recurring_percent_bp` null) → `recurring_not_offered`; at or past
 *   `recurring_months` calendar months after the customer's first conversion → `recurring_expired`; else payout =
 *   `recurring_percent_bp` of the amount (required, in the campaign's currency), revenue by the campaign's rules;
 * - another goal: priced as any conversion of the click.
 * The attribution window is not applied: it bounds the click → the customer's first conversion, which bound it.
 */
export function attributeCustomer(
  c: ConversionEvent,
  binding: CustomerBinding | null,
  campaign: CampaignTerms | null,
): Attribution {
  if (!binding || binding.advertiser_id !== c.advertiser_id)
    return { type: 'reject', reason: 'unknown_customer', click: null, campaign: null };
  const click = binding.click;
  if (c.mode !== undefined && campaign && campaign.mode !== c.mode)
    return { type: 'reject', reason: 'unknown_customer', click: null, campaign: null };
  if (!campaign || campaign.status === 'draft' || campaign.status === 'archived')
    return { type: 'reject', reason: 'campaign_inactive', click, campaign };
  if (c.event_time_ms < click.ts_ms - CLOCK_SKEW_MS)
    return { type: 'reject', reason: 'event_before_click', click, campaign };
  if (c.status === 'rejected') return { type: 'reject', reason: 'advertiser_rejected', click, campaign };
  const fraud: FraudVerdict = {
    fraud_score: click.fraud_score,
    fraud_reasons: click.fraud_reasons as FraudVerdict['fraud_reasons'],
  };
  const price =
    c.goal === RENEWAL_GOAL
      ? priceRenewal(c, binding, campaign)
      : priceConversion(campaign, c.goal, c.amount_minor, c.currency);
  if (price.type === 'reject') return { type: 'reject', reason: price.reason, click, campaign };
  return { type: 'ok', click, campaign, payout: price.payout, revenue: price.revenue, fraud };
}

/** Why a renewal is not paid, or its price (minor units of the campaign's currency). */
type RenewalPrice =
  | { type: 'ok'; payout: number; revenue: number }
  | {
      type: 'reject';
      reason:
        | 'recurring_not_offered'
        | 'recurring_expired'
        | 'amount_required'
        | 'currency_mismatch'
        | 'amount_out_of_range';
    };

/**
 * A renewal's price: the affiliate gets `recurring_percent_bp` of its amount, the advertiser is charged by the
 * campaign's revenue rules (a `renewal` goal override, else the campaign's); the ledger's margin guard refuses a
 * renewal paying more than it earns (`negative_margin`), as for any conversion.
 */
export function priceRenewal(c: ConversionEvent, binding: CustomerBinding, campaign: CampaignTerms): RenewalPrice {
  if (campaign.recurring_percent_bp === null) return { type: 'reject', reason: 'recurring_not_offered' };
  if (
    campaign.recurring_months !== null &&
    c.event_time_ms >= addMonthsUtc(binding.first_event_time_ms, campaign.recurring_months)
  )
    return { type: 'reject', reason: 'recurring_expired' };
  if (c.amount_minor < 0) return { type: 'reject', reason: 'amount_required' };
  if (c.currency !== campaign.currency) return { type: 'reject', reason: 'currency_mismatch' };
  const base = priceConversion(campaign, c.goal, c.amount_minor, c.currency);
  if (base.type === 'reject') return base;
  return { type: 'ok', payout: percentOf(c.amount_minor, campaign.recurring_percent_bp), revenue: base.revenue };
}
