import { z } from 'zod';
import { offsetOf, paged, pageQuery, type Route, route } from '../http.ts';

interface ConversionRow {
  id: string;
  advertiser_id: number;
  event_id: string;
  click_id: string | null;
  campaign_id: number | null;
  affiliate_id: number | null;
  link_code: string | null;
  goal: string;
  status: string;
  reject_reason: string | null;
  amount: number | null;
  currency: string | null;
  payout: number;
  revenue: number;
  event_time: Date;
  fraud_score: number;
  sub1: string | null;
  sub2: string | null;
  sub3: string | null;
  sub4: string | null;
  sub5: string | null;
  created_at: Date;
  total: number;
}

export function conversionRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/conversions',
      summary: 'Conversions (advertisers: on their campaigns; affiliates: their own, payout only; admins: all)',
      tag: 'conversions',
      auth: ['admin', 'advertiser', 'affiliate'],
      scope: 'conversions:read',
      query: pageQuery.extend({
        campaign_id: z.coerce.number().int().min(1).optional(),
        status: z.enum(['pending', 'approved', 'rejected', 'reversed']).optional(),
      }),
      async handler({ deps: { sql }, user, query }) {
        const scope =
          user.role === 'admin'
            ? sql`true`
            : user.role === 'advertiser'
              ? sql`advertiser_id = ${user.user_id}`
              : sql`affiliate_id = ${user.user_id}`;
        const camp = query.campaign_id ? sql`campaign_id = ${query.campaign_id}` : sql`true`;
        const st = query.status ? sql`status = ${query.status}` : sql`true`;
        const rows =
          user.mode === 'test'
            ? []
            : await sql<ConversionRow[]>`
          select id, advertiser_id, event_id, click_id, campaign_id, affiliate_id, link_code, goal, status, reject_reason,
                 amount, currency, payout, revenue, event_time, fraud_score, sub1, sub2, sub3, sub4, sub5, created_at,
                 count(*) over ()::int8 as total
          from conversions where ${scope} and ${camp} and ${st}
          order by created_at desc, id limit ${query.per_page} offset ${offsetOf(query)}`;
        const data = rows.map(({ total: _t, ...r }) => {
          if (user.role !== 'affiliate') return r;
          const { revenue: _r, advertiser_id: _a, event_id: _e, amount: _m, fraud_score: _f, ...rest } = r;
          return rest;
        });
        return paged(data, rows[0]?.total ?? 0, query);
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
