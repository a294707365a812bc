/**
 * What crosses folders: the types and patterns that the tracker, the ledger and the admin API agree on.
 * Each is declared here once; a folder that produces or consumes one imports it from `infra/index.ts`.
 *
 * The numbered sections are the contracts that other comments cite as "contracts.ts §N".
 */

import { AppError, type ErrorCode } from './errors.ts';
import type { Redis, RedisKeys } from './redis.ts';

// §1 Identifiers ------------------------------------------------------------------------------------------------------

/** Any RFC 9562 UUID in canonical text form (case-insensitive): click ids, conversion ids, transfer ids. */
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A tracking link's code, the `:code` of `GET /c/:code`: 3–64 characters of `A-Z a-z 0-9 _ -`. */
export const LINK_CODE_RE = /^[A-Za-z0-9_-]{3,64}$/;

/** What {@link LINK_CODE_RE} accepts, in words (validation messages). */
export const LINK_CODE_RULE = 'must be 3-64 characters of A-Z a-z 0-9 _ -';

// §2 Link invalidation ------------------------------------------------------------------------------------------------

/**
 * Tells every tracker process to drop cached links: one link, every link of a campaign, or all. Published as JSON
 * on the Redis channel `keys.linkInvalidation` after the change is committed in Postgres.
 */
export type LinkInvalidation = { code: string } | { campaign_id: number } | { all: true };

/** Publishes a {@link LinkInvalidation} to every tracker process. Call it after the change is committed. */
export async function publishLinkInvalidation(redis: Redis, keys: RedisKeys, msg: LinkInvalidation): Promise<void> {
  await redis.publish(keys.linkInvalidation, JSON.stringify(msg));
}

// §3 Campaign terms ---------------------------------------------------------------------------------------------------

/** A campaign's life cycle: created `draft`, `active` while it takes traffic, `paused`, `archived` for good. */
export const CAMPAIGN_STATUSES = ['draft', 'active', 'paused', 'archived'] as const;
export type CampaignStatus = (typeof CAMPAIGN_STATUSES)[number];

/**
 * How a campaign pays: per valid click (CPC), per action (CPA), per lead (CPL), or a share of the posted sale
 * amount (RevShare, in basis points).
 */
export const PAYOUT_MODELS = ['CPC', 'CPA', 'CPL', 'RevShare'] as const;
export type PayoutModel = (typeof PAYOUT_MODELS)[number];

/** A price: fixed amounts in minor units, and shares of the sale in basis points (null: not a share). */
export interface PriceTerms {
  payout_amount: number;
  revenue_amount: number;
  payout_percent_bp: number | null;
  revenue_percent_bp: number | null;
}

/** A goal's own price fields; each one absent (or null) takes the campaign's. */
export type GoalPriceOverride = { [K in keyof PriceTerms]?: PriceTerms[K] | null };

/**
 * The terms a goal is priced on: the goal's fields over the campaign's, and whether they are a share of the sale
 * (`percent`). A goal's own fields decide its kind: percent fields make it RevShare-style, fixed amounts
 * CPA-style, even on a campaign of the other model; a goal with neither (or no goal) follows the campaign's model.
 * The pipeline prices with it and the admin API checks payout ≤ revenue with it, so both read goals the same way.
 */
export function goalTerms(
  campaign: PriceTerms & { payout_model: PayoutModel },
  goal?: GoalPriceOverride,
): { terms: PriceTerms; percent: boolean } {
  const goalPercent = goal?.payout_percent_bp != null || goal?.revenue_percent_bp != null;
  const goalFixed = goal?.payout_amount != null || goal?.revenue_amount != null;
  return {
    terms: {
      payout_amount: goal?.payout_amount ?? campaign.payout_amount,
      revenue_amount: goal?.revenue_amount ?? campaign.revenue_amount,
      payout_percent_bp: goal?.payout_percent_bp ?? campaign.payout_percent_bp,
      revenue_percent_bp: goal?.revenue_percent_bp ?? campaign.revenue_percent_bp,
    },
    percent: goalPercent || (!goalFixed && campaign.payout_model === 'RevShare'),
  };
}

// §4 Conversions: pipeline → ledger → postbacks ------------------------------------------------------------------------

/**
 * A conversion as stored in Postgres, handed to the sinks after its row exists. Money in minor units of
 * `currency` (ISO 4217); times in UTC ms.
 */
export interface PricedConversion {
  /** conversions.id (UUID): the idempotency key of the ledger posting and of the postbacks. */
  id: string;
  event_id: string;
  click_id: string;
  advertiser_id: number;
  affiliate_id: number;
  campaign_id: number;
  link_code: string;
  goal: string;
  status: 'pending' | 'approved';
  currency: string;
  /** Owed to the affiliate. */
  payout: number;
  /** Charged to the advertiser. */
  revenue: number;
  /** Posted sale amount, -1 when none. */
  amount: number;
  event_time_ms: number;
  click_time_ms: number;
  /** The campaign's hold before the payout becomes available, days. */
  hold_days: number;
  fraud_score: number;
  fraud_reasons: string[];
}

/**
 * What the ledger's and the deliveries' sinks need of a conversion: its id. They read the stored `conversions` row
 * (the source of truth) by id, so they accept any `ConversionRef`; the pipeline hands them a whole
 * {@link PricedConversion}.
 */
export type ConversionRef = Pick<PricedConversion, 'id'> & Partial<PricedConversion>;

/**
 * Receives every accepted conversion once its row is in Postgres. Must be idempotent by `c.id`: a batch replayed
 * after a crash hands the same conversion over again. The ledger's and the deliveries' sinks are
 * `ConversionSink<ConversionRef>`, which the pipeline's `ConversionSink` accepts.
 * A refusal that no retry can change is thrown as an AppError with a code of {@link PERMANENT_REFUSAL_CODES}
 * (the pipeline parks the batch at once); an outage as a retriable error (retried while it lasts).
 */
export interface ConversionSink<C extends ConversionRef = PricedConversion> {
  conversionRecorded(c: C): Promise<void>;
}

// §5 Clicks: pipeline → ledger (CPC) ----------------------------------------------------------------------------------

/** Valid clicks of one CPC campaign from one affiliate in a batch: what the ledger charges. */
export interface ClickCharge {
  campaign_id: number;
  affiliate_id: number;
  count: number;
}

/**
 * Receives each click batch's CPC charges once the batch is in ClickHouse. Must be idempotent by `batchKey`
 * (+ campaign and affiliate): a batch retried after a crash carries the same key. Refusals as for
 * {@link ConversionSink}: {@link PERMANENT_REFUSAL_CODES} park the batch.
 */
export interface ClickChargeSink {
  clicksCharged(charges: ClickCharge[], batchKey: string): Promise<void>;
}

// §6 Money -------------------------------------------------------------------------------------------------------------

/**
 * The largest money amount any single field may carry, in minor units: a posted sale amount, a payout, a revenue,
 * a budget, a daily cap, a deposit, a withdrawal, one leg of a ledger posting. 10^12 minor units is 10 billion in a
 * 2-decimal currency (USD, EUR), 1 trillion in a 0-decimal one (JPY), 1 billion in a 3-decimal one (KWD).
 * Why far below Number.MAX_SAFE_INTEGER (2^53 − 1 ≈ 9.007 × 10^15): amounts are JS numbers, so a sum of a few
 * capped amounts (a daily-cap check, a merged leg) stays an exact integer; running totals that grow without
 * bound (account balances, spend) are checked with BigInt by the ledger, which refuses a posting that would take
 * one past MAX_SAFE_INTEGER (AMOUNT_OUT_OF_RANGE). Ids are not money and keep MAX_SAFE_INTEGER.
 */
export const MAX_MINOR_UNITS = 10 ** 12;

// §7 Sink refusals: ledger → pipeline ---------------------------------------------------------------------------------

/**
 * AppError codes a sink throws for a refusal that is the same on every retry: bad input (VALIDATION_ERROR), an amount
 * or a running total past what the ledger holds (AMOUNT_OUT_OF_RANGE, see {@link MAX_MINOR_UNITS}), a key reused with
 * another body (IDEMPOTENCY_CONFLICT). The pipeline parks a batch whose sink throws one of them at the first attempt
 * instead of retrying it (a retry would stall the partition, and every tenant on it, for nothing).
 */
export const PERMANENT_REFUSAL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'VALIDATION_ERROR',
  'AMOUNT_OUT_OF_RANGE',
  'IDEMPOTENCY_CONFLICT',
]);

/** Whether `err` is an AppError whose code is one of {@link PERMANENT_REFUSAL_CODES} (decided by type and code only). */
export function isPermanentRefusal(err: unknown): err is AppError {
  return err instanceof AppError && PERMANENT_REFUSAL_CODES.has(err.code);
}

// §8 Targeting: admin API (stored lists) → tracker (enforced at the redirect) -------------------------------------

/**
 * Values of a campaign's `allowed_devices`: ua-parser-js device types (`desktop` when it names none), and the OS
 * shorthands `ios` / `android`; `other` is any other device type (smart TV, console, wearable, XR, embedded).
 */
export const DEVICE_TARGETS = ['desktop', 'mobile', 'tablet', 'ios', 'android', 'other'] as const;
export type DeviceTarget = (typeof DEVICE_TARGETS)[number];

/** Values of a campaign's `allowed_os`: OS families the tracker derives from ua-parser-js's OS name. */
export const OS_FAMILIES = ['windows', 'macos', 'linux', 'chromeos', 'ios', 'android', 'other'] as const;
export type OsFamily = (typeof OS_FAMILIES)[number];

/** Values of a campaign's `allowed_browsers`: browser families the tracker derives from ua-parser-js's browser name. */
export const BROWSER_FAMILIES = ['chrome', 'safari', 'firefox', 'edge', 'opera', 'samsung', 'other'] as const;
export type BrowserFamily = (typeof BROWSER_FAMILIES)[number];
