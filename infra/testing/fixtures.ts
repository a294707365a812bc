/**
 * Fixtures shared by every folder's tests: rows in the Postgres schema of `infra/migrations` (users, campaigns,
 * links, conversions) and one polling helper. Not part of the product.
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../postgres.ts';

/**
 * Polls `probe` (every `intervalMs`, default 25) until `until` accepts its value (default: the value is truthy),
 * and returns that value.
 * @throws Error naming `what` after `timeoutMs` (default 20 000).
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T> | T,
  o: { until?: (v: T) => boolean; timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const until = o.until ?? ((v: T) => Boolean(v));
  const end = Date.now() + (o.timeoutMs ?? 20_000);
  for (;;) {
    const v = await probe();
    if (until(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 25));
  }
}

/** Inserts a user (unique email, password hash `'x'`: it cannot log in) and returns its id. */
export async function makeUser(
  sql: Sql,
  role: 'admin' | 'advertiser' | 'affiliate',
  o: { name?: string; email?: string } = {},
): Promise<number> {
  const [u] = await sql<{ id: number }[]>`
    insert into users (role, name, email, password_hash)
    values (${role}, ${o.name ?? role}, ${o.email ?? `${randomUUID()}@example.test`}, 'x') returning id`;
  return u!.id;
}

/**
 * Inserts a campaign of `advertiserId` and returns its id. Defaults: a draft CPA campaign in USD paying 0, with the
 * destination `https://example.test/?c={click_id}`; `columns` sets any column of `campaigns` (`goals` as a value,
 * stored as JSONB).
 */
export async function makeCampaign(
  sql: Sql,
  advertiserId: number,
  columns: Record<string, unknown> = {},
): Promise<number> {
  const { goals, ...rest } = columns;
  const row = {
    advertiser_id: advertiserId,
    name: 'c',
    destination_url: 'https://example.test/?c={click_id}',
    payout_model: 'CPA',
    currency: 'USD',
    ...rest,
  };
  const [c] = await sql<{ id: number }[]>`
    insert into campaigns ${sql(row as unknown as Record<string, never>)} returning id`;
  if (goals !== undefined) {
    await sql`update campaigns set goals = ${JSON.stringify(goals)}::text::jsonb where id = ${c!.id}`;
  }
  return c!.id;
}

/** What {@link seedCampaign} created. */
export interface Seeded {
  advertiserId: number;
  affiliateId: number;
  campaignId: number;
  linkCode: string;
}

let seq = 0;

/**
 * Creates an advertiser, an affiliate, an active CPA campaign paying 5.00 for 7.00 (`columns` overrides any column,
 * see {@link makeCampaign}) and a link of the affiliate with the default sub3 `default3`.
 */
export async function seedCampaign(sql: Sql, columns: Record<string, unknown> = {}): Promise<Seeded> {
  const advertiserId = await makeUser(sql, 'advertiser', { name: 'adv' });
  const affiliateId = await makeUser(sql, 'affiliate', { name: 'aff' });
  const campaignId = await makeCampaign(sql, advertiserId, {
    payout_amount: 500,
    revenue_amount: 700,
    status: 'active',
    ...columns,
  });
  const linkCode = `lnk_${process.pid}_${++seq}_${Math.random().toString(36).slice(2, 8)}`;
  await sql`insert into links (code, campaign_id, affiliate_id, sub3) values (${linkCode}, ${campaignId}, ${affiliateId}, 'default3')`;
  return { advertiserId, affiliateId, campaignId, linkCode };
}

/** Stores a priced conversion row as the pipeline would (status pending, event time now) and returns its id. */
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
