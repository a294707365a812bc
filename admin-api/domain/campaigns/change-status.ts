import { AppError, type CampaignStatus, publishLinkInvalidation } from '../../../infra/index.ts';
import { type ApiServices, notFound } from '../../http.ts';
import { emit } from '../../publish.ts';
import type { ApiDeps, Principal } from '../../types.ts';
import type { CampaignRow } from './campaign-view.ts';

/** Allowed status transitions; `archived` is final. */
export const TRANSITIONS: Record<CampaignStatus, CampaignStatus[]> = {
  draft: ['active', 'archived'],
  active: ['paused', 'archived'],
  paused: ['active', 'archived'],
  archived: [],
};

/**
 * Moves campaign `c` to `to` (recording who did it), through the ledger when there is one so the budget is
 * reserved or released with it; then tells the trackers and the approved affiliates (and, without a ledger, the
 * advertiser). A test-mode campaign never goes through the ledger: it reserves and releases no live money.
 * @returns the updated row. @throws AppError INVALID_STATE for a transition not in TRANSITIONS,
 * CONFLICT when the campaign changed meanwhile, and the ledger's INSUFFICIENT_FUNDS / BUDGET_EXHAUSTED.
 */
export async function changeCampaignStatus(
  deps: ApiDeps,
  services: ApiServices,
  user: Principal,
  c: CampaignRow,
  to: 'active' | 'paused' | 'archived',
): Promise<CampaignRow> {
  if (!TRANSITIONS[c.status].includes(to))
    throw new AppError('INVALID_STATE', `cannot change a ${c.status} campaign to ${to}`, {
      from: c.status,
      to,
      allowed: TRANSITIONS[c.status],
    });
  let u: CampaignRow;
  const ledger = c.mode === 'live' ? deps.ledger : undefined;
  if (ledger) {
    // The ledger sets the status in the same transaction that reserves (active) or releases
    // (paused/archived) the budget; INSUFFICIENT_FUNDS / BUDGET_EXHAUSTED leave everything as it was.
    if (to === 'active') await ledger.activateCampaign(c.id);
    else await ledger.stopCampaign(c.id, to);
    const [row] = await deps.sql<CampaignRow[]>`select * from campaigns where id = ${c.id}`;
    if (!row) return notFound('campaign');
    u = row;
    await deps.sql`insert into campaign_status_events (campaign_id, from_status, to_status, actor_id)
                   values (${c.id}, ${c.status}, ${to}, ${user.user_id})`;
  } else {
    u = await deps.sql.begin(async (tx) => {
      const [row] = await tx<CampaignRow[]>`update campaigns set status = ${to}, updated_at = now()
        where id = ${c.id} and status = ${c.status} returning *`;
      if (!row) throw new AppError('CONFLICT', 'the campaign changed meanwhile; retry');
      await tx`insert into campaign_status_events (campaign_id, from_status, to_status, actor_id)
               values (${c.id}, ${c.status}, ${to}, ${user.user_id})`;
      return row;
    });
  }
  await publishLinkInvalidation(deps.redis, services.keys, { campaign_id: c.id });
  const members = await deps.sql<{ affiliate_id: number }[]>`
    select affiliate_id from campaign_affiliates where campaign_id = ${c.id} and status = 'approved'`;
  // With a ledger, the ledger has already told the advertiser (after its commit).
  const audience = [...(ledger ? [] : [c.advertiser_id]), ...members.map((m) => m.affiliate_id)];
  if (audience.length > 0)
    await emit(deps.redis, services.keys, 'campaign.status_changed', audience, {
      campaign_id: c.id,
      from: c.status,
      to,
    });
  return u;
}
