import type { Sql } from '../../../infra/index.ts';
import type { Principal } from '../../types.ts';

/** A scoped analyst's reach: rows of these advertisers plus rows of these campaigns. */
export interface AnalystScope {
  advertiserIds: number[];
  campaignIds: number[];
}

/**
 * The scope an admin gave analyst `user` (`analyst_scopes`, migration 00010), or null when it sees the whole network
 * (no rows, or the caller is not an analyst).
 */
export async function analystScope(sql: Sql, user: Principal): Promise<AnalystScope | null> {
  if (user.role !== 'analyst') return null;
  const rows = await sql<{ advertiser_id: string | null; campaign_id: string | null }[]>`
    select advertiser_id, campaign_id from analyst_scopes where analyst_id = ${user.user_id}`;
  if (rows.length === 0) return null;
  return {
    advertiserIds: rows.filter((r) => r.advertiser_id !== null).map((r) => Number(r.advertiser_id)),
    campaignIds: rows.filter((r) => r.campaign_id !== null).map((r) => Number(r.campaign_id)),
  };
}

/** The ids of the campaigns a scope reaches: the listed ones plus every campaign of the listed advertisers. */
export async function scopeCampaignIds(sql: Sql, scope: AnalystScope): Promise<number[]> {
  const rows = await sql<{ id: number }[]>`
    select id::int from campaigns
    where advertiser_id = any(${scope.advertiserIds}::int8[]) or id = any(${scope.campaignIds}::int8[])`;
  return rows.map((r) => r.id);
}
