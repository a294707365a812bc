/**
 * Steps of the conversion stream: attribute each conversion to its click (through the Redis click
 * store, never ClickHouse, so a conversion posted right after its redirect is attributed), price
 * it with the campaign's rules, record it once in Postgres (dedup by advertiser + event_id), and
 * build its ClickHouse row.
 */
import type { PricedConversion, Sql } from '../../infra/index.ts';
import { RetriableError, UUID_RE } from '../../infra/index.ts';
import { type ConversionEvent, decodeConversion, MalformedEventError } from '../events.ts';
import { type FraudVerdict, scoreConversionTiming } from '../fraud/rules.ts';
import { type CampaignTerms, priceConversion } from './campaigns.ts';
import type { ClickRow, StoredClick } from './clicks.ts';
import { type ConversionSnapshot, conversionRow, SNAPSHOT_COLUMNS, versionZero } from './versions.ts';

const MAX_TS_MS = 7_258_118_400_000;

/** Why a conversion was rejected (stored in `conversions.reject_reason`). */
export type ConversionRejectReason =
  | 'unknown_click'
  | 'attribution_expired'
  | 'event_before_click'
  | 'invalid_click'
  | 'campaign_inactive'
  | 'amount_required'
  | 'currency_mismatch'
  | 'amount_out_of_range'
  | 'advertiser_rejected'
  // Leads and recurring commissions (./recurring.ts).
  | 'unknown_customer'
  | 'recurring_not_offered'
  | 'recurring_expired';

/** Decodes and validates one conversion line. @throws MalformedEventError */
export function parseConversion(line: string): ConversionEvent {
  const c = decodeConversion(line);
  if (!UUID_RE.test(c.conversion_id)) throw new MalformedEventError('conversion_id is not a UUID');
  if (c.event_id === '' || c.event_id.length > 255) throw new MalformedEventError('event_id empty or too long');
  if (c.advertiser_id <= 0) throw new MalformedEventError('advertiser_id missing');
  if (c.event_time_ms < 0 || c.event_time_ms > MAX_TS_MS) throw new MalformedEventError('event_time_ms out of range');
  if (c.received_ms < 0 || c.received_ms > MAX_TS_MS) throw new MalformedEventError('received_ms out of range');
  if (c.currency !== '' && !/^[A-Z]{3}$/.test(c.currency)) throw new MalformedEventError('bad currency');
  if (c.amount_minor < -1) throw new MalformedEventError('negative amount');
  if (c.click_id === '' && !c.customer_id) throw new MalformedEventError('neither click_id nor customer_id');
  return c;
}

/** Outcome of attribution + pricing for one conversion. */
export type Attribution =
  | {
      type: 'ok';
      click: StoredClick;
      campaign: CampaignTerms;
      payout: number;
      revenue: number;
      fraud: FraudVerdict;
    }
  | { type: 'reject'; reason: ConversionRejectReason; click: StoredClick | null; campaign: CampaignTerms | null };

/** How far an advertiser's event time may lie before its click (their clock vs ours), ms. */
export const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * Attributes and prices one conversion (pure). Rules, in order:
 * - no click, or a click of another advertiser → `unknown_click` (a foreign click is not revealed); so is a browser
 *   conversion whose publishable key's mode (`c.mode`) is not its click's campaign's (a `pk_test_` key and a live
 *   campaign, or the reverse);
 * - a click the ingest marked invalid (unknown link, disabled link, inactive campaign) → `invalid_click`;
 * - campaign gone, `draft` or `archived` → `campaign_inactive` (a `paused` campaign still pays
 *   for conversions of clicks it received while it ran);
 * - event time before the click (beyond {@link CLOCK_SKEW_MS} of advertiser clock skew) → `event_before_click`;
 * - event time − click time > the campaign's attribution window → `attribution_expired`;
 * - the advertiser posted status `rejected` → `advertiser_rejected`;
 * - pricing failures (`amount_required`, `currency_mismatch`, `amount_out_of_range`: past MAX_MINOR_UNITS).
 * Fraud-flagged clicks are attributed; their conversions carry the fraud score for review.
 */
export function attribute(
  c: ConversionEvent,
  click: StoredClick | null,
  campaign: CampaignTerms | null,
  defaultWindowDays: number,
): Attribution {
  if (!click || click.advertiser_id !== c.advertiser_id)
    return { type: 'reject', reason: 'unknown_click', click: null, campaign: null };
  if (c.mode !== undefined && campaign && campaign.mode !== c.mode)
    return { type: 'reject', reason: 'unknown_click', click: null, campaign: null };
  if (click.invalid_reason !== '') return { type: 'reject', reason: 'invalid_click', click, campaign };
  if (!campaign || campaign.status === 'draft' || campaign.status === 'archived') {
    return { type: 'reject', reason: 'campaign_inactive', click, campaign };
  }
  if (c.event_time_ms < click.ts_ms - CLOCK_SKEW_MS) {
    return { type: 'reject', reason: 'event_before_click', click, campaign };
  }
  const windowMs = (campaign.attribution_window_days || defaultWindowDays) * 86_400_000;
  if (c.event_time_ms - click.ts_ms > windowMs)
    return { type: 'reject', reason: 'attribution_expired', click, campaign };
  if (c.status === 'rejected') return { type: 'reject', reason: 'advertiser_rejected', click, campaign };
  const price = priceConversion(campaign, c.goal, c.amount_minor, c.currency);
  if (price.type === 'reject') return { type: 'reject', reason: price.reason, click, campaign };
  const fraud = scoreConversionTiming(
    { fraud_score: click.fraud_score, fraud_reasons: click.fraud_reasons as FraudVerdict['fraud_reasons'] },
    click.ts_ms,
    c.event_time_ms,
  );
  return { type: 'ok', click, campaign, payout: price.payout, revenue: price.revenue, fraud };
}

const ROW_COLUMNS = `${SNAPSHOT_COLUMNS}, fraud_reasons, (extract(epoch from click_time) * 1000)::int8 as click_ms`;

/** The result of recording one conversion. */
export interface Recorded {
  /** False when another conversion already holds (advertiser, event_id): nothing else happens for it. */
  stored: boolean;
  row: ClickRow | null;
  accepted: PricedConversion | null;
  rejectReason: ConversionRejectReason | null;
}

/**
 * Records a conversion in Postgres: `ON CONFLICT (advertiser_id, event_id) DO NOTHING`. When the
 * key is taken by this same conversion id (a retry after a crash), it counts as stored again so the
 * ClickHouse row, the sink call and the event are repeated (each idempotent); when it is taken by
 * another id, the post is a duplicate and changes nothing.
 * `bind`: the conversion binds its `customer_id` to its click (an attributed conversion posted with both): the
 * `customer_bindings` row is inserted in the same statement, only when the conversion row is (first binding wins),
 * so a customer is bound exactly once per event, crash or not.
 * @throws RetriableError on an outage; MalformedEventError when Postgres refuses the values.
 */
export async function recordConversion(sql: Sql, c: ConversionEvent, a: Attribution, bind = false): Promise<Recorded> {
  const click = a.click;
  const ok = a.type === 'ok';
  const status = ok ? c.status : 'rejected';
  const rejectReason = ok ? null : a.reason;
  const payout = ok ? a.payout : 0;
  const revenue = ok ? a.revenue : 0;
  const fraud = ok ? a.fraud : { fraud_score: click?.fraud_score ?? 0, fraud_reasons: click?.fraud_reasons ?? [] };
  const currency = a.campaign?.currency ?? (c.currency || null);
  const clickId = UUID_RE.test(c.click_id) ? c.click_id : null;
  const sub = click?.sub ?? ['', '', '', '', ''];
  // What Postgres holds is the truth: on a replay the ClickHouse row, the sink call and the event are
  // rebuilt from the stored row, even if the campaign's terms changed in between.
  type Row = ConversionSnapshot & { fraud_reasons: string[]; click_ms: number | null };
  let got: Row | undefined;
  const binding =
    bind && c.customer_id && click && a.campaign && clickId
      ? sql`, b as (
          insert into customer_bindings (advertiser_id, customer_id, click_id, campaign_id, affiliate_id, conversion_id,
            first_event_time, click)
          select ${c.advertiser_id}, ${c.customer_id}, ${clickId}, ${a.campaign.id}, ${click.affiliate_id},
            ${c.conversion_id}, ${new Date(c.event_time_ms)}, ${sql.json({ ...click, features: '' } as never)}
          where exists (select 1 from ins)
          on conflict (advertiser_id, customer_id) do nothing)`
      : sql``;
  try {
    const ins = await sql<Row[]>`
      with ins as (
      insert into conversions (id, advertiser_id, event_id, click_id, campaign_id, affiliate_id, link_code, goal,
        status, reject_reason, amount, currency, payout, revenue, event_time, click_time, fraud_score, fraud_reasons,
        sub1, sub2, sub3, sub4, sub5, country, device,
        landing_id, source, customer_id)
      values (${c.conversion_id}, ${c.advertiser_id}, ${c.event_id}, ${clickId}, ${a.campaign?.id ?? null},
        ${click && a.campaign ? click.affiliate_id : null}, ${click?.link_code ?? null}, ${c.goal}, ${status},
        ${rejectReason}, ${c.amount_minor >= 0 ? c.amount_minor : null}, ${currency}, ${payout}, ${revenue},
        ${new Date(c.event_time_ms)}, ${click ? new Date(click.ts_ms) : null}, ${fraud.fraud_score},
        ${fraud.fraud_reasons}, ${sub[0] || null}, ${sub[1] || null}, ${sub[2] || null}, ${sub[3] || null},
        ${sub[4] || null}, ${click?.country || null}, ${click?.device || null},
        ${click?.landing_id ?? null}, ${c.source ?? 's2s'}, ${c.customer_id ?? null})
      on conflict (advertiser_id, event_id) do nothing
      returning ${sql.unsafe(ROW_COLUMNS)})${binding}
      select * from ins`;
    got = ins[0];
    if (!got) {
      const ex = await sql<Row[]>`
        select ${sql.unsafe(ROW_COLUMNS)} from conversions
        where advertiser_id = ${c.advertiser_id} and event_id = ${c.event_id}`;
      got = ex[0];
    }
  } catch (err) {
    // SQLSTATE class 22 (data exception) / 23 (integrity constraint): this conversion can never be
    // stored, so it is dead-lettered rather than retried forever. Anything else is an outage.
    const code = String((err as { code?: unknown }).code ?? '');
    if (/^2[23]/.test(code)) throw new MalformedEventError(`conversion refused by Postgres (${code})`);
    throw new RetriableError(`conversion insert: ${(err as Error).message}`);
  }
  if (!got || got.id.toLowerCase() !== c.conversion_id.toLowerCase()) {
    return { stored: false, row: null, accepted: null, rejectReason: null };
  }
  // The pipeline's ClickHouse row is version 0, the row as inserted; every later change ships as a version
  // (./versions.ts). On a replay after such changes, version 0 comes from the queued version 1.
  let first: ConversionSnapshot;
  try {
    first = await versionZero(sql, got);
  } catch (err) {
    throw new RetriableError(`conversion version 0: ${(err as Error).message}`);
  }
  const row = conversionRow(first, 1, got.click_id === null ? c.click_id : undefined);
  const clickMs = got.click_ms ?? 0;
  const acceptedStatus = got.status === 'pending' || got.status === 'approved' ? got.status : null;
  const accepted: PricedConversion | null =
    acceptedStatus && got.campaign_id !== null && got.affiliate_id !== null
      ? {
          id: c.conversion_id,
          event_id: c.event_id,
          click_id: c.click_id,
          advertiser_id: c.advertiser_id,
          affiliate_id: got.affiliate_id,
          campaign_id: got.campaign_id,
          link_code: got.link_code ?? '',
          goal: c.goal,
          status: acceptedStatus,
          currency: got.currency ?? '',
          payout: got.payout,
          revenue: got.revenue,
          amount: c.amount_minor,
          event_time_ms: c.event_time_ms,
          click_time_ms: clickMs,
          hold_days: a.campaign?.hold_days ?? 0,
          fraud_score: got.fraud_score,
          fraud_reasons: got.fraud_reasons,
        }
      : null;
  return { stored: true, row, accepted, rejectReason: (got.reject_reason as ConversionRejectReason | null) ?? null };
}
