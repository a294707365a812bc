/**
 * Rewards of a booked conversion: what its affiliate (tier 1) and the affiliate's recruiters (tier 2: the parent,
 * tier 3: the grandparent) earn, as cash legs of the conversion's one posting or as a non-cash reward (a unit such as
 * `free_months`) that the advertiser fulfils. One `rewards` row per (conversion, affiliate, tier level); its status
 * follows the conversion's. README "Tiers, rewards and balances".
 */
import type { TransactionSql } from '../infra/index.ts';
import { affiliate, type CampaignRow, type ConversionRow } from './accounts.ts';
import type { Effects } from './context.ts';
import type { Leg } from './postings.ts';

/** The network's tier shares (basis points of the tier-1 payout), used where a campaign sets none. */
export interface TierDefaults {
  TIER2_SHARE_BP?: number;
  TIER3_SHARE_BP?: number;
}

/** A goal's non-cash reward (campaigns.goals[i].reward): `quantity` of `unit` instead of a cash payout. */
export interface NonCashReward {
  unit: string;
  quantity: number;
}

/** One cash payout of a conversion: `amount` minor units to `affiliate_id` at `tier_level`. */
interface CashShare {
  affiliate_id: number;
  tier_level: 1 | 2 | 3;
  amount: number;
}

/**
 * What booking a conversion pays: `cash` (tier 1 first, then the recruiters' shares; zero amounts left out),
 * `total` (their sum, which the margin guard holds to ≤ revenue) and the goal's non-cash reward, if any (then the
 * tier-1 cash payout is 0, so no tier share either).
 */
export interface RewardPlan {
  cash: CashShare[];
  total: number;
  nonCash: NonCashReward | null;
}

/**
 * Plans the rewards of `conv` on campaign `c`. Tier shares are basis points of the tier-1 payout, floored to minor
 * units: the campaign's `tier2_share_bp` / `tier3_share_bp`, else the network's defaults.
 */
export async function planRewards(
  tx: TransactionSql,
  conv: ConversionRow,
  c: CampaignRow,
  defaults: TierDefaults,
): Promise<RewardPlan> {
  const [row] = await tx<
    { goals: unknown; tier2: number | null; tier3: number | null; goal: string; p1: number | null; p2: number | null }[]
  >`
    select c.goals, c.tier2_share_bp as tier2, c.tier3_share_bp as tier3, v.goal,
           u.parent_affiliate_id as p1, p.parent_affiliate_id as p2
    from campaigns c, conversions v
    join users u on u.id = v.affiliate_id left join users p on p.id = u.parent_affiliate_id
    where c.id = ${c.id} and v.id = ${conv.id}`;
  const goals = Array.isArray(row?.goals) ? (row.goals as Array<{ goal?: string; reward?: NonCashReward }>) : [];
  const nonCash = goals.find((g) => g?.goal === row?.goal)?.reward ?? null;
  const payout = nonCash ? 0 : conv.payout;
  const aff = conv.affiliate_id!;
  const cash: CashShare[] = [{ affiliate_id: aff, tier_level: 1, amount: payout }];
  const bp2 = row?.tier2 ?? defaults.TIER2_SHARE_BP ?? 0;
  const bp3 = row?.tier3 ?? defaults.TIER3_SHARE_BP ?? 0;
  if (row?.p1 && row.p1 !== aff) {
    cash.push({ affiliate_id: row.p1, tier_level: 2, amount: Math.floor((payout * bp2) / 10_000) });
    if (row.p2 && row.p2 !== aff && row.p2 !== row.p1) {
      cash.push({ affiliate_id: row.p2, tier_level: 3, amount: Math.floor((payout * bp3) / 10_000) });
    }
  }
  const paid = cash.filter((s) => s.amount > 0);
  return { cash: paid, total: paid.reduce((t, s) => t + s.amount, 0), nonCash };
}

/**
 * The legs that pay `plan`'s cash into each affiliate's `pending` (or `approved` for an approved conversion), to
 * replace the single payout leg of chargeLegs (which is booked with the plan's total).
 */
export function payoutLegs(plan: RewardPlan, approved: boolean, cur: string): Leg[] {
  return plan.cash.map((s) => ({
    account: affiliate(s.affiliate_id, approved ? 'approved' : 'pending', cur),
    amount: s.amount,
  }));
}

/**
 * Writes the rewards of a booked conversion (its posting `postingId`, null when nothing was posted) and their
 * events: `reward_created` per reward (to its affiliate and the advertiser), and for a non-cash reward a
 * fulfilment row plus `fulfilment_pending` (to the advertiser, who fulfils it, and the affiliate).
 */
export async function recordRewards(
  tx: TransactionSql,
  fx: Effects,
  conv: ConversionRow,
  c: CampaignRow,
  plan: RewardPlan,
  postingId: string | null,
): Promise<void> {
  const status = conv.status === 'approved' ? 'approved' : 'pending';
  const base = { conversion_id: conv.id, campaign_id: c.id, status };
  for (const s of postingId ? plan.cash : []) {
    const [r] = await tx<{ id: number; created_at: Date }[]>`
      insert into rewards (conversion_id, affiliate_id, advertiser_id, campaign_id, tier_level, kind, amount, currency,
                           posting_id, status)
      values (${conv.id}, ${s.affiliate_id}, ${c.advertiser_id}, ${c.id}, ${s.tier_level}, 'cash', ${s.amount},
              ${c.currency}, ${postingId}, ${status})
      on conflict do nothing returning id, created_at`;
    if (!r) continue;
    fx.events.push({
      type: 'reward_created',
      user_ids: [s.affiliate_id, c.advertiser_id],
      data: {
        ...base,
        id: r.id,
        amount: s.amount,
        unit: 'cash',
        currency: c.currency,
        tier_level: s.tier_level,
        created_at: r.created_at.toISOString(),
        promoter: { id: s.affiliate_id },
      },
    });
  }
  if (!plan.nonCash) return;
  const { unit, quantity } = plan.nonCash;
  const aff = conv.affiliate_id!;
  const [r] = await tx<{ id: number; created_at: Date }[]>`
    insert into rewards (conversion_id, affiliate_id, advertiser_id, campaign_id, tier_level, kind, unit, quantity,
                         status)
    values (${conv.id}, ${aff}, ${c.advertiser_id}, ${c.id}, 1, 'non_cash', ${unit}, ${quantity}, ${status})
    on conflict do nothing returning id, created_at`;
  if (!r) return;
  const reward = { id: r.id, amount: quantity, unit, tier_level: 1 };
  fx.events.push({
    type: 'reward_created',
    user_ids: [aff, c.advertiser_id],
    data: { ...base, ...reward, created_at: r.created_at.toISOString(), promoter: { id: aff } },
  });
  const [f] = await tx<{ id: number; created_at: Date }[]>`
    insert into reward_fulfilments (reward_id, advertiser_id) values (${r.id}, ${c.advertiser_id})
    returning id, created_at`;
  fx.events.push({
    type: 'fulfilment_pending',
    user_ids: [c.advertiser_id, aff],
    data: {
      id: f!.id,
      status: 'fulfilment_pending',
      amount: quantity,
      unit,
      date_paid: null,
      created_at: f!.created_at.toISOString(),
      conversion_id: conv.id,
      campaign_id: c.id,
      reward: { ...reward, status },
      promoter: { id: aff },
    },
  });
}

/**
 * Moves a conversion's rewards to its new status in the caller's transaction; rejecting or reversing it also
 * cancels its fulfilments still pending (one already fulfilled stays so: the goods were handed over).
 */
export async function rewardsFollow(
  tx: TransactionSql,
  conversionId: string,
  status: 'approved' | 'rejected' | 'reversed',
): Promise<void> {
  const ids = await tx<{ id: number }[]>`
    update rewards set status = ${status}, updated_at = now()
    where conversion_id = ${conversionId} and status <> ${status} returning id`;
  if (status === 'approved' || ids.length === 0) return;
  await tx`
    update reward_fulfilments set status = 'cancelled', updated_at = now()
    where reward_id = any(${ids.map((r) => r.id)}::int8[]) and status = 'fulfilment_pending'`;
}
