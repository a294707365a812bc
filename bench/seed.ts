/**
 * Seeds the bench's database directly with SQL: one advertiser, `campaigns` active CPA campaigns,
 * `affiliates` affiliates and `links` tracking links spread over them, plus one postback token for the
 * conversion endpoint. Bulk inserts via generate_series (seconds for 10,000 links).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Sql } from '../infra/index.ts';

/** What the scenarios need to address the seeded data. */
export interface Seeded {
  advertiser_id: number;
  campaign_ids: number[];
  /** Link codes in rank order (rank 0 is the most popular under Zipf). */
  codes: string[];
  /** The postback token in clear (only its SHA-256 is stored). */
  postback_token: string;
}

/** Link code of the i-th seeded link. */
export function linkCode(i: number): string {
  return `bl${String(i).padStart(6, '0')}`;
}

/** Inserts the bench's data set. Expects freshly migrated, empty tables. */
export async function seed(sql: Sql, opts: { links: number; campaigns: number; affiliates: number }): Promise<Seeded> {
  const [adv] = await sql<{ id: number }[]>`
    insert into users (role, name, email, password_hash)
    values ('advertiser', 'Bench Advertiser', 'advertiser@bench.example', 'x') returning id`;
  const advertiserId = adv!.id;
  await sql`
    insert into users (role, name, email, password_hash)
    select 'affiliate', 'Affiliate ' || g, 'aff' || g || '@bench.example', 'x'
    from generate_series(1, ${opts.affiliates}) g`;
  const campaigns = await sql<{ id: number }[]>`
    insert into campaigns (advertiser_id, name, destination_url, fallback_url, payout_model, currency,
                           payout_amount, revenue_amount, status)
    select ${advertiserId}, 'Campaign ' || g,
           'https://shop' || g || '.example/landing?cid={click_id}&aff={affiliate_id}&s1={sub1}&s2={sub2}',
           'https://shop' || g || '.example/', 'CPA', 'USD', 500, 700, 'active'
    from generate_series(1, ${opts.campaigns}) g
    returning id`;
  const campaignIds = campaigns.map((c) => c.id).sort((a, b) => a - b);
  const affiliates = await sql<{ id: number }[]>`select id from users where role = 'affiliate' order by id`;
  const codes = Array.from({ length: opts.links }, (_, i) => linkCode(i));
  const campaignOf = codes.map((_, i) => campaignIds[i % campaignIds.length]!);
  const affiliateOf = codes.map((_, i) => affiliates[(i * 7) % affiliates.length]!.id);
  await sql`
    insert into links (code, campaign_id, affiliate_id, sub1)
    select * from unnest(${codes}::text[], ${campaignOf}::int8[], ${affiliateOf}::int8[], ${codes}::text[])`;
  const token = randomBytes(32).toString('base64url');
  await sql`
    insert into postback_tokens (advertiser_id, token_hash, prefix)
    values (${advertiserId}, ${createHash('sha256').update(token).digest('hex')}, ${token.slice(0, 8)})`;
  return { advertiser_id: advertiserId, campaign_ids: campaignIds, codes, postback_token: token };
}
