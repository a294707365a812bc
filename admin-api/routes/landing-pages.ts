/**
 * A campaign's landing pages (split tests, issue #16 item 4): the tracker sends each click that reaches the campaign
 * to one of its active pages, page i with probability weight_i / the sum of the weights, and records it as the
 * click's `landing_id`; a link may pin one page (`PATCH /affiliate/links/:id`). Every change is published as a
 * campaign invalidation, so trackers load the new rotation with the next click.
 */
import { z } from 'zod';
import { AppError, publishLinkInvalidation } from '../../infra/index.ts';
import type { CampaignRow } from '../domain/campaigns/campaign-view.ts';
import { checkDestinations, landingPageNeedsReview, sendBackToReview } from '../domain/campaigns/destination.ts';
import { type LandingPageRow, landingPageOf, MAX_ACTIVE_LANDING_PAGES } from '../domain/campaigns/landing-pages.ts';
import { ownedCampaign, visibleCampaign } from '../domain/campaigns/visible-campaign.ts';
import { type ApiServices, type HandlerArgs, httpUrl, pageQuery, type Route, route } from '../http.ts';
import { pagedQuery } from '../paging.ts';
import type { ApiDeps, Principal } from '../types.ts';

const fields = {
  name: z.string().trim().min(1).max(200),
  // Macros and hosts as for destination_url: approved website (or a subdomain) or an admin-approved host.
  url: httpUrl,
  weight: z.number().int().min(0).max(10_000),
};

/** The campaign of a write: its owner's or any for an admin, not archived. @throws NOT_FOUND, FORBIDDEN, INVALID_STATE */
async function changeableCampaign({ deps, user, params }: HandlerArgs<unknown, unknown>): Promise<CampaignRow> {
  const c = await ownedCampaign(deps.sql, params.id!, user);
  if (c.status === 'archived') throw new AppError('INVALID_STATE', 'archived campaigns cannot change');
  return c;
}

/**
 * After a page's URL was set: when its host sends the campaign back to review ({@link landingPageNeedsReview}),
 * marks the review and pauses an active campaign until an admin activates it; then tells the trackers.
 */
async function afterChange(
  deps: ApiDeps,
  services: ApiServices,
  user: Principal,
  c: CampaignRow,
  url: string | undefined,
): Promise<void> {
  if (landingPageNeedsReview(c, user, url)) {
    const [u] = await deps.sql<CampaignRow[]>`
      update campaigns set destination_review_at = now(), updated_at = now() where id = ${c.id} returning *`;
    await sendBackToReview(deps, services, user, u!);
  }
  await publishLinkInvalidation(deps.redis, services.keys, { campaign_id: c.id });
}

export function landingPageRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/campaigns/:id/landing-pages',
      summary:
        "A campaign's landing pages with their weights (owner, admins, and affiliates that joined it: they read, " +
        'never change them)',
      tag: 'campaigns',
      auth: ['admin', 'advertiser', 'affiliate'],
      scope: 'campaigns:read',
      query: pageQuery.extend({ status: z.enum(['active', 'archived']).optional() }),
      async handler({ deps: { sql }, user, params, query }) {
        const { c, membership } = await visibleCampaign(sql, params.id!, user);
        if (user.role === 'affiliate' && membership !== 'approved')
          throw new AppError('FORBIDDEN', 'join the campaign first');
        const st = query.status ? sql`status = ${query.status}` : sql`true`;
        return pagedQuery<LandingPageRow>(sql, query, {
          columns: sql`*`,
          from: sql`campaign_landing_pages`,
          where: sql`campaign_id = ${c.id} and ${st}`,
          orderBy: sql`id`,
        });
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/landing-pages',
      summary:
        'Add a landing page to the rotation (owner or admin): weight 0..10000 (default 1; 0 keeps it but never ' +
        `serves it), at most ${MAX_ACTIVE_LANDING_PAGES} active per campaign; its host must be the campaign's ` +
        'website (or a subdomain) or admin-approved (422 DESTINATION_NOT_APPROVED); the owner putting a page on ' +
        "another host than destination_url's pauses a live campaign until an admin activates it",
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      scope: 'campaigns:write',
      body: z.object({ ...fields, weight: fields.weight.default(1) }).strict(),
      example: { name: 'Variant B', url: 'https://shop.example.com/b?cid={click_id}&s1={sub1}', weight: 50 },
      async handler(a) {
        const { deps, services, body } = a;
        const c = await changeableCampaign(a as HandlerArgs<unknown, unknown>);
        await checkDestinations(deps.sql, c, body, ['url']);
        const p = await deps.sql.begin(async (tx) => {
          // The campaign row's lock orders concurrent additions, so the cap holds.
          await tx`select id from campaigns where id = ${c.id} for update`;
          const [n] = await tx<{ n: number }[]>`
            select count(*)::int as n from campaign_landing_pages where campaign_id = ${c.id} and status = 'active'`;
          if (n!.n >= MAX_ACTIVE_LANDING_PAGES)
            throw new AppError(
              'INVALID_STATE',
              `a campaign has at most ${MAX_ACTIVE_LANDING_PAGES} active landing pages`,
            );
          const [row] = await tx<LandingPageRow[]>`
            insert into campaign_landing_pages (campaign_id, name, url, weight)
            values (${c.id}, ${body.name}, ${body.url}, ${body.weight}) returning *`;
          return row!;
        });
        await afterChange(deps, services, a.user, c, body.url);
        return { status: 201, data: p };
      },
    }),
    route({
      method: 'patch',
      path: '/campaigns/:id/landing-pages/:landing_page_id',
      summary:
        "Change a landing page's name, URL or weight (owner or admin); trackers are told at once; a URL on another " +
        "host than destination_url's sends a live campaign back to review, as on create",
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      scope: 'campaigns:write',
      body: z.object(fields).partial().strict(),
      example: { weight: 200 },
      async handler(a) {
        const { deps, services, params, body } = a;
        const c = await changeableCampaign(a as HandlerArgs<unknown, unknown>);
        const p = await landingPageOf(deps.sql, c.id, params.landing_page_id!);
        if (p.status === 'archived') throw new AppError('INVALID_STATE', 'archived landing pages cannot change');
        await checkDestinations(deps.sql, c, body, ['url']);
        if (Object.keys(body).length === 0) return { data: p };
        const [u] = await deps.sql<LandingPageRow[]>`
          update campaign_landing_pages set ${deps.sql(body as Record<string, never>)}, updated_at = now()
          where id = ${p.id} returning *`;
        await afterChange(
          deps,
          services,
          a.user,
          c,
          body.url === undefined || body.url === p.url ? undefined : body.url,
        );
        return { data: u };
      },
    }),
    route({
      method: 'post',
      path: '/campaigns/:id/landing-pages/:landing_page_id/archive',
      summary:
        'Archive a landing page (owner or admin): it leaves the rotation, links pinned to it rotate; its clicks and ' +
        'reports stay',
      tag: 'campaigns',
      auth: ['admin', 'advertiser'],
      scope: 'campaigns:write',
      async handler(a) {
        const { deps, services, params } = a;
        const c = await changeableCampaign(a);
        const p = await landingPageOf(deps.sql, c.id, params.landing_page_id!);
        if (p.status === 'archived') return { data: p };
        const [u] = await deps.sql<LandingPageRow[]>`
          update campaign_landing_pages set status = 'archived', updated_at = now() where id = ${p.id} returning *`;
        await publishLinkInvalidation(deps.redis, services.keys, { campaign_id: c.id });
        return { data: u };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
