import { z } from 'zod';
import { revokeToken } from '../domain/tokens/revoke-token.ts';
import { hasUrlControl, notFound, pageQuery, type Route, route } from '../http.ts';
import { pagedQuery } from '../paging.ts';
import { randomToken } from '../security.ts';

/** Hosts that may be served over plain http (a developer's machine); every other origin must be https. */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * One allowed origin, stored as browsers send it in `Origin` (the WHATWG parser's origin: lower case, punycode, no
 * default port): `https://host[:port]` with no path, query, fragment or user info (a trailing `/` is dropped), or
 * `http://` for localhost, 127.0.0.1 and [::1].
 */
const originSchema = z
  .string()
  .trim()
  .min(1)
  .max(300)
  .transform((s, ctx) => {
    let o: string | null = null;
    // The parser forgives a lot (`https:host`, an empty `?`, a backslash); an origin is written plainly.
    if (!hasUrlControl(s) && !/[\s?#@\\]/.test(s) && /^https?:\/\/[^/]/i.test(s))
      try {
        const u = new URL(s);
        const bare = u.pathname === '/' && !/^https?:\/\/[^/]+\/./i.test(s);
        const secure = u.protocol === 'https:' || (u.protocol === 'http:' && LOOPBACK_HOSTS.has(u.hostname));
        if (bare && secure) o = u.origin;
      } catch {}
    if (o !== null) return o;
    ctx.addIssue({
      code: 'custom',
      message: 'must be an origin such as https://shop.example.com (https; http only for localhost and 127.0.0.1)',
    });
    return z.NEVER;
  });

const origins = z
  .array(originSchema)
  .min(1)
  .max(20)
  .transform((a) => [...new Set(a)]);

const COLUMNS = 'id, name, mode, key, allowed_origins, created_at, last_used_at, revoked_at';

/**
 * Publishable keys (`pk_live_…` / `pk_test_…`): what an advertiser's pages use to report conversions from the browser
 * (the tracker's `POST /api/v1/track/conversion/browser` and pixel), valid only from the listed origins. Public by
 * design, so stored and listed whole (unlike postback tokens); revoked like them. The tracker caches a key for 30 s,
 * so a revocation or an origin change takes effect within that.
 */
export function publishableKeyRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'post',
      path: '/publishable-keys',
      summary: 'Create a publishable key (pk_live_/pk_test_) for browser conversions from the listed origins',
      tag: 'publishable-keys',
      auth: ['advertiser'],
      body: z.object({
        name: z.string().trim().min(1).max(100),
        mode: z.enum(['live', 'test']).default('live'),
        allowed_origins: origins,
      }),
      example: { name: 'shop checkout', mode: 'live', allowed_origins: ['https://shop.example.com'] },
      async handler({ deps: { sql }, user, body }) {
        const key = `pk_${body.mode}_${randomToken(32)}`;
        const [k] = await sql`insert into publishable_keys (advertiser_id, mode, key, name, allowed_origins)
          values (${user.user_id}, ${body.mode}, ${key}, ${body.name}, ${body.allowed_origins})
          returning ${sql.unsafe(COLUMNS)}`;
        return { status: 201, data: k };
      },
    }),
    route({
      method: 'get',
      path: '/publishable-keys',
      summary: "The advertiser's publishable keys with their origins (keys are public: listed whole)",
      tag: 'publishable-keys',
      auth: ['advertiser'],
      query: pageQuery,
      async handler({ deps: { sql }, user, query }) {
        return pagedQuery(sql, query, {
          columns: sql.unsafe(COLUMNS),
          from: sql`publishable_keys`,
          where: sql`advertiser_id = ${user.user_id}`,
          orderBy: sql`id desc`,
        });
      },
    }),
    route({
      method: 'patch',
      path: '/publishable-keys/:id',
      summary: "Rename a publishable key or replace its allowed origins (the tracker's cache takes up to 30 s)",
      tag: 'publishable-keys',
      auth: ['advertiser'],
      body: z
        .object({ name: z.string().trim().min(1).max(100).optional(), allowed_origins: origins.optional() })
        .refine((b) => b.name !== undefined || b.allowed_origins !== undefined, 'name or allowed_origins is required'),
      example: { allowed_origins: ['https://shop.example.com', 'https://checkout.example.com'] },
      async handler({ deps: { sql }, user, params, body }) {
        const [k] = await sql`update publishable_keys
          set name = coalesce(${body.name ?? null}, name),
              allowed_origins = coalesce(${body.allowed_origins ?? null}::text[], allowed_origins)
          where id = ${params.id!} and advertiser_id = ${user.user_id}
          returning ${sql.unsafe(COLUMNS)}`;
        return { data: k ?? notFound('publishable key') };
      },
    }),
    route({
      method: 'delete',
      path: '/publishable-keys/:id',
      summary: 'Revoke a publishable key',
      tag: 'publishable-keys',
      auth: ['advertiser'],
      async handler({ deps: { sql }, user, params }) {
        return { data: await revokeToken(sql, 'publishable key', params.id!, user.user_id) };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
