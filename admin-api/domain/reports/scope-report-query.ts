import { AppError, type Sql } from '../../../infra/index.ts';
import type { ApiDeps, Principal, Reports } from '../../types.ts';
import { analystScope, scopeCampaignIds } from '../analysts/analyst-scope.ts';
import { visibleCampaign } from '../campaigns/visible-campaign.ts';

/**
 * The ids of the test-mode (sandbox) campaigns, of `advertiserId` only when given. ClickHouse rows carry no mode, so
 * every ClickHouse read filters by these ids.
 */
export async function testModeCampaignIds(sql: Sql, advertiserId?: number): Promise<number[]> {
  const own = advertiserId === undefined ? sql`` : sql`and advertiser_id = ${advertiserId}`;
  const rows = await sql<{ id: number }[]>`select id::int from campaigns where mode = 'test' ${own}`;
  return rows.map((c) => c.id);
}

/** What a report query may be narrowed to. */
interface Scopable {
  campaign_id?: number;
  affiliate_id?: number;
  advertiser_id?: number;
  exclude_campaign_ids?: number[];
  only_campaign_ids?: number[];
}

/**
 * Scopes a report query to what the caller may see: a named campaign must be visible to it, affiliates see only
 * their own traffic, advertisers only theirs, scoped analysts only their scope's; test-mode API keys see only
 * test-mode campaigns' traffic, everyone else none of it. @returns the reports and the scoped query.
 * @throws AppError NOT_FOUND for an invisible campaign, SERVICE_UNAVAILABLE when the API runs without reports.
 */
export async function scopeReportQuery<Q extends Scopable>(
  deps: ApiDeps,
  user: Principal,
  query: Q,
): Promise<{ reports: Reports; q: Q }> {
  if (query.campaign_id) await visibleCampaign(deps.sql, query.campaign_id, user);
  if (!deps.reports) throw new AppError('SERVICE_UNAVAILABLE', 'reports are not available');
  const q: Q = { ...query };
  if (user.role === 'affiliate') q.affiliate_id = user.user_id;
  if (user.role === 'advertiser') q.advertiser_id = user.user_id;
  // An advertiser's own test-mode campaigns suffice: its other traffic is scoped out anyway.
  const ids = await testModeCampaignIds(deps.sql, user.role === 'advertiser' ? user.user_id : undefined);
  if (user.mode === 'test') q.only_campaign_ids = ids;
  else q.exclude_campaign_ids = ids;
  // A scoped analyst reads only its advertisers' and campaigns' traffic (live callers only: test keys see none).
  const scope = await analystScope(deps.sql, user);
  if (scope && user.mode === 'live') {
    const testIds = new Set(ids);
    q.only_campaign_ids = (await scopeCampaignIds(deps.sql, scope)).filter((id) => !testIds.has(id));
  }
  return { reports: deps.reports, q };
}
