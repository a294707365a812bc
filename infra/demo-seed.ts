import { randomBytes } from 'node:crypto';
import type { Sql } from './postgres.ts';

/**
 * Makes sure a small demo tenant exists (an advertiser, an approved website, an active CPA campaign, an affiliate
 * and its tracking link `demo`) so that `npm start` can print a working tracking link. Idempotent; the demo users get
 * random unusable password hashes, so nobody can log in as them.
 * @returns the demo link's code.
 */
export async function ensureDemoTenant(sql: Sql): Promise<{ code: string }> {
  const code = 'demo';
  await sql.begin(async (tx) => {
    const [link] = await tx`select id from links where code = ${code}`;
    if (link) return;
    const unusable = `!${randomBytes(16).toString('hex')}`;
    const [adv] = await tx<{ id: number }[]>`
      insert into users (role, name, email, password_hash)
      values ('advertiser', 'Demo Advertiser', 'demo-advertiser@example.com', ${unusable})
      on conflict (lower(email)) do update set name = excluded.name returning id`;
    const [aff] = await tx<{ id: number }[]>`
      insert into users (role, name, email, password_hash)
      values ('affiliate', 'Demo Affiliate', 'demo-affiliate@example.com', ${unusable})
      on conflict (lower(email)) do update set name = excluded.name returning id`;
    const [site] = await tx<{ id: number }[]>`
      insert into websites (advertiser_id, url, name, status)
      values (${adv!.id}, 'https://shop.example.com', 'Demo shop', 'approved') returning id`;
    const [campaign] = await tx<{ id: number }[]>`
      insert into campaigns (advertiser_id, website_id, name, destination_url, payout_model, currency,
                             payout_amount, revenue_amount, status)
      values (${adv!.id}, ${site!.id}, 'Demo campaign',
              'https://shop.example.com/landing?click_id={click_id}&aff={affiliate_id}&sub1={sub1}',
              'CPA', 'USD', 500, 700, 'active')
      returning id`;
    await tx`insert into links (code, campaign_id, affiliate_id, sub1)
             values (${code}, ${campaign!.id}, ${aff!.id}, 'demo')`;
  });
  return { code };
}
