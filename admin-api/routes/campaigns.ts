import { z } from 'zod';
import {
  AppError,
  CAMPAIGN_STATUSES,
  type CampaignStatus,
  PAYOUT_MODELS,
  type PayoutModel,
  publishLinkInvalidation,
  type Sql,
} from '../../infra/index.ts';
import {
  currency,
  type HandlerArgs,
  httpUrl,
  minorUnits,
  notFound,
  offsetOf,
  paged,
  pageQuery,
  type Route,
  route,
} from '../http.ts';
import { emit } from '../publish.ts';
import type { Principal } from '../types.ts';
import { createLink, linkView } from './links.ts';

type Status = CampaignStatus;

/** Allowed status transitions; `archived` is final. */
export const TRANSITIONS: Record<Status, Status[]> = {
  draft: ['active', 'archived'],
  active: ['paused', 'archived'],
  paused: ['active', 'archived'],
  archived: [],
};

export interface CampaignRow {
  id: number;
  advertiser_id: number;
  website_id: number | null;
  name: string;
  destination_url: string;
  fallback_url: string | null;
  payout_model: PayoutModel;
  currency: string;
  payout_amount: number;
  revenue_amount: number;
  payout_percent_bp: number | null;
  revenue_percent_bp: number | null;
  goals: Array<{ goal: string; payout_amount?: number; revenue_amount?: number }>;
  budget: number | null;
  daily_cap: number | null;
  attribution_window_days: number;
  hold_days: number;
  allowed_countries: string[];
  allowed_devices: string[];
  visibility: 'public' | 'private';
  status: Status;
  created_at: Date;
  updated_at: Date;
}

/**
 * The API view of a campaign. `payout`/`revenue` are minor units, except for RevShare where they
 * are percents of the sale (from basis points). Affiliates do not see the advertiser's revenue.
 */
function campaignView(c: CampaignRow, user: Principal, membership?: string | null) {
  const rev = c.payout_model === 'RevShare';
  const v: Record<string, unknown> = {
    id: c.id,
    advertiser_id: c.advertiser_id,
    website_id: c.website_id,
    name: c.name,
    destination_url: c.destination_url,
    fallback_url: c.fallback_url,
    payout_model: c.payout_model,
    payout: rev ? (c.payout_percent_bp ?? 0) / 100 : c.payout_amount,
    revenue: rev ? (c.revenue_percent_bp ?? 0) / 100 : c.revenue_amount,
    currency: c.currency,
    budget: c.budget,
    daily_cap: c.daily_cap,
    attribution_window_days: c.attribution_window_days,
    hold_days: c.hold_days,
    goals: c.goals.map((g) => ({ goal: g.goal, payout: g.payout_amount, revenue: g.revenue_amount })),
    allowed_countries: c.allowed_countries,
    allowed_devices: c.allowed_devices,
    visibility: c.visibility,
    status: c.status,
    created_at: c.created_at,
    updated_at: c.updated_at,
  };
  if (user.role === 'affiliate') {
    delete v.revenue;
    delete v.budget;
    v.goals = c.goals.map((g) => ({ goal: g.goal, payout: g.payout_amount }));
    v.membership = membership ?? null;
  }
  return v;
}

/**
 * Loads a campaign the caller may see: admins any; advertisers their own; affiliates active ones
 * and those they are members of. @throws NOT_FOUND otherwise.
 */
export async function visibleCampaign(
  sql: Sql,
  id: number,
  user: Principal,
): Promise<{ c: CampaignRow; membership: string | null }> {
  const [c] = await sql<(CampaignRow & { membership: string | null })[]>`
    select c.*, m.status as membership from campaigns c
    left join campaign_affiliates m on m.campaign_id = c.id and m.affiliate_id = ${user.user_id}
    where c.id = ${id}`;
  if (!c) return notFound('campaign');
  const { membership, ...row } = c;
  if (user.role === 'advertiser' && c.advertiser_id !== user.user_id) return notFound('campaign');
  // Affiliates reach any active campaign by id (a private one is shared by invitation and needs
  // approval to join); lists show them only public ones and their own.
  if (user.role === 'affiliate' && c.status !== 'active' && !(membership === 'approved' || membership === 'pending'))
    return notFound('campaign');
  return { c: row, membership };
}

/** Owner (advertiser) or admin; @throws NOT_FOUND / FORBIDDEN. */
async function ownedCampaign(sql: Sql, id: number, user: Principal): Promise<CampaignRow> {
  const { c } = await visibleCampaign(sql, id, user);
  if (user.role === 'affiliate') throw new AppError('FORBIDDEN', 'only the advertiser can change this campaign');
  return c;
}

const goal = z.object({
  goal: z.string().trim().min(1).max(100),
  payout: minorUnits.optional(),
  revenue: minorUnits.optional(),
});
const country = z
  .string()
  .regex(/^[A-Z]{2}$/, 'must be an ISO 3166-1 alpha-2 code')
  .max(2);
const device = z.enum(['desktop', 'mobile', 'tablet', 'ios', 'android', 'other']);

const campaignFields = {
  name: z.string().trim().min(1).max(200),
  destination_url: httpUrl,
  fallback_url: httpUrl.nullable().optional(),
  payout: z.number().min(0).max(Number.MAX_SAFE_INTEGER),
  revenue: z.number().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  budget: minorUnits.nullable().optional(),
  daily_cap: minorUnits.nullable().optional(),
  attribution_window_days: z.number().int().min(1).max(365).optional(),
  hold_days: z.number().int().min(0).max(365).optional(),
  goals: z.array(goal).max(50).optional(),
  allowed_countries: z.array(country).max(250).optional(),
  allowed_devices: z.array(device).max(10).optional(),
  visibility: z.enum(['public', 'private']).optional(),
};

const createBody = z
  .object({
    website_id: z.number().int().min(1),
    payout_model: z.enum(PAYOUT_MODELS),
    currency,
    ...campaignFields,
  })
  .superRefine((b, ctx) => {
    for (const k of ['payout', 'revenue'] as const) {
      const v = b[k];
      if (v === undefined) continue;
      if (b.payout_model === 'RevShare') {
        if (v > 100 || Math.round(v * 100) !== v * 100)
          ctx.addIssue({ code: 'custom', path: [k], message: 'RevShare: a percent 0..100 with at most 2 decimals' });
      } else if (!Number.isInteger(v))
        ctx.addIssue({ code: 'custom', path: [k], message: 'must be integer minor units' });
    }
  });

/** Splits payout/revenue into the storage columns by model. */
function moneyColumns(model: CampaignRow['payout_model'], payout?: number, revenue?: number) {
  if (model === 'RevShare')
    return {
      payout_percent_bp: payout === undefined ? undefined : Math.round(payout * 100),
      revenue_percent_bp: revenue === undefined ? undefined : Math.round(revenue * 100),
    };
  return { payout_amount: payout, revenue_amount: revenue };
}

async function checkFunds(a: HandlerArgs<unknown, unknown>, advertiserId: number, cur: string, budget?: number | null) {
  if (!a.deps.ledger || budget === undefined || budget === null) return;
  const available = await a.deps.ledger.availableBalance(advertiserId, cur);
  if (available < budget)
    throw new AppError('INSUFFICIENT_FUNDS', 'wallet balance does not cover the campaign budget', {
      budget,
      available,
      currency: cur,
    });
}

export function campaignRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/campaigns',
      summary: 'List campaigns (advertisers: own; affiliates: active public ones and those joined; admins: all)',
      tag: 'campaigns',
      auth: ['admin', 'advertiser', 'affiliate'],
      scope: 'campaigns:read',
      query: pageQuery.extend({ status: z.enum(CAMPAIGN_STATUSES).optional() }),
      async handler({ deps: { sql }, user, query }) {
        const scope =
          user.role === 'admin'
            ? sql`true`
            : user.role === 'advertiser'
              ? sql`c.advertiser_id = ${user.user_id}`
              : sql`((c.visibility = 'public' and c.status = 'active') or m.status in ('approved', 'pending'))`;
        const st = query.status ? sql`c.status = ${query.status}` : sql`true`;
        const rows = await sql<(CampaignRow & { membership: string | null; total: number })[]>`
          select c.*, m.status as membership, count(*) over ()::int8 as total from campaigns c
          left join campaign_affiliates m on m.campaign_id = c.id and m.affiliate_id = ${user.user_id}
          where ${scope} and ${st} order by c.id desc limit ${query.per_page} offset ${offsetOf(query)}`;
        const total =
          rows[0]?.total ??
          (
            await sql`select 1 from campaigns c left join campaign_affiliates m
              on m.campaign_id = c.id and m.affiliate_id = ${user.user_id} where ${scope} and ${st}`
          ).count;
        return paged(
          rows.map(({ membership, total: _t, ...c }) => campaignView(c, user, membership)),
          total,
          query,
        );
      },
    }),
    route({
      method: 'get',
      path: '/campaigns/:id',
      summary: 'One campaign',
      tag: 'campaigns',
      auth: ['admin', 'advertiser', 'affiliate'],
      scope: 'campaigns:read',
      async handler({ deps: { sql }, user, params }) {
        const { c, membership } = await visibleCampaign(sql, params.id!, user);
        return { data: campaignView(c, user, membership) };
      },
    }),
    route({
      method: 'post',
      path: '/campaigns',
      summary: 'Create a campaign (draft) on an approved website; the wallet must cover the budget',
      tag: 'campaigns',
      auth: ['advertiser'],
      scope: 'campaigns:write',
      body: createBody,
      example: {
        website_id: 1,
        name: 'Spring sale',
        destination_url: 'https://shop.example.com/landing?cid={click_id}&s1={sub1}',
        payout_model: 'CPA',
        payout: 500,
        revenue: 800,
        currency: 'USD',
        budget: 100000,
        daily_cap: 10000,
        attribution_window_days: 30,
        goals: [{ goal: 'purchase', payout: 700, revenue: 1000 }],
        allowed_countries: ['US', 'CA'],
        allowed_devices: ['mobile', 'desktop'],
        fallback_url: 'https://shop.example.com/',
      },
      async handler(a) {
        const { deps, user, body } = a;
        const [w] = await deps.sql<{ advertiser_id: number; status: string }[]>`
          select advertiser_id, status from websites where id = ${body.website_id}`;
        if (!w || w.advertiser_id !== user.user_id) return notFound('website');
        if (w.status !== 'approved')
          throw new AppError('INVALID_STATE', 'the website must be approved before it can carry campaigns');
        await checkFunds(a, user.user_id, body.currency, body.budget);
        const m = moneyColumns(body.payout_model, body.payout, body.revenue ?? 0);
        const goals = (body.goals ?? []).map((g) => ({
          goal: g.goal,
          ...(g.payout === undefined ? {} : { payout_amount: g.payout }),
          ...(g.revenue === undefined ? {} : { revenue_amount: g.revenue }),
        }));
        const [c] = await deps.sql<CampaignRow[]>`
          insert into campaigns (advertiser_id, website_id, name, destination_url, fallback_url, payout_model, currency,
            payout_amount, revenue_amount, payout_percent_bp, revenue_percent_bp, goals, budget, daily_cap,
            attribution_window_days, hold_days, allowed_countries, allowed_devices, visibility)
          values (${user.user_id}, ${body.website_id}, ${body.name}, ${body.destination_url}, ${body.fallback_url ?? null},
            ${body.payout_model}, ${body.currency}, ${m.payout_amount ?? 0}, ${m.revenue_amount ?? 0},
            ${m.payout_percent_bp ?? null}, ${m.revenue_percent_bp ?? null}, ${deps.sql.json(goals)},
            ${body.budget ?? null}, ${body.daily_cap ?? null},
            ${body.attribution_window_days ?? deps.config.ATTRIBUTION_WINDOW_DAYS}, ${body.hold_days ?? 0},
            ${body.allowed_countries ?? []}, ${body.allowed_devices ?? []}, ${body.visibility ?? 'public'})
          returning *`;
        return { status: 201, data: campaignView(c!, user) };
      },
    }),
    route({
      method: 'patch',
      path: '/campaigns/:id',
      summary: 'Change a campaign (owner or admin); trackers are told at once',
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      scope: 'campaigns:write',
      body: z.object(campaignFields).partial().strict(),
      example: { name: 'Spring sale (extended)', daily_cap: 20000 },
      async handler(a) {
        const { deps, services, user, params, body } = a;
        const c = await ownedCampaign(deps.sql, params.id!, user);
        if (c.status === 'archived') throw new AppError('INVALID_STATE', 'archived campaigns cannot change');
        const rev = c.payout_model === 'RevShare';
        for (const k of ['payout', 'revenue'] as const) {
          const v = body[k];
          if (v === undefined) continue;
          if (rev ? v > 100 || Math.round(v * 100) !== v * 100 : !Number.isInteger(v))
            throw new AppError('VALIDATION_ERROR', 'request validation failed', {
              [k]: [rev ? 'RevShare: a percent 0..100 with at most 2 decimals' : 'must be integer minor units'],
            });
        }
        // An active campaign already holds its reservation: the ledger reserves only the difference below.
        const resync = deps.ledger !== undefined && c.status === 'active';
        if (resync && body.budget === null && c.budget !== null)
          throw new AppError(
            'INVALID_STATE',
            'pause the campaign before removing its budget (releases the reservation)',
          );
        if (!resync && body.budget !== undefined && body.budget !== null && body.budget > (c.budget ?? 0))
          await checkFunds(a, c.advertiser_id, c.currency, body.budget);
        const m = moneyColumns(c.payout_model, body.payout, body.revenue);
        const patch: Record<string, unknown> = {};
        for (const k of [
          'name',
          'destination_url',
          'fallback_url',
          'budget',
          'daily_cap',
          'attribution_window_days',
          'hold_days',
          'allowed_countries',
          'allowed_devices',
          'visibility',
        ] as const)
          if (body[k] !== undefined) patch[k] = body[k];
        for (const [k, v] of Object.entries(m)) if (v !== undefined) patch[k] = v;
        if (body.goals)
          patch.goals = deps.sql.json(
            body.goals.map((g) => ({
              goal: g.goal,
              ...(g.payout === undefined ? {} : { payout_amount: g.payout }),
              ...(g.revenue === undefined ? {} : { revenue_amount: g.revenue }),
            })),
          );
        if (Object.keys(patch).length === 0) return { data: campaignView(c, user) };
        const [u] = await deps.sql<CampaignRow[]>`
          update campaigns set ${deps.sql(patch as Record<string, never>)}, updated_at = now()
          where id = ${c.id} returning *`;
        // An active campaign's reservation follows its budget (raised: reserve more; lowered: release).
        if (resync && deps.ledger && body.budget !== undefined && body.budget !== c.budget) {
          try {
            await deps.ledger.activateCampaign(c.id);
          } catch (err) {
            // Keep the stored budget and the reservation in step: the new budget cannot be reserved.
            await deps.sql`update campaigns set budget = ${c.budget}, updated_at = now() where id = ${c.id}`;
            throw err;
          }
        }
        await publishLinkInvalidation(deps.redis, services.keys, { campaign_id: c.id });
        return { data: campaignView(u!, user) };
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/status',
      summary: 'Change status: draft→active|archived, active→paused|archived, paused→active|archived',
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      scope: 'campaigns:write',
      body: z.object({ status: z.enum(['active', 'paused', 'archived']) }),
      example: { status: 'active' },
      async handler({ deps, services, user, params, body }) {
        const c = await ownedCampaign(deps.sql, params.id!, user);
        if (!TRANSITIONS[c.status].includes(body.status))
          throw new AppError('INVALID_STATE', `cannot change a ${c.status} campaign to ${body.status}`, {
            from: c.status,
            to: body.status,
            allowed: TRANSITIONS[c.status],
          });
        let u: CampaignRow;
        if (deps.ledger) {
          // The ledger sets the status in the same transaction that reserves (active) or releases
          // (paused/archived) the budget; INSUFFICIENT_FUNDS / BUDGET_EXHAUSTED leave everything as it was.
          if (body.status === 'active') await deps.ledger.activateCampaign(c.id);
          else await deps.ledger.stopCampaign(c.id, body.status);
          const [row] = await deps.sql<CampaignRow[]>`select * from campaigns where id = ${c.id}`;
          if (!row) return notFound('campaign');
          u = row;
          await deps.sql`insert into campaign_status_events (campaign_id, from_status, to_status, actor_id)
                         values (${c.id}, ${c.status}, ${body.status}, ${user.user_id})`;
        } else {
          u = await deps.sql.begin(async (tx) => {
            const [row] = await tx<CampaignRow[]>`update campaigns set status = ${body.status}, updated_at = now()
              where id = ${c.id} and status = ${c.status} returning *`;
            if (!row) throw new AppError('CONFLICT', 'the campaign changed meanwhile; retry');
            await tx`insert into campaign_status_events (campaign_id, from_status, to_status, actor_id)
                     values (${c.id}, ${c.status}, ${body.status}, ${user.user_id})`;
            return row;
          });
        }
        await publishLinkInvalidation(deps.redis, services.keys, { campaign_id: c.id });
        const members = await deps.sql<{ affiliate_id: number }[]>`
          select affiliate_id from campaign_affiliates where campaign_id = ${c.id} and status = 'approved'`;
        // With a ledger, the ledger has already told the advertiser (after its commit).
        const audience = [...(deps.ledger ? [] : [c.advertiser_id]), ...members.map((m) => m.affiliate_id)];
        if (audience.length > 0)
          await emit(deps.redis, services.keys, 'campaign.status_changed', audience, {
            campaign_id: c.id,
            from: c.status,
            to: body.status,
          });
        return { data: campaignView(u, user) };
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/join',
      summary: 'Join a campaign (affiliate): public → approved with a default link; private → pending',
      tag: 'campaigns',
      auth: ['affiliate'],
      async handler({ deps, services, user, params }) {
        const { c, membership } = await visibleCampaign(deps.sql, params.id!, user);
        if (membership === 'approved' || membership === 'pending')
          throw new AppError('CONFLICT', `already ${membership === 'approved' ? 'a member' : 'waiting for approval'}`);
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
        return { status: 201, data: { campaign_id: c.id, status, link: link && linkView(deps, link) } };
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/leave',
      summary: "Leave a campaign (affiliate); disables the affiliate's links to it",
      tag: 'campaigns',
      auth: ['affiliate'],
      async handler({ deps, services, user, params }) {
        const { c, membership } = await visibleCampaign(deps.sql, params.id!, user);
        if (membership !== 'approved' && membership !== 'pending')
          throw new AppError('INVALID_STATE', 'you are not a member of this campaign');
        const codes = await deps.sql.begin(async (tx) => {
          await tx`update campaign_affiliates set status = 'left', updated_at = now()
                   where campaign_id = ${c.id} and affiliate_id = ${user.user_id}`;
          return tx<{ code: string }[]>`update links set status = 'disabled'
            where campaign_id = ${c.id} and affiliate_id = ${user.user_id} and status = 'active' returning code`;
        });
        for (const { code } of codes) await publishLinkInvalidation(deps.redis, services.keys, { code });
        return { data: { campaign_id: c.id, status: 'left', disabled_links: codes.length } };
      },
    }),
    route({
      method: 'get',
      path: '/campaigns/:id/affiliates',
      summary: 'Affiliates of a campaign and their membership status (owner or admin)',
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      query: pageQuery,
      async handler({ deps: { sql }, user, params, query }) {
        const c = await ownedCampaign(sql, params.id!, user);
        const rows = await sql<{ total: number }[]>`
          select m.affiliate_id, u.name, m.status, m.created_at, m.updated_at, count(*) over ()::int8 as total
          from campaign_affiliates m join users u on u.id = m.affiliate_id
          where m.campaign_id = ${c.id} order by m.created_at limit ${query.per_page} offset ${offsetOf(query)}`;
        return paged(
          rows.map(({ total: _t, ...r }) => r),
          rows[0]?.total ?? 0,
          query,
        );
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/affiliates/:affiliate_id/approve',
      summary: "Approve an affiliate's request to join a private campaign (creates its default link)",
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      async handler({ deps, services, user, params }) {
        const c = await ownedCampaign(deps.sql, params.id!, user);
        const [m] = await deps.sql`update campaign_affiliates set status = 'approved', updated_at = now()
          where campaign_id = ${c.id} and affiliate_id = ${params.affiliate_id!} and status = 'pending' returning affiliate_id`;
        if (!m) return notFound('pending membership');
        const link = await createLink(deps, services, c, params.affiliate_id!, {});
        await emit(deps.redis, services.keys, 'partnership.created', [c.advertiser_id, params.affiliate_id!], {
          campaign_id: c.id,
          affiliate_id: params.affiliate_id,
          status: 'approved',
        });
        return {
          data: {
            campaign_id: c.id,
            affiliate_id: params.affiliate_id,
            status: 'approved',
            link: linkView(deps, link),
          },
        };
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/affiliates/:affiliate_id/reject',
      summary: "Reject an affiliate's request to join a private campaign",
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      async handler({ deps, user, params }) {
        const c = await ownedCampaign(deps.sql, params.id!, user);
        const [m] = await deps.sql`update campaign_affiliates set status = 'rejected', updated_at = now()
          where campaign_id = ${c.id} and affiliate_id = ${params.affiliate_id!} and status = 'pending' returning affiliate_id`;
        if (!m) return notFound('pending membership');
        return { data: { campaign_id: c.id, affiliate_id: params.affiliate_id, status: 'rejected' } };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
