import { z } from 'zod';
import { AppError, LINK_CODE_RE, LINK_CODE_RULE } from '../../infra/index.ts';
import { visibleCampaign } from '../domain/campaigns/visible-campaign.ts';
import { createLink } from '../domain/links/create-link.ts';
import { type LinkRow, linkView } from '../domain/links/link-view.ts';
import { pageQuery, type Route, route } from '../http.ts';
import { pagedQuery } from '../paging.ts';

const sub = z.string().max(255).optional();

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
      summary: 'Create a tracking link for a joined campaign, with default sub-ids and an optional custom code',
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
      }),
      example: { campaign_id: 1, sub1: 'newsletter', code: 'spring-nl' },
      async handler({ deps, services, user, body }) {
        const { c, membership } = await visibleCampaign(deps.sql, body.campaign_id, user);
        if (membership !== 'approved') throw new AppError('FORBIDDEN', 'join the campaign first');
        if (c.status === 'archived') throw new AppError('INVALID_STATE', 'the campaign is archived');
        const { campaign_id: _c, ...opts } = body;
        const l = await createLink(deps, services, c, user.user_id, opts);
        return { status: 201, data: linkView(deps, l) };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
