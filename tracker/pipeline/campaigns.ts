/**
 * Campaign terms the pipeline needs (currency, attribution window, payout rules), read from
 * Postgres through a small TTL cache, and the pricing of a conversion.
 */
import {
  type CampaignStatus,
  type ClickCharge,
  goalTerms,
  MAX_MINOR_UNITS,
  type PayoutModel,
  type PriceTerms,
  RetriableError,
  type Sql,
} from '../../infra/index.ts';

/** The pricing fields of a campaign or of one of its per-goal overrides (infra/contracts.ts §3). */
export type { PriceTerms };

export interface CampaignTerms extends PriceTerms {
  id: number;
  advertiser_id: number;
  status: CampaignStatus;
  payout_model: PayoutModel;
  currency: string;
  attribution_window_days: number;
  /** Days a payout is held before it becomes available (for the ledger). */
  hold_days: number;
  /** Per-goal overrides: `{ goal, ...some PriceTerms }`. */
  /** `reward`: a non-cash reward (ledger/rewards.ts) that replaces the goal's cash payout. */
  goals: Array<{ goal: string; reward?: { unit: string; quantity: number } } & Partial<PriceTerms>>;
  /** `test`: a sandbox campaign (made with a test-mode API key); its clicks and conversions move no ledger money. */
  mode: 'live' | 'test';
  /** Share of each renewal's amount paid to the affiliate, basis points; null: renewals are not paid (./recurring.ts). */
  recurring_percent_bp: number | null;
  /** Calendar months after the customer's first conversion that renewals are paid; null: for ever. */
  recurring_months: number | null;
}

export interface CampaignCache {
  /** Terms of the given campaigns; unknown ids are absent. @throws RetriableError when Postgres is down. */
  get(ids: Iterable<number>): Promise<Map<number, CampaignTerms>>;
}

/**
 * A read-through cache of campaign terms. Entries live `ttlMs` (default 30 s), so a campaign's
 * new terms apply to conversions processed after that delay.
 */
export function createCampaignCache(sql: Sql, ttlMs = 30_000): CampaignCache {
  const cache = new Map<number, { at: number; terms: CampaignTerms | null }>();
  return {
    async get(ids) {
      const now = Date.now();
      const out = new Map<number, CampaignTerms>();
      const missing: number[] = [];
      for (const id of new Set(ids)) {
        if (id <= 0) continue;
        const hit = cache.get(id);
        if (hit && now - hit.at < ttlMs) {
          if (hit.terms) out.set(id, hit.terms);
        } else missing.push(id);
      }
      if (missing.length > 0) {
        if (cache.size > 100_000) cache.clear();
        let rows: CampaignTerms[];
        try {
          rows = await sql<CampaignTerms[]>`
            select id, advertiser_id, status, payout_model, currency, attribution_window_days, hold_days,
                   payout_amount, revenue_amount, payout_percent_bp, revenue_percent_bp, goals, mode,
                   recurring_percent_bp, recurring_months
            from campaigns where id = any(${missing})`;
        } catch (err) {
          throw new RetriableError(`campaign lookup failed: ${(err as Error).message}`);
        }
        for (const id of missing) cache.set(id, { at: now, terms: null });
        for (const r of rows) {
          const goals: unknown = typeof r.goals === 'string' ? JSON.parse(r.goals) : r.goals;
          const terms = { ...r, goals: Array.isArray(goals) ? goals : [] };
          cache.set(r.id, { at: now, terms });
          out.set(r.id, terms);
        }
      }
      return out;
    },
  };
}

/**
 * `amount × bp / 10000` in integer arithmetic, rounding half down (an exact half goes to the
 * smaller value, so an affiliate is never paid a fraction the advertiser did not pay).
 */
export function percentOf(amountMinor: number, bp: number): number {
  const q = BigInt(amountMinor) * BigInt(bp);
  const whole = q / 10_000n;
  const rest = q % 10_000n;
  return Number(rest * 2n > 10_000n ? whole + 1n : whole);
}

/** Outcome of pricing: amounts in minor units of the campaign's currency, or a reject reason. */
export type PriceResult =
  | { type: 'ok'; payout: number; revenue: number }
  | { type: 'reject'; reason: 'amount_required' | 'currency_mismatch' | 'amount_out_of_range' };

/**
 * Prices a conversion with the campaign's rules. The goal's override (from `campaigns.goals`)
 * replaces the fields it sets. Percent terms (RevShare, or CPS-style `*_percent_bp` on a goal)
 * take a share of the posted sale amount, which must be in the campaign's currency; fixed terms
 * (CPA/CPL) ignore the amount. CPC campaigns pay per click, so their conversions price at 0.
 * Amounts past MAX_MINOR_UNITS (infra/contracts.ts §6) are refused, not clamped (`amount_out_of_range`): a posted
 * sale amount above it (the ingest refuses one; an entry may predate that), or a payout/revenue above it (fixed terms
 * of a campaign stored before the cap). A clamped price would charge or pay a sum nobody agreed to; a refused
 * conversion is recorded with its reason, and the rest of its batch goes on.
 */
export function priceConversion(
  campaign: CampaignTerms,
  goal: string,
  amountMinor: number,
  currency: string,
): PriceResult {
  if (amountMinor > MAX_MINOR_UNITS) return { type: 'reject', reason: 'amount_out_of_range' };
  if (campaign.payout_model === 'CPC') return { type: 'ok', payout: 0, revenue: 0 };
  const g = campaign.goals.find((x) => x && x.goal === goal);
  const { terms: t, percent } = goalTerms(campaign, g);
  // A goal rewarded in kind pays its affiliate no cash (the ledger books the non-cash reward).
  const inRange = (payout: number, revenue: number): PriceResult =>
    payout > MAX_MINOR_UNITS || revenue > MAX_MINOR_UNITS
      ? { type: 'reject', reason: 'amount_out_of_range' }
      : { type: 'ok', payout: g?.reward ? 0 : payout, revenue };
  if (!percent) return inRange(t.payout_amount, t.revenue_amount);
  if (amountMinor < 0) return { type: 'reject', reason: 'amount_required' };
  if (currency !== campaign.currency) return { type: 'reject', reason: 'currency_mismatch' };
  const payout = t.payout_percent_bp == null ? t.payout_amount : percentOf(amountMinor, t.payout_percent_bp);
  const revenue = t.revenue_percent_bp == null ? t.revenue_amount : percentOf(amountMinor, t.revenue_percent_bp);
  return inRange(payout, revenue);
}

/** A link's default sub-ids (sub1..sub5, '' when unset), used when a click carries none of its own. */
export type LinkDefaults = [string, string, string, string, string];

export interface LinkCache {
  /** Default sub-ids of the given link codes; unknown codes are absent. @throws RetriableError */
  get(codes: Iterable<string>): Promise<Map<string, LinkDefaults>>;
}

/** A read-through cache of links' default sub-ids, entries living `ttlMs` (default 30 s). */
export function createLinkCache(sql: Sql, ttlMs = 30_000): LinkCache {
  const cache = new Map<string, { at: number; subs: LinkDefaults | null }>();
  return {
    async get(codes) {
      const now = Date.now();
      const out = new Map<string, LinkDefaults>();
      const missing: string[] = [];
      for (const code of new Set(codes)) {
        if (code === '') continue;
        const hit = cache.get(code);
        if (hit && now - hit.at < ttlMs) {
          if (hit.subs) out.set(code, hit.subs);
        } else missing.push(code);
      }
      if (missing.length > 0) {
        let rows: Array<{
          code: string;
          sub1: string | null;
          sub2: string | null;
          sub3: string | null;
          sub4: string | null;
          sub5: string | null;
        }>;
        try {
          rows = await sql`select code, sub1, sub2, sub3, sub4, sub5 from links where code = any(${missing})`;
        } catch (err) {
          throw new RetriableError(`link lookup failed: ${(err as Error).message}`);
        }
        if (cache.size > 100_000) cache.clear();
        for (const code of missing) cache.set(code, { at: now, subs: null });
        for (const r of rows) {
          const subs: LinkDefaults = [r.sub1 ?? '', r.sub2 ?? '', r.sub3 ?? '', r.sub4 ?? '', r.sub5 ?? ''];
          cache.set(r.code, { at: now, subs });
          out.set(r.code, subs);
        }
      }
      return out;
    },
  };
}

/**
 * The CPC charges of a batch (pure): clicks that are valid (not ingest-invalid, not fraud-flagged) on campaigns
 * whose payout model is CPC, counted per (campaign, affiliate).
 */
export function cpcCharges(
  rows: ReadonlyArray<Readonly<Record<string, unknown>>>,
  terms: ReadonlyMap<number, Pick<CampaignTerms, 'payout_model'>>,
): ClickCharge[] {
  const counts = new Map<string, ClickCharge>();
  for (const r of rows) {
    const campaign = Number(r.campaign_id);
    if (Number(r.is_invalid) !== 0 || terms.get(campaign)?.payout_model !== 'CPC') continue;
    const k = `${campaign}:${r.affiliate_id}`;
    const c = counts.get(k);
    if (c) c.count++;
    else counts.set(k, { campaign_id: campaign, affiliate_id: Number(r.affiliate_id), count: 1 });
  }
  return [...counts.values()];
}
