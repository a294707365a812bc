/**
 * Campaign budgets: reserving `budget − spent` from the advertiser's `available` when a campaign runs, releasing
 * it when it stops, the per-day spend behind daily caps, and pausing a campaign that can no longer pay.
 */
import { randomUUID } from 'node:crypto';
import { AppError, parseWith, type TransactionSql } from '../infra/index.ts';
import { advertiser, type CampaignRow, chargeSource, lockCampaign, reservedOf, type Scope } from './accounts.ts';
import { minorFromText } from './amounts.ts';
import { type Effects, id, type LedgerContext } from './context.ts';
import { accountKey, post } from './postings.ts';

// Spend totals are read as text and checked (postings.ts, MONEY): a sum of many days may pass 2^53, and must be
// an AMOUNT_OUT_OF_RANGE refusal rather than a driver RangeError or a rounded number.

async function reservedBalance(tx: TransactionSql, c: CampaignRow): Promise<number> {
  const [r] = await tx<{ balance: string }[]>`
    select balance::text from ledger_accounts where owner_type = 'advertiser' and purpose = 'reserved'
      and campaign_id = ${c.id} and currency = ${c.currency}`;
  return minorFromText(r?.balance ?? '0', `reservation of campaign ${c.id}`)!;
}

/** @throws AppError AMOUNT_OUT_OF_RANGE when the campaign's total spend is past Number.MAX_SAFE_INTEGER. */
async function spentTotal(tx: TransactionSql, campaignId: number): Promise<number> {
  const [r] = await tx<{ s: string }[]>`
    select coalesce(sum(spent), 0)::text as s from ledger_campaign_spend where campaign_id = ${campaignId}`;
  return minorFromText(r!.s, `spend of campaign ${campaignId}`)!;
}

/**
 * A campaign's spend booked on `day` (YYYY-MM-DD, UTC), minor units.
 * @throws AppError AMOUNT_OUT_OF_RANGE when it is past Number.MAX_SAFE_INTEGER.
 */
export async function spentOn(tx: TransactionSql, campaignId: number, day: string): Promise<number> {
  const [r] = await tx<{ spent: string }[]>`
    select spent::text from ledger_campaign_spend where campaign_id = ${campaignId} and day = ${day}`;
  return minorFromText(r?.spent ?? '0', `spend of campaign ${campaignId} on ${day}`)!;
}

/** Books `delta` (negative for a refund) on a campaign's spend of `day`. */
export async function addSpend(tx: TransactionSql, c: CampaignRow, day: string, delta: number): Promise<void> {
  if (delta === 0) return;
  await tx`
    insert into ledger_campaign_spend (campaign_id, day, currency, spent) values (${c.id}, ${day}, ${c.currency}, ${delta})
    on conflict (campaign_id, day) do update set spent = ledger_campaign_spend.spent + excluded.spent`;
}

/**
 * Releases a campaign's remaining reservation and sets its status (paused/archived). Caller holds the lock.
 * @returns the amount released, minor units.
 */
async function stopLocked(
  tx: TransactionSql,
  fx: Effects,
  c: CampaignRow,
  status: 'paused' | 'archived',
  reason: string,
): Promise<number> {
  const left = await reservedBalance(tx, c);
  if (left > 0) {
    await post(tx, {
      idempotencyKey: `campaign:${c.id}:release:${randomUUID()}`,
      type: 'campaign_release',
      legs: [
        { account: reservedOf(c), amount: -left },
        { account: advertiser(c.advertiser_id, 'available', c.currency), amount: left },
      ],
      advertiserId: c.advertiser_id,
      campaignId: c.id,
      meta: { reason },
    });
    fx.wallet([c.advertiser_id], {
      reason: 'campaign_release',
      campaign_id: c.id,
      amount: left,
      currency: c.currency,
    });
  }
  if (c.status !== status) {
    await tx`update campaigns set status = ${status}, updated_at = now() where id = ${c.id}`;
    fx.invalidations.push(c.id);
    fx.events.push({
      type: 'campaign.status_changed',
      user_ids: [c.advertiser_id],
      data: { campaign_id: c.id, from: c.status, to: status, reason },
    });
    c.status = status;
  }
  return left;
}

/**
 * Pauses a campaign whose money source (its reservation, or `available` when it has no budget) can no longer
 * pay for one more conversion/click, so the tracker sends its traffic to the fallback URL.
 */
export async function pauseIfExhausted(
  tx: TransactionSql,
  fx: Effects,
  c: CampaignRow,
  unitCost: number,
): Promise<void> {
  if (c.status !== 'active') return;
  const [src] = await tx<{ v: string }[]>`
    select (balance - pending_debits)::text as v from ledger_accounts where key = ${accountKey(chargeSource(c))}`;
  const left = minorFromText(src?.v ?? '0', `funds of campaign ${c.id}`)!;
  if (left <= 0 || (unitCost > 0 && left < unitCost)) {
    await stopLocked(tx, fx, c, 'paused', c.budget === null ? 'insufficient_funds' : 'budget_exhausted');
  }
}

/** The campaign-budget methods of the ledger. */
export function budgetFlows({ run }: LedgerContext) {
  return {
    /**
     * Activates a campaign (or re-syncs an active one after its budget changed): reserves
     * `budget − spent` from the advertiser's `available` and sets status 'active'; publishes link invalidation.
     * @throws INSUFFICIENT_FUNDS (nothing changes), BUDGET_EXHAUSTED (budget already spent), INVALID_STATE (archived).
     */
    async activateCampaign(
      campaignId: number,
      scope: Scope = {},
    ): Promise<{ campaign_id: number; status: 'active'; reserved: number }> {
      parseWith(id, campaignId);
      return run(async (tx, fx) => {
        const c = await lockCampaign(tx, campaignId, scope);
        if (c.status === 'archived') throw new AppError('INVALID_STATE', 'an archived campaign cannot be activated');
        let reserved = 0;
        if (c.budget !== null) {
          const target = c.budget - (await spentTotal(tx, c.id));
          if (target <= 0) throw new AppError('BUDGET_EXHAUSTED', 'the campaign budget is already spent');
          reserved = await reservedBalance(tx, c);
          const diff = target - reserved;
          if (diff !== 0) {
            await post(tx, {
              idempotencyKey: `campaign:${c.id}:${diff > 0 ? 'reserve' : 'release'}:${randomUUID()}`,
              type: diff > 0 ? 'campaign_reserve' : 'campaign_release',
              legs: [
                { account: advertiser(c.advertiser_id, 'available', c.currency), amount: -diff },
                { account: reservedOf(c), amount: diff },
              ],
              advertiserId: c.advertiser_id,
              campaignId: c.id,
              meta: { budget: c.budget },
            });
            fx.wallet([c.advertiser_id], {
              reason: 'campaign_reserve',
              campaign_id: c.id,
              amount: diff,
              currency: c.currency,
            });
            reserved = target;
          }
        }
        if (c.status !== 'active') {
          await tx`update campaigns set status = 'active', updated_at = now() where id = ${c.id}`;
          fx.invalidations.push(c.id);
          fx.events.push({
            type: 'campaign.status_changed',
            user_ids: [c.advertiser_id],
            data: { campaign_id: c.id, from: c.status, to: 'active' },
          });
        }
        return { campaign_id: c.id, status: 'active' as const, reserved };
      });
    },

    /** Pauses or archives a campaign, releasing its unspent reservation to `available`. Idempotent. */
    async stopCampaign(
      campaignId: number,
      status: 'paused' | 'archived',
      scope: Scope = {},
    ): Promise<{ campaign_id: number; status: 'paused' | 'archived'; released: number }> {
      parseWith(id, campaignId);
      return run(async (tx, fx) => {
        const c = await lockCampaign(tx, campaignId, scope);
        if (c.status === 'archived' && status === 'paused') {
          throw new AppError('INVALID_STATE', 'an archived campaign cannot be paused');
        }
        const released = await stopLocked(tx, fx, c, status, 'requested');
        return { campaign_id: c.id, status, released };
      });
    },
  };
}
