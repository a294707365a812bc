import { z } from 'zod';
import {
  AppError,
  BROWSER_FAMILIES,
  CAMPAIGN_STATUSES,
  DEVICE_TARGETS,
  MAX_MINOR_UNITS,
  OS_FAMILIES,
  PAYOUT_MODELS,
  publishLinkInvalidation,
  validationError,
} from '../../infra/index.ts';
import { type CampaignRow, campaignView } from '../domain/campaigns/campaign-view.ts';
import {
  CAMPAIGN_CAP_KEYS,
  campaignCapFields,
  checkTimeZone,
  membershipCapsBody,
  setMembershipCaps,
} from '../domain/campaigns/caps.ts';
import { changeCampaignStatus } from '../domain/campaigns/change-status.ts';
import {
  assertReviewed,
  checkDestinations,
  clearReview,
  needsReview,
  sendBackToReview,
} from '../domain/campaigns/destination.ts';
import { decideMembership, joinCampaign, leaveCampaign } from '../domain/campaigns/memberships.ts';
import {
  checkFunds,
  marginIssues,
  moneyColumns,
  nonCashReward,
  priceIssue,
  storedGoals,
} from '../domain/campaigns/pricing.ts';
import { RECURRING_KEYS, recurringFields } from '../domain/campaigns/recurring.ts';
import { ownedCampaign, visibleCampaign } from '../domain/campaigns/visible-campaign.ts';
import { currency, type HandlerArgs, httpUrl, minorUnits, notFound, pageQuery, type Route, route } from '../http.ts';
import { pagedQuery } from '../paging.ts';

const goal = z.object({
  goal: z.string().trim().min(1).max(100),
  payout: minorUnits.optional(),
  revenue: minorUnits.optional(),
  /** A non-cash reward instead of the cash payout (README "Tiers, rewards and balances"). */
  reward: nonCashReward.optional(),
});
const country = z
  .string()
  .regex(/^[A-Z]{2}$/, 'must be an ISO 3166-1 alpha-2 code')
  .max(2);
// Targeting lists (empty = everyone), enforced by the tracker at the redirect: infra/contracts.ts §8.
const device = z.enum(DEVICE_TARGETS);
const osFamily = z.enum(OS_FAMILIES);
const browserFamily = z.enum(BROWSER_FAMILIES);

const campaignFields = {
  name: z.string().trim().min(1).max(200),
  destination_url: httpUrl,
  fallback_url: httpUrl.nullable().optional(),
  // Minor units, or a RevShare percent (checked by priceIssue); either way at most MAX_MINOR_UNITS.
  payout: z.number().min(0).max(MAX_MINOR_UNITS),
  revenue: z.number().min(0).max(MAX_MINOR_UNITS).optional(),
  budget: minorUnits.nullable().optional(),
  daily_cap: minorUnits.nullable().optional(),
  attribution_window_days: z.number().int().min(1).max(365).optional(),
  hold_days: z.number().int().min(0).max(365).optional(),
  goals: z.array(goal).max(50).optional(),
  allowed_countries: z.array(country).max(250).optional(),
  allowed_devices: z.array(device).max(10).optional(),
  allowed_os: z.array(osFamily).max(10).optional(),
  allowed_browsers: z.array(browserFamily).max(10).optional(),
  visibility: z.enum(['public', 'private']).optional(),
  // Click and conversion caps, daily in time_zone (README "Caps").
  ...campaignCapFields,
  // Renewals of a customer's subscription (README "Leads and recurring commissions").
  ...recurringFields,
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
      const issue = b[k] === undefined ? undefined : priceIssue(b.payout_model, b[k]);
      if (issue) ctx.addIssue({ code: 'custom', path: [k], message: issue });
    }
  });

/** The handler that approves or rejects an affiliate's pending request (owner or admin). */
const decide =
  (status: 'approved' | 'rejected') =>
  async ({ deps, services, user, params }: HandlerArgs<unknown, unknown>) => {
    const c = await ownedCampaign(deps.sql, params.id!, user);
    return { data: await decideMembership(deps, services, c, params.affiliate_id!, status) };
  };

export function campaignRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/campaigns',
      summary:
        'List campaigns (advertisers: own; affiliates: active public ones and those joined, a private one once approved; admins: all)',
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
              : // A private campaign only once the advertiser approved the affiliate (its own request shows nothing).
                sql`((c.visibility = 'public' and (c.status = 'active' or m.status = 'pending')) or m.status = 'approved')`;
        const st = query.status ? sql`c.status = ${query.status}` : sql`true`;
        return pagedQuery<CampaignRow & { membership: string | null }>(
          sql,
          query,
          {
            columns: sql`c.*, m.status as membership`,
            from: sql`campaigns c
              left join campaign_affiliates m on m.campaign_id = c.id and m.affiliate_id = ${user.user_id}`,
            // Test-mode keys list test-mode campaigns only, everyone else live ones only.
            where: sql`${scope} and ${st} and c.mode = ${user.mode}`,
            orderBy: sql`c.id desc`,
          },
          ({ membership, ...c }) => campaignView(c, user, membership),
        );
      },
    }),
    route({
      method: 'get',
      path: '/campaigns/:id',
      summary: 'One campaign (affiliates: a private one only once approved; 404 NOT_FOUND otherwise)',
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
      summary:
        'Create a campaign (draft) on an approved website; the wallet must cover the budget; payout ≤ revenue ' +
        'for the campaign and every goal (400 VALIDATION_ERROR on the field otherwise); destination and fallback ' +
        "hosts must be the website's (or a subdomain) or admin-approved (422 DESTINATION_NOT_APPROVED)",
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
        allowed_os: ['ios', 'android', 'windows'],
        allowed_browsers: [],
        fallback_url: 'https://shop.example.com/',
        time_zone: 'America/New_York',
        click_cap_daily: 5000,
        conversion_cap_total: 1000,
        recurring_percent_bp: 1000,
        recurring_months: 12,
      },
      async handler(a) {
        const { deps, user, body } = a;
        const [w] = await deps.sql<{ advertiser_id: number; status: string }[]>`
          select advertiser_id, status from websites where id = ${body.website_id}`;
        if (!w || w.advertiser_id !== user.user_id) return notFound('website');
        if (w.status !== 'approved')
          throw new AppError('INVALID_STATE', 'the website must be approved before it can carry campaigns');
        await checkDestinations(deps.sql, { advertiser_id: user.user_id, website_id: body.website_id }, body);
        await checkFunds(a, user.user_id, body.currency, body.budget, user.mode);
        await checkTimeZone(deps.sql, body.time_zone);
        const m = moneyColumns(body.payout_model, body.payout, body.revenue ?? 0);
        const goals = storedGoals(body.goals ?? []);
        // Only advertisers create campaigns, and an advertiser may not make the platform pay more than it earns.
        const margin = marginIssues({
          payout_model: body.payout_model,
          payout_amount: m.payout_amount ?? 0,
          revenue_amount: m.revenue_amount ?? 0,
          payout_percent_bp: m.payout_percent_bp ?? null,
          revenue_percent_bp: m.revenue_percent_bp ?? null,
          goals,
        });
        if (margin) throw validationError(margin, 'payout must not exceed revenue');
        const [c] = await deps.sql<CampaignRow[]>`
          insert into campaigns (advertiser_id, website_id, name, destination_url, fallback_url, payout_model, currency,
            payout_amount, revenue_amount, payout_percent_bp, revenue_percent_bp, goals, budget, daily_cap,
            attribution_window_days, hold_days, allowed_countries, allowed_devices, allowed_os, allowed_browsers,
            visibility, mode, time_zone, click_cap_daily, click_cap_total, conversion_cap_daily, conversion_cap_total,
            recurring_percent_bp, recurring_months)
          values (${user.user_id}, ${body.website_id}, ${body.name}, ${body.destination_url}, ${body.fallback_url ?? null},
            ${body.payout_model}, ${body.currency}, ${m.payout_amount ?? 0}, ${m.revenue_amount ?? 0},
            ${m.payout_percent_bp ?? null}, ${m.revenue_percent_bp ?? null}, ${deps.sql.json(goals)},
            ${body.budget ?? null}, ${body.daily_cap ?? null},
            ${body.attribution_window_days ?? deps.config.ATTRIBUTION_WINDOW_DAYS}, ${body.hold_days ?? 0},
            ${body.allowed_countries ?? []}, ${body.allowed_devices ?? []}, ${body.allowed_os ?? []},
            ${body.allowed_browsers ?? []}, ${body.visibility ?? 'public'}, ${user.mode}, ${body.time_zone ?? 'UTC'},
            ${body.click_cap_daily ?? null}, ${body.click_cap_total ?? null}, ${body.conversion_cap_daily ?? null},
            ${body.conversion_cap_total ?? null}, ${body.recurring_percent_bp ?? null}, ${body.recurring_months ?? null})
          returning *`;
        return { status: 201, data: campaignView(c!, user) };
      },
    }),
    route({
      method: 'patch',
      path: '/campaigns/:id',
      summary:
        'Change a campaign (owner or admin); trackers are told at once. The merged terms must keep payout ≤ ' +
        'revenue for the campaign and every goal; only an admin may set other terms, giving margin_override_reason ' +
        '(recorded on the campaign; the ledger then books its negative margins). The owner moving the destination or ' +
        'fallback host of an active or paused campaign pauses it until an admin activates it (REVIEW_REQUIRED)',
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      scope: 'campaigns:write',
      body: z
        .object(campaignFields)
        .partial()
        .extend({ margin_override_reason: z.string().trim().min(1).max(500).optional() })
        .strict(),
      example: { name: 'Spring sale (extended)', daily_cap: 20000 },
      async handler(a) {
        const { deps, services, user, params, body } = a;
        const c = await ownedCampaign(deps.sql, params.id!, user);
        if (c.status === 'archived') throw new AppError('INVALID_STATE', 'archived campaigns cannot change');
        // Only approved hosts; moving a live campaign's host (as its owner) sends it back to an admin.
        await checkDestinations(deps.sql, c, body);
        await checkTimeZone(deps.sql, body.time_zone);
        const review = needsReview(c, user, body);
        for (const k of ['payout', 'revenue'] as const) {
          const issue = body[k] === undefined ? undefined : priceIssue(c.payout_model, body[k]);
          if (issue) throw validationError({ [k]: issue });
        }
        // An active campaign already holds its reservation: the ledger reserves only the difference below.
        // A test-mode campaign holds none (the sandbox moves no live money).
        const resync = deps.ledger !== undefined && c.status === 'active' && c.mode === 'live';
        if (resync && body.budget === null && c.budget !== null)
          throw new AppError(
            'INVALID_STATE',
            'pause the campaign before removing its budget (releases the reservation)',
          );
        if (!resync && body.budget !== undefined && body.budget !== null && body.budget > (c.budget ?? 0))
          await checkFunds(a, c.advertiser_id, c.currency, body.budget, c.mode);
        const m = moneyColumns(c.payout_model, body.payout, body.revenue);
        const patch: Record<string, unknown> = {};
        if (body.margin_override_reason !== undefined && user.role !== 'admin')
          throw validationError({ margin_override_reason: 'only an admin may override the margin' });
        if (body.payout !== undefined || body.revenue !== undefined || body.goals !== undefined) {
          // The terms after this change (old ones where the body says nothing) must not pay more than they earn.
          const margin = marginIssues({
            payout_model: c.payout_model,
            payout_amount: m.payout_amount ?? c.payout_amount,
            revenue_amount: m.revenue_amount ?? c.revenue_amount,
            payout_percent_bp: m.payout_percent_bp ?? c.payout_percent_bp,
            revenue_percent_bp: m.revenue_percent_bp ?? c.revenue_percent_bp,
            goals: body.goals ? storedGoals(body.goals) : c.goals,
          });
          if (margin && (user.role !== 'admin' || body.margin_override_reason === undefined))
            throw validationError(
              user.role === 'admin'
                ? { ...margin, margin_override_reason: 'required to let payout exceed revenue' }
                : margin,
              'payout must not exceed revenue',
            );
          // The ledger books negative margins only under this record (who, why, when); fair terms clear it.
          patch.margin_override = margin
            ? deps.sql.json({ by: user.user_id, reason: body.margin_override_reason!, at: new Date().toISOString() })
            : null;
        }
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
          'allowed_os',
          'allowed_browsers',
          'visibility',
          ...CAMPAIGN_CAP_KEYS,
          ...RECURRING_KEYS,
        ] as const)
          if (body[k] !== undefined) patch[k] = body[k];
        for (const [k, v] of Object.entries(m)) if (v !== undefined) patch[k] = v;
        if (body.goals) patch.goals = deps.sql.json(storedGoals(body.goals));
        if (review) patch.destination_review_at = new Date();
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
        const after = review ? await sendBackToReview(deps, services, user, u!) : u!;
        await publishLinkInvalidation(deps.redis, services.keys, { campaign_id: c.id });
        return { data: campaignView(after, user) };
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/status',
      summary:
        'Change status: draft→active|archived, active→paused|archived, paused→active|archived; a campaign whose ' +
        'destination host awaits review is activated by an admin only (422 REVIEW_REQUIRED)',
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      scope: 'campaigns:write',
      body: z.object({ status: z.enum(['active', 'paused', 'archived']) }),
      example: { status: 'active' },
      async handler({ deps, services, user, params, body }) {
        const c = await ownedCampaign(deps.sql, params.id!, user);
        assertReviewed(c, user, body.status);
        const u = await changeCampaignStatus(deps, services, user, c, body.status);
        if (body.status === 'active') await clearReview(deps.sql, c.id);
        return { data: campaignView(u, user) };
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/join',
      summary:
        'Join a campaign (affiliate): public → approved with a default link; private → pending; after a rejection ' +
        '409 MEMBERSHIP_COOLDOWN (Retry-After) until MEMBERSHIP_REREQUEST_COOLDOWN_S has passed',
      tag: 'campaigns',
      auth: ['affiliate'],
      async handler({ deps, services, user, params }) {
        return { status: 201, data: await joinCampaign(deps, services, user, params.id!) };
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/leave',
      summary: "Leave a campaign (affiliate); disables the affiliate's links to it",
      tag: 'campaigns',
      auth: ['affiliate'],
      async handler({ deps, services, user, params }) {
        return { data: await leaveCampaign(deps, services, user, params.id!) };
      },
    }),
    route({
      method: 'get',
      path: '/campaigns/:id/affiliates',
      summary: 'Affiliates of a campaign, their membership status and caps (owner or admin)',
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      query: pageQuery,
      async handler({ deps: { sql }, user, params, query }) {
        const c = await ownedCampaign(sql, params.id!, user);
        return pagedQuery(sql, query, {
          columns: sql`m.affiliate_id, u.name, m.status, m.click_cap_daily, m.click_cap_total, m.conversion_cap_daily,
            m.conversion_cap_total, m.created_at, m.updated_at`,
          from: sql`campaign_affiliates m join users u on u.id = m.affiliate_id`,
          where: sql`m.campaign_id = ${c.id}`,
          orderBy: sql`m.created_at`,
        });
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/affiliates/:affiliate_id/approve',
      summary: "Approve an affiliate's request to join a private campaign (creates its default link)",
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      handler: decide('approved'),
    }),
    route({
      method: 'patch',
      path: '/campaigns/:id/affiliates/:affiliate_id',
      summary:
        "Set an affiliate's click and conversion caps on the campaign (owner or admin; null = no cap; daily caps " +
        "count days in the campaign's time_zone); trackers are told at once. 404 NOT_FOUND without a membership",
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      scope: 'campaigns:write',
      body: membershipCapsBody,
      example: { click_cap_daily: 1000, conversion_cap_total: 50 },
      async handler({ deps, services, user, params, body }) {
        const c = await ownedCampaign(deps.sql, params.id!, user);
        return { data: await setMembershipCaps(deps, services, c, params.affiliate_id!, body) };
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/affiliates/:affiliate_id/reject',
      summary: "Reject an affiliate's request to join a private campaign",
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      handler: decide('rejected'),
    }),
  ];
  return list as unknown as Route<never, never>[];
}
