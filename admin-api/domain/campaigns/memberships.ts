import { AppError, publishLinkInvalidation } from '../../../infra/index.ts';
import { type ApiServices, notFound } from '../../http.ts';
import { emit } from '../../publish.ts';
import type { ApiDeps, Principal } from '../../types.ts';
import { createLink } from '../links/create-link.ts';
import { linkView } from '../links/link-view.ts';
import type { CampaignRow } from './campaign-view.ts';
import { reachableCampaign } from './visible-campaign.ts';

/**
 * The affiliate `user` joins campaign `id`: a public one at once (approved, with a default link), a private one
 * as a pending request. @throws AppError NOT_FOUND when the affiliate cannot reach it, CONFLICT when already a
 * member or waiting, MEMBERSHIP_COOLDOWN (Retry-After, s) within MEMBERSHIP_REREQUEST_COOLDOWN_S of a rejection,
 * INVALID_STATE when the campaign is not active.
 */
export async function joinCampaign(deps: ApiDeps, services: ApiServices, user: Principal, id: number) {
  const { c, membership } = await reachableCampaign(deps.sql, id, user);
  if (membership === 'approved' || membership === 'pending')
    throw new AppError('CONFLICT', `already ${membership === 'approved' ? 'a member' : 'waiting for approval'}`);
  if (membership === 'rejected') await checkCooldown(deps, c.id, user.user_id);
  if (c.status !== 'active') throw new AppError('INVALID_STATE', 'only active campaigns can be joined');
  const status = c.visibility === 'public' ? 'approved' : 'pending';
  await deps.sql`insert into campaign_affiliates (campaign_id, affiliate_id, status)
    values (${c.id}, ${user.user_id}, ${status})
    on conflict (campaign_id, affiliate_id) do update set status = excluded.status, updated_at = now()`;
  const link = status === 'approved' ? await createLink(deps, services, c, user.user_id, {}) : null;
  await emit(deps.redis, services.keys, 'partnership.created', [c.advertiser_id, user.user_id], {
    campaign_id: c.id,
    affiliate_id: user.user_id,
    status,
  });
  return { campaign_id: c.id, status, link: link && linkView(deps, link) };
}

/**
 * A rejected affiliate asks again only after the cool-down, so an advertiser is not flooded with the same request.
 * @throws AppError MEMBERSHIP_COOLDOWN with Retry-After (s) while it runs.
 */
async function checkCooldown(deps: ApiDeps, campaignId: number, affiliateId: number): Promise<void> {
  const [r] = await deps.sql<{ wait: number }[]>`
    select ceil(${deps.config.MEMBERSHIP_REREQUEST_COOLDOWN_S} - extract(epoch from now() - updated_at))::int as wait
    from campaign_affiliates where campaign_id = ${campaignId} and affiliate_id = ${affiliateId}`;
  if (r && r.wait > 0)
    throw new AppError(
      'MEMBERSHIP_COOLDOWN',
      'your request was rejected; you may ask again later',
      { retry_after_s: r.wait },
      { 'Retry-After': String(r.wait) },
    );
}

/**
 * The affiliate `user` leaves campaign `id`; its active links to it are disabled (and the trackers told).
 * @throws AppError INVALID_STATE when it is not a member.
 */
export async function leaveCampaign(deps: ApiDeps, services: ApiServices, user: Principal, id: number) {
  const { c, membership } = await reachableCampaign(deps.sql, id, user);
  if (membership !== 'approved' && membership !== 'pending')
    throw new AppError('INVALID_STATE', 'you are not a member of this campaign');
  const codes = await deps.sql.begin(async (tx) => {
    await tx`update campaign_affiliates set status = 'left', updated_at = now()
             where campaign_id = ${c.id} and affiliate_id = ${user.user_id}`;
    return tx<{ code: string }[]>`update links set status = 'disabled'
      where campaign_id = ${c.id} and affiliate_id = ${user.user_id} and status = 'active' returning code`;
  });
  for (const { code } of codes) await publishLinkInvalidation(deps.redis, services.keys, { code });
  return { campaign_id: c.id, status: 'left', disabled_links: codes.length };
}

/**
 * Decides an affiliate's pending request to join campaign `c`: approved (it gets its default link and both sides
 * are told) or rejected. @throws AppError NOT_FOUND when there is no pending request.
 */
export async function decideMembership(
  deps: ApiDeps,
  services: ApiServices,
  c: CampaignRow,
  affiliateId: number,
  status: 'approved' | 'rejected',
) {
  const [m] = await deps.sql`update campaign_affiliates set status = ${status}, updated_at = now()
    where campaign_id = ${c.id} and affiliate_id = ${affiliateId} and status = 'pending' returning affiliate_id`;
  if (!m) return notFound('pending membership');
  if (status === 'rejected') return { campaign_id: c.id, affiliate_id: affiliateId, status };
  const link = await createLink(deps, services, c, affiliateId, {});
  await emit(deps.redis, services.keys, 'partnership.created', [c.advertiser_id, affiliateId], {
    campaign_id: c.id,
    affiliate_id: affiliateId,
    status,
  });
  return { campaign_id: c.id, affiliate_id: affiliateId, status, link: linkView(deps, link) };
}
