import { AppError, type Sql } from '../../../infra/index.ts';
import { notFound } from '../../http.ts';
import type { Principal } from '../../types.ts';
import type { CampaignRow } from './campaign-view.ts';

/**
 * Loads a campaign the caller may see: admins any; advertisers their own; affiliates active ones
 * and those they are members of. @throws NOT_FOUND otherwise.
 */
export async function visibleCampaign(
  sql: Sql,
  id: number,
  user: Principal,
): Promise<{ c: CampaignRow; membership: string | null }> {
  const [c] = await sql<(CampaignRow & { membership: string | null })[]>`
    select c.*, m.status as membership from campaigns c
    left join campaign_affiliates m on m.campaign_id = c.id and m.affiliate_id = ${user.user_id}
    where c.id = ${id}`;
  if (!c) return notFound('campaign');
  const { membership, ...row } = c;
  if (user.role === 'advertiser' && c.advertiser_id !== user.user_id) return notFound('campaign');
  // Affiliates reach any active campaign by id (a private one is shared by invitation and needs
  // approval to join); lists show them only public ones and their own.
  if (user.role === 'affiliate' && c.status !== 'active' && !(membership === 'approved' || membership === 'pending'))
    return notFound('campaign');
  return { c: row, membership };
}

/** A campaign the caller may change: its owner (advertiser) or an admin; @throws NOT_FOUND / FORBIDDEN. */
export async function ownedCampaign(sql: Sql, id: number, user: Principal): Promise<CampaignRow> {
  const { c } = await visibleCampaign(sql, id, user);
  if (user.role === 'affiliate') throw new AppError('FORBIDDEN', 'only the advertiser can change this campaign');
  return c;
}
