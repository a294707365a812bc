import { z } from 'zod';
import { AppError } from '../../infra/index.ts';
import { setParent } from '../domain/rewards/recruit-affiliate.ts';
import { needLedger } from '../domain/wallet/need-ledger.ts';
import { type HandlerArgs, notFound, pageQuery, type Route, route } from '../http.ts';
import { pagedQuery } from '../paging.ts';

const id = z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const bp = z.number().int().min(0).max(10_000).nullable();

/** Reward columns; affiliates are not shown the advertiser's id (as in GET /conversions). */
const REWARD_COLUMNS =
  'r.id, r.conversion_id, r.affiliate_id, r.campaign_id, r.tier_level, r.kind, r.amount, r.currency, r.unit, ' +
  'r.quantity, r.status, r.created_at, r.updated_at';

/** `where` for rows of `alias` the caller may see: an affiliate its own, an advertiser its campaigns', admins all. */
function ownRows(a: HandlerArgs<unknown, unknown>, alias: 'r') {
  const { sql } = a.deps;
  const col = sql.unsafe(alias);
  if (a.user.role === 'affiliate') return sql`${col}.affiliate_id = ${a.user.user_id}`;
  if (a.user.role === 'advertiser') return sql`${col}.advertiser_id = ${a.user.user_id}`;
  return sql`true`;
}

/** The affiliate whose figures an admin asks for (`?affiliate_id=`, required) or the calling affiliate. */
function affiliateOf(a: HandlerArgs<unknown, { affiliate_id?: number }>): number {
  if (a.user.role === 'affiliate') return a.user.user_id;
  if (a.query.affiliate_id === undefined) {
    throw new AppError('VALIDATION_ERROR', 'affiliate_id is required', { affiliate_id: 'required for admins' });
  }
  return a.query.affiliate_id;
}

/**
 * Rewards (cash per tier, non-cash units), their fulfilments, an affiliate's balances in FirstPromoter's three states
 * and its recruits; an admin's tier shares per campaign and change of an affiliate's parent. README "Tiers, rewards
 * and balances". Session tokens only.
 */
export function rewardRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/rewards',
      summary: "Rewards, newest first: an affiliate's own, an advertiser's campaigns', every one for admins",
      tag: 'rewards',
      auth: ['admin', 'advertiser', 'affiliate'],
      query: pageQuery.extend({
        status: z.enum(['pending', 'approved', 'rejected', 'reversed']).optional(),
        kind: z.enum(['cash', 'non_cash']).optional(),
        tier_level: z.coerce.number().int().min(1).max(3).optional(),
        conversion_id: z.string().uuid().optional(),
      }),
      async handler(a) {
        const { sql } = a.deps;
        const q = a.query;
        const cols = a.user.role === 'affiliate' ? REWARD_COLUMNS : `${REWARD_COLUMNS}, r.advertiser_id`;
        return pagedQuery(sql, q, {
          columns: sql.unsafe(cols),
          from: sql`rewards r`,
          where: sql`${ownRows(a, 'r')}
            ${q.status ? sql`and r.status = ${q.status}` : sql``}
            ${q.kind ? sql`and r.kind = ${q.kind}` : sql``}
            ${q.tier_level ? sql`and r.tier_level = ${q.tier_level}` : sql``}
            ${q.conversion_id ? sql`and r.conversion_id = ${q.conversion_id}` : sql``}`,
          orderBy: sql`r.id desc`,
        });
      },
    }),
    route({
      method: 'get',
      path: '/rewards/balance',
      summary:
        "An affiliate's balances as FirstPromoter shows them: earnings, current and paid, cash per currency (minor " +
        'units) and non-cash per unit (admins: ?affiliate_id=)',
      tag: 'rewards',
      auth: ['admin', 'affiliate'],
      query: z.object({ affiliate_id: id.optional() }),
      async handler(a) {
        const aff = affiliateOf(a);
        const cash = await needLedger(a).affiliateBalances(aff);
        const units = await a.deps.sql<{ unit: string; earnings: number; current: number; paid: number }[]>`
          select r.unit,
            coalesce(sum(r.quantity) filter (where r.status in ('pending', 'approved') or f.status = 'fulfilled'), 0)::int8
              as earnings,
            coalesce(sum(r.quantity) filter (where f.status = 'fulfilment_pending'), 0)::int8 as current,
            coalesce(sum(r.quantity) filter (where f.status = 'fulfilled'), 0)::int8 as paid
          from rewards r left join reward_fulfilments f on f.reward_id = r.id
          where r.affiliate_id = ${aff} and r.kind = 'non_cash' group by r.unit order by r.unit`;
        const state = (k: 'earnings' | 'current' | 'paid') => ({
          cash: Object.fromEntries(cash.map((b) => [b.currency, b[k]])),
          ...Object.fromEntries(units.map((u) => [u.unit, Number(u[k])])),
        });
        return {
          data: {
            affiliate_id: aff,
            earnings_balance: state('earnings'),
            current_balance: state('current'),
            paid_balance: state('paid'),
            cash,
          },
        };
      },
    }),
    route({
      method: 'get',
      path: '/fulfilments',
      summary: "Non-cash rewards to hand over: an advertiser's own, an affiliate's own, every one for admins",
      tag: 'rewards',
      auth: ['admin', 'advertiser', 'affiliate'],
      query: pageQuery.extend({ status: z.enum(['fulfilment_pending', 'fulfilled', 'cancelled']).optional() }),
      async handler(a) {
        const { sql } = a.deps;
        return pagedQuery(sql, a.query, {
          columns: sql`f.id, f.reward_id, f.status, r.unit, r.quantity as amount, r.affiliate_id, r.campaign_id,
            r.conversion_id, f.fulfilled_at as date_paid, f.note, f.created_at`,
          from: sql`reward_fulfilments f join rewards r on r.id = f.reward_id`,
          where: sql`${ownRows(a, 'r')} ${a.query.status ? sql`and f.status = ${a.query.status}` : sql``}`,
          orderBy: sql`f.id desc`,
        });
      },
    }),
    route({
      method: 'post',
      path: '/fulfilments/:id/fulfill',
      summary: 'Mark a non-cash reward handed over (the advertiser that owes it, or an admin); idempotent',
      tag: 'rewards',
      auth: ['admin', 'advertiser'],
      body: z.object({ note: z.string().trim().max(500).optional() }).default({}),
      example: { note: '3 free months added to account 42' },
      async handler({ deps: { sql }, user, params, body }) {
        const mine = user.role === 'admin' ? sql`true` : sql`advertiser_id = ${user.user_id}`;
        const [f] = await sql<{ id: number; status: string }[]>`
          update reward_fulfilments set status = 'fulfilled', fulfilled_at = now(), fulfilled_by = ${user.user_id},
            note = ${body.note ?? null}, updated_at = now()
          where id = ${params.id!} and ${mine} and status = 'fulfilment_pending'
          returning id, status, fulfilled_at, fulfilled_by, note`;
        if (f) return { data: { ...f, changed: true } };
        const [cur] = await sql<{ id: number; status: string }[]>`
          select id, status, fulfilled_at, fulfilled_by, note from reward_fulfilments where id = ${params.id!} and ${mine}`;
        if (!cur) return notFound('fulfilment');
        if (cur.status === 'cancelled') {
          throw new AppError('INVALID_STATE', 'the conversion was rejected or reversed; nothing is owed', {
            status: cur.status,
          });
        }
        return { data: { ...cur, changed: false } };
      },
    }),
    route({
      method: 'get',
      path: '/affiliate/recruits',
      summary:
        "An affiliate's recruits: level 1 registered with its referral code, level 2 with theirs (admins: ?affiliate_id=)",
      tag: 'rewards',
      auth: ['admin', 'affiliate'],
      query: pageQuery.extend({ affiliate_id: id.optional() }),
      async handler(a) {
        const { sql } = a.deps;
        const aff = affiliateOf(a);
        return pagedQuery(sql, a.query, {
          columns: sql`u.id, u.name, u.status, u.parent_affiliate_id, u.created_at,
            case when u.parent_affiliate_id = ${aff} then 1 else 2 end as level`,
          from: sql`users u`,
          where: sql`u.role = 'affiliate' and (u.parent_affiliate_id = ${aff} or u.parent_affiliate_id in (
            select id from users where parent_affiliate_id = ${aff}))`,
          orderBy: sql`level, u.id`,
        });
      },
    }),
    route({
      method: 'put',
      path: '/affiliates/:id/parent',
      summary: "Change an affiliate's recruiter (admin; refused when it would make a cycle); null = none",
      tag: 'rewards',
      auth: ['admin'],
      body: z.object({ parent_affiliate_id: id.nullable() }),
      example: { parent_affiliate_id: 12 },
      async handler({ deps: { sql }, params, body }) {
        await setParent(sql, params.id!, body.parent_affiliate_id);
        return { data: { id: params.id!, parent_affiliate_id: body.parent_affiliate_id } };
      },
    }),
    route({
      method: 'put',
      path: '/campaigns/:id/tiers',
      summary:
        "A campaign's tier shares, basis points of the tier-1 payout (admin: they come out of the platform's " +
        'margin); null = the network default',
      tag: 'rewards',
      auth: ['admin'],
      body: z.object({ tier2_share_bp: bp, tier3_share_bp: bp.optional() }),
      example: { tier2_share_bp: 1000, tier3_share_bp: 500 },
      async handler({ deps, params, body }) {
        const [c] = await deps.sql<{ id: number; tier2_share_bp: number | null; tier3_share_bp: number | null }[]>`
          update campaigns set tier2_share_bp = ${body.tier2_share_bp}, tier3_share_bp = ${body.tier3_share_bp ?? null},
            updated_at = now()
          where id = ${params.id!} returning id, tier2_share_bp, tier3_share_bp`;
        return { data: c ?? notFound('campaign') };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
