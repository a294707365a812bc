import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { AppError, LINK_CODE_RE, LINK_CODE_RULE, publishLinkInvalidation } from '../../infra/index.ts';
import { type ApiServices, offsetOf, paged, pageQuery, type Route, route } from '../http.ts';
import type { ApiDeps } from '../types.ts';
import { visibleCampaign } from './campaigns.ts';

export interface LinkRow {
  id: number;
  code: string;
  campaign_id: number;
  affiliate_id: number;
  sub1: string | null;
  sub2: string | null;
  sub3: string | null;
  sub4: string | null;
  sub5: string | null;
  status: 'active' | 'disabled';
  created_at: Date;
}

const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

/** A random 8-character link code (57^8 ≈ 1.1e14 codes). */
function randomCode(): string {
  const b = randomBytes(8);
  let s = '';
  for (const x of b) s += ALPHABET[x % ALPHABET.length];
  return s;
}

/** Public tracking URL of a code: `${PUBLIC_TRACKER_URL ?? http://localhost:TRACKER_PORT}/c/<code>`. */
export function trackingUrl(deps: ApiDeps, code: string): string {
  const base = deps.config.PUBLIC_TRACKER_URL ?? `http://localhost:${deps.config.TRACKER_PORT}`;
  return `${base.replace(/\/$/, '')}/c/${code}`;
}

export function linkView(deps: ApiDeps, l: LinkRow) {
  return { ...l, url: trackingUrl(deps, l.code) };
}

type Subs = Partial<Record<'sub1' | 'sub2' | 'sub3' | 'sub4' | 'sub5', string>>;

/**
 * Inserts a link and tells the trackers (a code may sit in their negative cache).
 * @throws AppError CONFLICT when a custom code is taken.
 */
export async function createLink(
  deps: ApiDeps,
  services: ApiServices,
  c: { id: number },
  affiliateId: number,
  opts: Subs & { code?: string },
): Promise<LinkRow> {
  for (let attempt = 0; ; attempt++) {
    const code = opts.code ?? randomCode();
    try {
      const [l] = await deps.sql<LinkRow[]>`
        insert into links (code, campaign_id, affiliate_id, sub1, sub2, sub3, sub4, sub5)
        values (${code}, ${c.id}, ${affiliateId}, ${opts.sub1 ?? null}, ${opts.sub2 ?? null}, ${opts.sub3 ?? null},
                ${opts.sub4 ?? null}, ${opts.sub5 ?? null})
        returning *`;
      await publishLinkInvalidation(deps.redis, services.keys, { code });
      return l!;
    } catch (e) {
      if ((e as { code?: string }).code !== '23505') throw e;
      if (opts.code) throw new AppError('CONFLICT', 'this link code is taken');
      if (attempt >= 4) throw e;
    }
  }
}

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
        const rows = await sql<(LinkRow & { total: number })[]>`
          select *, count(*) over ()::int8 as total from links where ${own} and ${camp}
          order by id desc limit ${query.per_page} offset ${offsetOf(query)}`;
        const total = rows[0]?.total ?? (await sql`select 1 from links where ${own} and ${camp}`).count;
        return paged(
          rows.map(({ total: _t, ...l }) => linkView(deps, l)),
          total,
          query,
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
