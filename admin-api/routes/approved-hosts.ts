import { z } from 'zod';
import { AppError } from '../../infra/index.ts';
import { hasUrlControl, notFound, pageQuery, type Route, route } from '../http.ts';
import { pagedQuery } from '../paging.ts';

/**
 * A bare host name as `approved_hosts` stores it: what the WHATWG parser makes of `https://<host>/` (lower case,
 * punycode), no port, path, user info or trailing dot, at least two labels.
 */
const hostName = z
  .string()
  .trim()
  .min(1)
  .max(253)
  .transform((s, ctx) => {
    let h: string | null = null;
    // The parser would drop tab/CR/LF silently; a host name has no controls or spaces at all.
    if (!hasUrlControl(s) && !s.includes(' '))
      try {
        const u = new URL(`https://${s}/`);
        if (u.host === u.hostname && u.pathname === '/' && u.username === '' && u.search === '' && u.hash === '')
          h = u.hostname;
      } catch {}
    if (h !== null && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(h)) return h;
    ctx.addIssue({ code: 'custom', message: 'must be a host name such as go.example.com (no scheme, port or path)' });
    return z.NEVER;
  });

export function approvedHostRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/approved-hosts',
      summary:
        "Hosts an admin approved as campaign destinations besides each campaign's own website (admin; each " +
        'covers its subdomains too)',
      tag: 'approved-hosts',
      auth: ['admin'],
      query: pageQuery,
      async handler({ deps: { sql }, query }) {
        return pagedQuery(sql, query, {
          columns: sql`id, host, reason, created_by, created_at`,
          from: sql`approved_hosts`,
          where: sql`true`,
          orderBy: sql`host`,
        });
      },
    }),
    route({
      method: 'post',
      path: '/approved-hosts',
      summary:
        'Approve a host (and its subdomains) as a destination for any campaign (admin); 409 CONFLICT if listed already',
      tag: 'approved-hosts',
      auth: ['admin'],
      body: z.object({ host: hostName, reason: z.string().trim().min(1, 'a reason is required').max(500) }),
      example: { host: 'go.partner.example', reason: 'partner landing pages, contract 2026-11' },
      async handler({ deps: { sql }, user, body }) {
        const [row] = await sql`
          insert into approved_hosts (host, reason, created_by) values (${body.host}, ${body.reason}, ${user.user_id})
          on conflict (host) do nothing
          returning id, host, reason, created_by, created_at`;
        if (!row) throw new AppError('CONFLICT', `${body.host} is approved already`);
        return { status: 201, data: row };
      },
    }),
    route({
      method: 'delete',
      path: '/approved-hosts/:id',
      summary:
        'Withdraw a host approval (admin); campaigns pointing there keep running, new destinations there are refused',
      tag: 'approved-hosts',
      auth: ['admin'],
      async handler({ deps: { sql }, params }) {
        const [row] = await sql`delete from approved_hosts where id = ${params.id!} returning id`;
        if (!row) return notFound('approved host');
        return { data: { deleted: true } };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
