import { z } from 'zod';
import { AppError, type Sql } from '../../infra/index.ts';
import { httpUrl, notFound, pageQuery, type Route, route } from '../http.ts';
import { pagedQuery } from '../paging.ts';
import { emit } from '../publish.ts';
import type { Principal } from '../types.ts';

interface WebsiteRow {
  id: number;
  advertiser_id: number;
  url: string;
  name: string;
  status: 'pending' | 'approved' | 'rejected';
  reject_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

/**
 * Loads a website the caller may see: admins any, advertisers their own.
 * @throws AppError NOT_FOUND otherwise (no hint that another tenant's id exists).
 */
async function visibleWebsite(sql: Sql, id: number, user: Principal): Promise<WebsiteRow> {
  const [w] = await sql<WebsiteRow[]>`select * from websites where id = ${id}`;
  if (!w || (user.role !== 'admin' && w.advertiser_id !== user.user_id)) return notFound('website');
  return w;
}

async function setStatus(
  sql: Sql,
  w: WebsiteRow,
  from: WebsiteRow['status'][],
  to: WebsiteRow['status'],
  actorId: number,
  reason: string | null,
): Promise<WebsiteRow> {
  return sql.begin(async (tx) => {
    const [u] = await tx<WebsiteRow[]>`
      update websites set status = ${to}, reject_reason = ${reason}, updated_at = now()
      where id = ${w.id} and status = any(${from}) returning *`;
    if (!u) throw new AppError('INVALID_STATE', `website is ${w.status}; cannot change it to ${to}`);
    await tx`insert into website_status_events (website_id, status, reason, actor_id)
             values (${w.id}, ${to}, ${reason}, ${actorId})`;
    return u;
  });
}

export function websiteRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/websites',
      summary: 'List websites (own for advertisers, all for admins)',
      tag: 'websites',
      auth: ['admin', 'advertiser'],
      scope: 'websites:read',
      query: pageQuery.extend({ status: z.enum(['pending', 'approved', 'rejected']).optional() }),
      async handler({ deps: { sql }, user, query }) {
        const own = user.role === 'admin' ? sql`true` : sql`advertiser_id = ${user.user_id}`;
        const st = query.status ? sql`status = ${query.status}` : sql`true`;
        return pagedQuery<WebsiteRow>(sql, query, {
          columns: sql`*`,
          from: sql`websites`,
          where: sql`${own} and ${st}`,
          orderBy: sql`id desc`,
        });
      },
    }),
    route({
      method: 'get',
      path: '/websites/:id',
      summary: 'One website, with its status history',
      tag: 'websites',
      auth: ['admin', 'advertiser'],
      scope: 'websites:read',
      async handler({ deps: { sql }, user, params }) {
        const w = await visibleWebsite(sql, params.id!, user);
        const history = await sql`select status, reason, actor_id, created_at from website_status_events
                                  where website_id = ${w.id} order by id`;
        return { data: { ...w, history } };
      },
    }),
    route({
      method: 'post',
      path: '/websites',
      summary: 'Submit a website for approval (status pending)',
      tag: 'websites',
      auth: ['advertiser'],
      body: z.object({ url: httpUrl, name: z.string().trim().min(1).max(200) }),
      example: { url: 'https://shop.example.com', name: 'Example shop' },
      async handler({ deps: { sql }, user, body }) {
        const w = await sql.begin(async (tx) => {
          const [w] = await tx<WebsiteRow[]>`insert into websites (advertiser_id, url, name)
            values (${user.user_id}, ${body.url}, ${body.name}) returning *`;
          await tx`insert into website_status_events (website_id, status, actor_id) values (${w!.id}, 'pending', ${user.user_id})`;
          return w!;
        });
        return { status: 201, data: w };
      },
    }),
    route({
      method: 'post',
      path: '/websites/:id/approve',
      summary: 'Approve a pending website (admin)',
      tag: 'websites',
      auth: ['admin'],
      async handler({ deps, services, user, params }) {
        const w = await visibleWebsite(deps.sql, params.id!, user);
        const u = await setStatus(deps.sql, w, ['pending'], 'approved', user.user_id, null);
        await emit(deps.redis, services.keys, 'website.approved', [w.advertiser_id], {
          website_id: w.id,
          name: w.name,
        });
        return { data: u };
      },
    }),
    route({
      method: 'post',
      path: '/websites/:id/reject',
      summary: 'Reject a pending website with a reason (admin)',
      tag: 'websites',
      auth: ['admin'],
      body: z.object({ reason: z.string().trim().min(1, 'a reason is required').max(1000) }),
      example: { reason: 'Landing page is unreachable' },
      async handler({ deps, services, user, params, body }) {
        const w = await visibleWebsite(deps.sql, params.id!, user);
        const u = await setStatus(deps.sql, w, ['pending'], 'rejected', user.user_id, body.reason);
        await emit(deps.redis, services.keys, 'website.rejected', [w.advertiser_id], {
          website_id: w.id,
          name: w.name,
          reason: body.reason,
        });
        return { data: u };
      },
    }),
    route({
      method: 'post',
      path: '/websites/:id/resubmit',
      summary: 'Resubmit a rejected website (owner)',
      tag: 'websites',
      auth: ['advertiser'],
      async handler({ deps, user, params }) {
        const w = await visibleWebsite(deps.sql, params.id!, user);
        return { data: await setStatus(deps.sql, w, ['rejected'], 'pending', user.user_id, null) };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
