/**
 * The accounts money moves between, the rows the flows lock, and the shapes they share: who owns what
 * (advertiser, affiliate, platform, external), the legs of a charge, and the transfer view the wallet routes show.
 */
import { AppError, type CampaignStatus, type TransactionSql, UUID_RE, validationError } from '../infra/index.ts';
import type { AccountRef, Leg, Posting, PostingType } from './postings.ts';

/** Authorization scope: when `advertiserId` is set, objects of other advertisers are NOT_FOUND. */
export interface Scope {
  advertiserId?: number;
}

/** A transfer as the wallet routes show it. */
export interface TransferView {
  id: string;
  type: PostingType;
  status: 'posted' | 'pending' | 'voided';
  amount: number;
  currency: string;
  created_at: Date;
  replayed: boolean;
  meta: Record<string, unknown>;
}

export interface CampaignRow {
  id: number;
  advertiser_id: number;
  payout_model: string;
  currency: string;
  payout_amount: number;
  revenue_amount: number;
  payout_percent_bp: number | null;
  revenue_percent_bp: number | null;
  budget: number | null;
  daily_cap: number | null;
  hold_days: number;
  status: CampaignStatus;
  /** An admin's permission for this campaign to pay more than it earns (migration 00006); null = none. */
  margin_override: MarginOverride | null;
}

/** An admin's recorded permission for a posting to take the platform's margin below zero. */
export interface MarginOverride {
  /** The admin's users.id. */
  by: number;
  reason: string;
}

export interface ConversionRow {
  id: string;
  advertiser_id: number;
  event_id: string;
  campaign_id: number | null;
  affiliate_id: number | null;
  status: 'pending' | 'approved' | 'rejected' | 'reversed';
  amount: number | null;
  payout: number;
  revenue: number;
  created_at: Date;
}

export const advertiser = (owner: number, purpose: 'available' | 'spent', cur: string): AccountRef => ({
  owner_type: 'advertiser',
  owner_id: owner,
  purpose,
  currency: cur,
});
export const reservedOf = (c: Pick<CampaignRow, 'id' | 'advertiser_id' | 'currency'>): AccountRef => ({
  owner_type: 'advertiser',
  owner_id: c.advertiser_id,
  purpose: 'reserved',
  currency: c.currency,
  campaign_id: c.id,
});
export const affiliate = (owner: number, purpose: 'pending' | 'approved' | 'paid', cur: string): AccountRef => ({
  owner_type: 'affiliate',
  owner_id: owner,
  purpose,
  currency: cur,
});
/**
 * Platform accounts are split into one sub-account per advertiser (owner_id = the advertiser whose spend it
 * records) so that conversions of different advertisers never queue on one hot row; totals are sums.
 */
const platform = (purpose: 'revenue' | 'spend_offset', cur: string, advertiserId: number): AccountRef => ({
  owner_type: 'platform',
  owner_id: advertiserId,
  purpose,
  currency: cur,
});
export const external = (purpose: 'deposits' | 'withdrawals', cur: string): AccountRef => ({
  owner_type: 'external',
  owner_id: 0,
  purpose,
  currency: cur,
});

/** Where a charge for this campaign is taken from: its reservation, or `available` when it has no budget. */
export function chargeSource(c: CampaignRow): AccountRef {
  return c.budget === null ? advertiser(c.advertiser_id, 'available', c.currency) : reservedOf(c);
}

/**
 * The legs of charging an advertiser `revenue` for a conversion/click that pays an affiliate `payout`:
 * the money leaves `source` (the campaign reservation, or `available` for unbudgeted campaigns), the
 * affiliate's share goes to `payoutTo`, the margin to platform revenue; `spent` records the advertiser's
 * cumulative spend against the platform's `spend_offset` (a memo pair, so "spent" is an account balance).
 * Negative arguments give the legs of a refund.
 */
export function chargeLegs(
  source: AccountRef,
  payoutTo: AccountRef | null,
  advertiserId: number,
  cur: string,
  revenue: number,
  payout: number,
): Leg[] {
  const legs: Leg[] = [
    { account: source, amount: -revenue },
    { account: platform('revenue', cur, advertiserId), amount: revenue - (payoutTo ? payout : 0) },
    { account: advertiser(advertiserId, 'spent', cur), amount: revenue },
    { account: platform('spend_offset', cur, advertiserId), amount: -revenue },
  ];
  if (payoutTo) legs.push({ account: payoutTo, amount: payout });
  return legs;
}

/**
 * What a charge posting adds so that it cannot take the platform's revenue (margin) sub-account of
 * `advertiserId` below zero: without an override, that account must cover the posting's debit on it (`mustCover`,
 * checked under the account lock; a refusal is INSUFFICIENT_FUNDS with `details.account = 'revenue'`); with one,
 * nothing is checked and the override (admin id and reason) is recorded in the posting's meta.
 */
export function marginGuard(
  advertiserId: number,
  cur: string,
  override: MarginOverride | null | undefined,
): { mustCover: AccountRef[]; meta: { override?: MarginOverride } } {
  if (override) return { mustCover: [], meta: { override: { by: override.by, reason: override.reason } } };
  return { mustCover: [platform('revenue', cur, advertiserId)], meta: {} };
}

/** True when `err` is the platform revenue account refusing a debit (see {@link marginGuard}). */
export function isMarginRefusal(err: unknown): boolean {
  return (
    err instanceof AppError &&
    err.code === 'INSUFFICIENT_FUNDS' &&
    (err.details as { account?: string } | undefined)?.account === 'revenue'
  );
}

/** The VALIDATION_ERROR of a charge whose payout exceeds its revenue without an admin override. */
export function negativeMargin(payout: number, revenue: number): AppError {
  return validationError(
    { payout: `must not exceed revenue (${payout} > ${revenue}); only an admin may override` },
    'payout must not exceed revenue',
  );
}

export function transferView(p: Posting, amount: number, cur: string): TransferView {
  return {
    id: p.id,
    type: p.type,
    status: p.status,
    amount,
    currency: cur,
    created_at: p.created_at,
    replayed: p.replayed,
    meta: p.meta,
  };
}

/** The currency of a posting ('' when it has no entries). */
export async function postingCurrency(tx: TransactionSql, postingId: string): Promise<string> {
  const [r] = await tx<
    { currency: string }[]
  >`select currency from ledger_entries where posting_id = ${postingId} limit 1`;
  return r?.currency ?? '';
}

/** Locks a campaign; `scope.advertiserId` makes another advertiser's campaign NOT_FOUND. */
export async function lockCampaign(tx: TransactionSql, campaignId: number, scope: Scope = {}): Promise<CampaignRow> {
  const [c] = await tx<CampaignRow[]>`
    select id, advertiser_id, payout_model, currency, payout_amount, revenue_amount, payout_percent_bp,
           revenue_percent_bp, budget, daily_cap, hold_days, status, margin_override
    from campaigns where id = ${campaignId} for update`;
  if (!c || (scope.advertiserId !== undefined && c.advertiser_id !== scope.advertiserId)) {
    throw new AppError('NOT_FOUND', 'campaign not found');
  }
  return c;
}

/** Locks a conversion; `scope.advertiserId` makes another advertiser's conversion NOT_FOUND. */
export async function lockConversion(
  tx: TransactionSql,
  conversionId: string,
  scope: Scope = {},
): Promise<ConversionRow> {
  if (!UUID_RE.test(conversionId)) throw new AppError('NOT_FOUND', 'conversion not found');
  const [row] = await tx<ConversionRow[]>`
    select id, advertiser_id, event_id, campaign_id, affiliate_id, status, amount, payout, revenue, created_at
    from conversions where id = ${conversionId} for update`;
  if (!row || (scope.advertiserId !== undefined && row.advertiser_id !== scope.advertiserId)) {
    throw new AppError('NOT_FOUND', 'conversion not found');
  }
  return row;
}
