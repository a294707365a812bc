import { z } from 'zod';
import { AppError, LINK_CODE_RE, LINK_CODE_RULE, publishLinkInvalidation } from '../../infra/index.ts';
import { checkPin } from '../domain/campaigns/landing-pages.ts';
import { visibleCampaign } from '../domain/campaigns/visible-campaign.ts';
import { createLink } from '../domain/links/create-link.ts';
import { type LinkRow, linkView } from '../domain/links/link-view.ts';
import { notFound, pageQuery, type Route, route } from '../http.ts';
import { pagedQuery } from '../paging.ts';

const sub = z.string().max(255).optional();
/** A landing page of the link's campaign that every click of the link gets (null: the campaign's rotation). */
const landingPageId = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).nullable();

export function linkRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/affiliate/links',
      summary: "The affiliate's tracking links (admins: all)",
      tag: 'links',
      auth: ['admin', 'affiliate'],
      scope: 'links:read',
      query: pageQuery.extend({ campaign_id: z.coerce.number().int().min(1).optional() }),
      async handler({ deps, user, query }) {
        const { sql } = deps;
        const own = user.role === 'admin' ? sql`true` : sql`affiliate_id = ${user.user_id}`;
        const camp = query.campaign_id ? sql`campaign_id = ${query.campaign_id}` : sql`true`;
        // A link takes its campaign's mode: test-mode keys list test-mode links only, everyone else live ones.
        const mode = sql`campaign_id in (select id from campaigns where mode = ${user.mode})`;
        return pagedQuery<LinkRow>(
          sql,
          query,
          { columns: sql`*`, from: sql`links`, where: sql`${own} and ${camp} and ${mode}`, orderBy: sql`id desc` },
          (l) => linkView(deps, l),
        );
      },
    }),
    route({
      method: 'post',
      path: '/affiliate/links',
      summary:
        'Create a tracking link for a joined campaign, with default sub-ids, an optional custom code and an optional ' +
        'pinned landing page (an active one of that campaign)',
      tag: 'links',
      auth: ['affiliate'],
      scope: 'links:write',
      body: z.object({
        campaign_id: z.number().int().min(1),
        code: z.string().regex(LINK_CODE_RE, LINK_CODE_RULE).optional(),
        sub1: sub,
        sub2: sub,
        sub3: sub,
        sub4: sub,
        sub5: sub,
        landing_page_id: landingPageId.optional(),
      }),
      example: { campaign_id: 1, sub1: 'newsletter', code: 'spring-nl' },
      async handler({ deps, services, user, body }) {
        const { c, membership } = await visibleCampaign(deps.sql, body.campaign_id, user);
        if (membership !== 'approved') throw new AppError('FORBIDDEN', 'join the campaign first');
        if (c.status === 'archived') throw new AppError('INVALID_STATE', 'the campaign is archived');
        await checkPin(deps.sql, c.id, body.landing_page_id);
        const { campaign_id: _c, ...opts } = body;
        const l = await createLink(deps, services, c, user.user_id, opts);
        return { status: 201, data: linkView(deps, l) };
      },
    }),
    route({
      method: 'patch',
      path: '/affiliate/links/:id',
      summary:
        'Pin a landing page on a link, or unpin it with null (the affiliate owning the link, or an admin): only an ' +
        "active landing page of the link's campaign; trackers are told at once",
      tag: 'links',
      auth: ['admin', 'affiliate'],
      scope: 'links:write',
      body: z.object({ landing_page_id: landingPageId }).strict(),
      example: { landing_page_id: null },
      async handler({ deps, services, user, params, body }) {
        const { sql } = deps;
        const own = user.role === 'admin' ? sql`true` : sql`l.affiliate_id = ${user.user_id}`;
        const [l] = await sql<LinkRow[]>`
          select l.* from links l join campaigns c on c.id = l.campaign_id
          where l.id = ${params.id!} and ${own} and c.mode = ${user.mode}`;
        if (!l) return notFound('link');
        await checkPin(sql, l.campaign_id, body.landing_page_id);
        const [u] = await sql<LinkRow[]>`
          update links set landing_page_id = ${body.landing_page_id} where id = ${l.id} returning *`;
        await publishLinkInvalidation(deps.redis, services.keys, { code: l.code });
        return { data: linkView(deps, u!) };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
