import { z } from 'zod';
import { pageQuery, type Route, route } from '../http.ts';
import { pagedQuery } from '../paging.ts';

/** `GET /users`: the accounts of the platform for admins (the dashboard's user list). */
export function userRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/users',
      summary:
        'Every account (admin), newest first, with its role, status and whether 2FA is on; ?role= and ?q= filter',
      tag: 'users',
      auth: ['admin'],
      query: pageQuery.extend({
        role: z.enum(['admin', 'advertiser', 'affiliate', 'analyst']).optional(),
        q: z.string().trim().max(254).optional(),
      }),
      async handler({ deps: { sql }, query }) {
        const role = query.role ? sql`u.role = ${query.role}` : sql`true`;
        // A substring of the name or email, its LIKE wildcards taken literally.
        const like = query.q ? `%${query.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : undefined;
        const q = like ? sql`(u.name ilike ${like} or u.email ilike ${like})` : sql`true`;
        return pagedQuery(sql, query, {
          columns: sql`u.id, u.role, u.name, u.email, u.status, coalesce(t.enabled, false) as two_factor_enabled,
            u.created_at`,
          from: sql`users u left join user_two_factor t on t.user_id = u.id`,
          where: sql`${role} and ${q}`,
          orderBy: sql`u.id desc`,
        });
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
