/**
 * The cap settings of campaigns and of affiliates on them (README "Caps"): the fields' validation, the time-zone
 * check both the tracker (Intl) and Postgres (`AT TIME ZONE`) must pass, and the membership caps an owner sets.
 */
import { z } from 'zod';
import { publishLinkInvalidation, type Sql, validationError } from '../../../infra/index.ts';
import { type ApiServices, notFound } from '../../http.ts';
import type { ApiDeps } from '../../types.ts';
import type { CampaignRow } from './campaign-view.ts';

/** An IANA name: letters first, `/`-separated parts (no UTC offsets such as `+05:00`, which Postgres reads inverted). */
const IANA_RE = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,2}$/;

const TIME_ZONE_MESSAGE = 'must be an IANA time zone such as Europe/Berlin';

function knownToIntl(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The campaign's `time_zone` in a request: an IANA name the tracker's Intl knows (Postgres is asked by {@link checkTimeZone}). */
export const timeZone = z
  .string()
  .max(64)
  .refine((tz) => IANA_RE.test(tz) && knownToIntl(tz), TIME_ZONE_MESSAGE);

/** A cap: a positive count (Postgres `integer`); null = no cap. */
const cap = z.number().int().min(1).max(2_147_483_647).nullable();

/** The campaign's cap fields (create and PATCH): daily caps count days in `time_zone`. */
export const campaignCapFields = {
  time_zone: timeZone.optional(),
  click_cap_daily: cap.optional(),
  click_cap_total: cap.optional(),
  conversion_cap_daily: cap.optional(),
  conversion_cap_total: cap.optional(),
};

/** The keys of {@link campaignCapFields}, as PATCH copies them into the update. */
export const CAMPAIGN_CAP_KEYS = [
  'time_zone',
  'click_cap_daily',
  'click_cap_total',
  'conversion_cap_daily',
  'conversion_cap_total',
] as const;

/**
 * Refuses a time zone Postgres does not know (its tz database may differ from Node's ICU).
 * @throws AppError VALIDATION_ERROR on `time_zone`.
 */
export async function checkTimeZone(sql: Sql, tz: string | undefined): Promise<void> {
  if (tz === undefined) return;
  const [r] = await sql<{ ok: boolean }[]>`select exists(select 1 from pg_timezone_names where name = ${tz}) as ok`;
  if (!r?.ok) throw validationError({ time_zone: TIME_ZONE_MESSAGE }, 'unknown time zone');
}

/** The body of `PATCH /campaigns/:id/affiliates/:affiliate_id`: the affiliate's caps on the campaign. */
export const membershipCapsBody = z
  .object({
    click_cap_daily: cap.optional(),
    click_cap_total: cap.optional(),
    conversion_cap_daily: cap.optional(),
    conversion_cap_total: cap.optional(),
  })
  .strict();

interface MembershipRow {
  affiliate_id: number;
  status: string;
  click_cap_daily: number | null;
  click_cap_total: number | null;
  conversion_cap_daily: number | null;
  conversion_cap_total: number | null;
}

/**
 * Sets affiliate `affiliateId`'s caps on campaign `c` (the caller checked that it owns `c` or is an admin) and tells
 * the trackers. @returns the membership with its caps. @throws AppError NOT_FOUND when the affiliate has no membership.
 */
export async function setMembershipCaps(
  deps: ApiDeps,
  services: ApiServices,
  c: CampaignRow,
  affiliateId: number,
  body: z.output<typeof membershipCapsBody>,
) {
  const patch: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(body)) if (v !== undefined) patch[k] = v;
  const changed = Object.keys(patch).length > 0;
  const cols = deps.sql`affiliate_id, status, click_cap_daily, click_cap_total, conversion_cap_daily, conversion_cap_total`;
  const [m] = changed
    ? await deps.sql<MembershipRow[]>`
        update campaign_affiliates set ${deps.sql(patch)}, updated_at = now()
        where campaign_id = ${c.id} and affiliate_id = ${affiliateId} returning ${cols}`
    : await deps.sql<MembershipRow[]>`
        select ${cols} from campaign_affiliates where campaign_id = ${c.id} and affiliate_id = ${affiliateId}`;
  if (!m) return notFound('membership');
  if (changed) await publishLinkInvalidation(deps.redis, services.keys, { campaign_id: c.id });
  return { campaign_id: c.id, ...m };
}
