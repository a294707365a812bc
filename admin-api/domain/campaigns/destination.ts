/**
 * Where a campaign may send its clicks (issue #12 item 5): the tracker answers every click on its own domain with a
 * 302 to the campaign's destination (or fallback), so those hosts must be ones the platform vetted — the campaign's
 * approved website (or a subdomain of it) or a host an admin approved (`approved_hosts`, or a subdomain of one) —
 * and moving a live campaign's host goes back to an admin.
 */
import { AppError, type Sql } from '../../../infra/index.ts';
import type { ApiServices } from '../../http.ts';
import type { ApiDeps, Principal } from '../../types.ts';
import type { CampaignRow } from './campaign-view.ts';
import { changeCampaignStatus } from './change-status.ts';

/** The URL fields of a campaign that the tracker redirects to. */
export type DestinationField = 'destination_url' | 'fallback_url';

/**
 * Host name of an absolute URL as the WHATWG parser reads it (lower case, punycode), without a trailing dot;
 * `null` when it does not parse. Stored destinations hold macros only outside the host, so they parse as they are.
 */
export function hostOf(url: string): string | null {
  try {
    const h = new URL(url).hostname;
    return h.endsWith('.') ? h.slice(0, -1) : h;
  } catch {
    return null;
  }
}

/** `host` and each of its parent domains, longest first: `a.shop.com` → `a.shop.com`, `shop.com`, `com`. */
function selfAndParents(host: string): string[] {
  const out: string[] = [];
  for (let h = host; h !== ''; h = h.includes('.') ? h.slice(h.indexOf('.') + 1) : '') out.push(h);
  return out;
}

/**
 * Checks that every URL given in `urls` under one of `fields` (normalised, as `httpUrl` parses them; `null`/absent
 * ones are skipped; by default a campaign's destination and fallback, a landing page passes `['url']`) has a
 * host the campaign may redirect to: the host of its website (`campaign.website_id`, approved and owned by
 * `campaign.advertiser_id`; a leading `www.` of the website's host is dropped, so `www.shop.com` covers
 * `shop.com` and `go.shop.com`) or a subdomain of it, or an `approved_hosts` entry or a subdomain of one.
 * @throws AppError DESTINATION_NOT_APPROVED (422) with `details` naming each refused field (FieldErrors shape).
 */
export async function checkDestinations(
  sql: Sql,
  campaign: { advertiser_id: number; website_id: number | null },
  urls: Partial<Record<string, unknown>>,
  fields: readonly string[] = ['destination_url', 'fallback_url'] satisfies DestinationField[],
): Promise<void> {
  const given = fields.filter((k) => typeof urls[k] === 'string');
  if (given.length === 0) return;
  let base: string | null = null;
  if (campaign.website_id !== null) {
    const [w] = await sql<{ url: string }[]>`
      select url from websites
      where id = ${campaign.website_id} and advertiser_id = ${campaign.advertiser_id} and status = 'approved'`;
    const h = w ? hostOf(w.url) : null;
    base = h?.startsWith('www.') ? h.slice(4) : h;
  }
  const bad: Record<string, string[]> = {};
  for (const k of given) {
    const host = hostOf(urls[k] as string);
    if (host === null) {
      bad[k] = ['must be an absolute http(s) URL'];
      continue;
    }
    if (base !== null && (host === base || host.endsWith(`.${base}`))) continue;
    const [hit] = await sql`select 1 from approved_hosts where host = any(${selfAndParents(host)}) limit 1`;
    if (hit) continue;
    bad[k] = [
      `host ${host} is neither the campaign's approved website${base === null ? '' : ` (${base})`}, a subdomain of it, ` +
        'nor a host an admin approved',
    ];
  }
  if (Object.keys(bad).length > 0)
    throw new AppError('DESTINATION_NOT_APPROVED', 'the campaign may not redirect to this host', bad);
}

/**
 * Whether a change by `user` that sets the URLs in `body` sends campaign `c` back to review: the caller is not an
 * admin (an admin is the reviewer), the campaign has gone live (active or paused: pausing first must not dodge the
 * review; a draft's first activation is like its creation) and the destination or fallback host differs from today's.
 */
export function needsReview(
  c: CampaignRow,
  user: Principal,
  body: Partial<Record<DestinationField, string | null>>,
): boolean {
  if (user.role === 'admin' || (c.status !== 'active' && c.status !== 'paused')) return false;
  const moved = (k: DestinationField) => {
    const v = body[k];
    if (v === undefined) return false;
    const now = c[k];
    return (v === null ? null : hostOf(v)) !== (now === null ? null : hostOf(now));
  };
  // Removing the fallback sends nobody anywhere new; setting or moving it does.
  return moved('destination_url') || (body.fallback_url !== null && moved('fallback_url'));
}

/**
 * Whether a landing page URL `url` set by `user` sends campaign `c` back to review, as moving its destination does
 * ({@link needsReview}): the caller is not an admin, the campaign is live, and the page's host is not the host of
 * the campaign's destination_url (a variant on the destination's own host needs no review).
 */
export function landingPageNeedsReview(c: CampaignRow, user: Principal, url: string | undefined): boolean {
  if (url === undefined || user.role === 'admin' || (c.status !== 'active' && c.status !== 'paused')) return false;
  return hostOf(url) !== hostOf(c.destination_url);
}

/**
 * After the update that set `destination_review_at` (see {@link needsReview}): pauses campaign `u` if it is active
 * (through {@link changeCampaignStatus}: the ledger releases its reservation, trackers answer as for any paused
 * campaign, affiliates are told). @returns the row as it is afterwards.
 */
export async function sendBackToReview(
  deps: ApiDeps,
  services: ApiServices,
  user: Principal,
  u: CampaignRow,
): Promise<CampaignRow> {
  return u.status === 'active' ? changeCampaignStatus(deps, services, user, u, 'paused') : u;
}

/**
 * Guards `POST /campaigns/:id/status`: while campaign `c` awaits review of its destination only an admin may
 * activate it. @throws AppError REVIEW_REQUIRED (422) otherwise.
 */
export function assertReviewed(c: CampaignRow, user: Principal, to: string): void {
  const pending = (c as CampaignRow & { destination_review_at?: Date | null }).destination_review_at;
  if (to === 'active' && pending && user.role !== 'admin')
    throw new AppError(
      'REVIEW_REQUIRED',
      'the destination host changed; an admin must review and activate the campaign',
      {
        destination_review_at: pending,
      },
    );
}

/** Clears campaign `id`'s pending destination review (an admin activated it). */
export async function clearReview(sql: Sql, id: number): Promise<void> {
  await sql`update campaigns set destination_review_at = null where id = ${id} and destination_review_at is not null`;
}
