import { AppError, type Sql } from '../../../infra/index.ts';
import { notFound } from '../../http.ts';
import type { Principal } from '../../types.ts';
import { analystScope } from '../analysts/analyst-scope.ts';
import type { CampaignRow } from './campaign-view.ts';

/**
 * Loads campaign `id` with the caller's membership status (`null`: none) if the caller may reach it by id to join or
 * leave: admins any; advertisers their own; analysts those in their scope (all when unscoped); affiliates active ones and those they are members of or waiting for
 * (a private campaign's id is shared by invitation, out of band). Only a campaign of the caller's mode (test-mode
 * API keys: test-mode campaigns; sessions and live keys, admins too: live ones) exists for it.
 * @throws AppError NOT_FOUND otherwise.
 */
export async function reachableCampaign(
  sql: Sql,
  id: number,
  user: Principal,
): Promise<{ c: CampaignRow; membership: string | null }> {
  const [c] = await sql<(CampaignRow & { membership: string | null })[]>`
    select c.*, m.status as membership from campaigns c
    left join campaign_affiliates m on m.campaign_id = c.id and m.affiliate_id = ${user.user_id}
    where c.id = ${id} and c.mode = ${user.mode}`;
  if (!c) return notFound('campaign');
  const { membership, ...row } = c;
  if (user.role === 'advertiser' && c.advertiser_id !== user.user_id) return notFound('campaign');
  if (user.role === 'analyst') {
    const scope = await analystScope(sql, user);
    if (scope && !scope.advertiserIds.includes(Number(c.advertiser_id)) && !scope.campaignIds.includes(Number(c.id)))
      return notFound('campaign');
  }
  if (user.role === 'affiliate' && c.status !== 'active' && !(membership === 'approved' || membership === 'pending'))
    return notFound('campaign');
  return { c: row, membership };
}

/**
 * Loads a campaign the caller may see: as {@link reachableCampaign}, except that an affiliate sees a private one only
 * once the advertiser approved its membership (its own pending request shows nothing: the same 404 as an unknown id).
 * @throws AppError NOT_FOUND otherwise.
 */
export async function visibleCampaign(
  sql: Sql,
  id: number,
  user: Principal,
): Promise<{ c: CampaignRow; membership: string | null }> {
  const found = await reachableCampaign(sql, id, user);
  if (user.role === 'affiliate' && found.c.visibility === 'private' && found.membership !== 'approved')
    return notFound('campaign');
  return found;
}

/** A campaign the caller may change: its owner (advertiser) or an admin; @throws NOT_FOUND / FORBIDDEN. */
export async function ownedCampaign(sql: Sql, id: number, user: Principal): Promise<CampaignRow> {
  const { c } = await visibleCampaign(sql, id, user);
  if (user.role === 'affiliate') throw new AppError('FORBIDDEN', 'only the advertiser can change this campaign');
  return c;
}
