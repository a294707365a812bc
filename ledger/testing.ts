/**
 * Test fixtures for the ledger's tests (users, campaigns, stored conversions). Not part of the public surface.
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../infra/index.ts';

/** Inserts a user and returns its id. */
export async function makeUser(sql: Sql, role: 'admin' | 'advertiser' | 'affiliate'): Promise<number> {
  const [u] = await sql<{ id: number }[]>`
    insert into users (role, name, email, password_hash)
    values (${role}, ${role}, ${`${randomUUID()}@example.test`}, 'x') returning id`;
  return u!.id;
}

/** Inserts a draft campaign (CPA unless told) and returns its id. */
export async function makeCampaign(
  sql: Sql,
  o: {
    advertiserId: number;
    currency?: string;
    budget?: number | null;
    dailyCap?: number | null;
    revenue?: number;
    payout?: number;
    model?: 'CPA' | 'CPC' | 'RevShare';
    holdDays?: number;
    revenuePercentBp?: number;
    payoutPercentBp?: number;
  },
): Promise<number> {
  const [c] = await sql<{ id: number }[]>`
    insert into campaigns (advertiser_id, name, destination_url, payout_model, currency, payout_amount, revenue_amount,
      payout_percent_bp, revenue_percent_bp, budget, daily_cap, hold_days)
    values (${o.advertiserId}, 'c', 'https://example.test/?c={click_id}', ${o.model ?? 'CPA'}, ${o.currency ?? 'USD'},
      ${o.payout ?? 0}, ${o.revenue ?? 0}, ${o.payoutPercentBp ?? null}, ${o.revenuePercentBp ?? null},
      ${o.budget === undefined ? null : o.budget}, ${o.dailyCap ?? null}, ${o.holdDays ?? 0})
    returning id`;
  return c!.id;
}

/** Stores a priced conversion row as the pipeline would, and returns its id. */
export async function makeConversion(
  sql: Sql,
  o: {
    advertiserId: number;
    campaignId: number;
    affiliateId: number;
    revenue: number;
    payout: number;
    currency?: string;
    eventId?: string;
    clickId?: string;
    amount?: number | null;
  },
): Promise<string> {
  const id = randomUUID();
  await sql`
    insert into conversions (id, advertiser_id, event_id, click_id, campaign_id, affiliate_id, status, amount, currency,
      payout, revenue, event_time)
    values (${id}, ${o.advertiserId}, ${o.eventId ?? randomUUID()}, ${o.clickId ?? randomUUID()}, ${o.campaignId},
      ${o.affiliateId}, 'pending', ${o.amount ?? null}, ${o.currency ?? 'USD'}, ${o.payout}, ${o.revenue}, now())`;
  return id;
}
