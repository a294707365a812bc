import { type Sql, validationError } from '../../../infra/index.ts';
import { notFound } from '../../http.ts';

/** A row of `campaign_landing_pages` (migration 00016). */
export interface LandingPageRow {
  id: number;
  campaign_id: number;
  name: string;
  /** Normalised http(s) URL, macros as in destination_url. */
  url: string;
  /** 0..10000; a page's share of the rotation is weight / the sum of its campaign's active weights. */
  weight: number;
  status: 'active' | 'archived';
  created_at: Date;
  updated_at: Date;
}

/** Most active landing pages one campaign may rotate between. */
export const MAX_ACTIVE_LANDING_PAGES = 100;

/**
 * Loads landing page `id` of campaign `campaignId`. @throws AppError NOT_FOUND when it is not one of that campaign's
 * (the caller has checked the campaign itself).
 */
export async function landingPageOf(sql: Sql, campaignId: number, id: number): Promise<LandingPageRow> {
  const [p] = await sql<LandingPageRow[]>`
    select * from campaign_landing_pages where id = ${id} and campaign_id = ${campaignId}`;
  return p ?? notFound('landing page');
}

/**
 * Checks that `landingPageId` may be pinned on a link of campaign `campaignId`: an active landing page of that
 * campaign (null unpins: always fine). @throws AppError VALIDATION_ERROR on `landing_page_id` otherwise.
 */
export async function checkPin(sql: Sql, campaignId: number, landingPageId: number | null | undefined): Promise<void> {
  if (landingPageId === null || landingPageId === undefined) return;
  const [p] = await sql`
    select 1 from campaign_landing_pages
    where id = ${landingPageId} and campaign_id = ${campaignId} and status = 'active'`;
  if (!p)
    throw validationError(
      { landing_page_id: "must be an active landing page of the link's campaign" },
      'landing_page_id is not an active landing page of the campaign',
    );
}
