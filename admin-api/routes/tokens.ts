import { z } from 'zod';
import { AppError, publishPostbackInvalidation } from '../../infra/index.ts';
import { revokeToken } from '../domain/tokens/revoke-token.ts';
import { API_SCOPES, pageQuery, type Route, route } from '../http.ts';
import { pagedQuery } from '../paging.ts';
import { randomToken, sha256 } from '../security.ts';
import { ROLES } from '../types.ts';

/** Postback tokens (conversion endpoint auth) and API keys: random, shown once, SHA-256 at rest. */
export function tokenRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'post',
      path: '/postback-tokens',
      summary: 'Create a postback token for the conversion endpoint (shown once)',
      tag: 'postback-tokens',
      auth: ['advertiser'],
      async handler({ deps: { sql }, user }) {
        const token = `pbt_${randomToken(32)}`;
        const [t] = await sql<{ id: number; prefix: string; created_at: Date }[]>`
          insert into postback_tokens (advertiser_id, token_hash, prefix)
          values (${user.user_id}, ${sha256(token)}, ${token.slice(0, 8)}) returning id, prefix, created_at`;
        return { status: 201, data: { ...t!, token } };
      },
    }),
    route({
      method: 'get',
      path: '/postback-tokens',
      summary: "The advertiser's postback tokens (without the secret)",
      tag: 'postback-tokens',
      auth: ['advertiser'],
      query: pageQuery,
      async handler({ deps: { sql }, user, query }) {
        return pagedQuery(sql, query, {
          columns: sql`id, prefix, created_at, last_used_at, revoked_at`,
          from: sql`postback_tokens`,
          where: sql`advertiser_id = ${user.user_id}`,
          orderBy: sql`id desc`,
        });
      },
    }),
    route({
      method: 'delete',
      path: '/postback-tokens/:id',
      summary: 'Revoke a postback token',
      tag: 'postback-tokens',
      auth: ['advertiser'],
      async handler({ deps: { sql, redis }, services, user, params }) {
        const revoked = await revokeToken(sql, 'postback token', params.id!, user.user_id);
        // Every tracker drops the advertiser's cached tokens now, not when their cache entry expires.
        await publishPostbackInvalidation(redis, services.keys, user.user_id);
        return { data: revoked };
      },
    }),
    route({
      method: 'post',
      path: '/api-keys',
      summary: 'Create an API key (live_/test_, shown once) with scopes',
      tag: 'api-keys',
      auth: ROLES,
      body: z.object({
        name: z.string().trim().min(1).max(100),
        scopes: z.array(z.enum(API_SCOPES)).min(1).max(API_SCOPES.length),
        mode: z.enum(['live', 'test']).default('live'),
      }),
      example: { name: 'reporting job', scopes: ['reports:read', 'campaigns:read'], mode: 'live' },
      async handler({ deps: { sql }, user, body }) {
        if (user.kind !== 'session') throw new AppError('FORBIDDEN', 'API keys cannot create API keys');
        const key = `${body.mode}_${randomToken(32)}`;
        const [k] = await sql`insert into api_keys (user_id, name, mode, prefix, key_hash, scopes)
          values (${user.user_id}, ${body.name}, ${body.mode}, ${key.slice(0, 9)}, ${sha256(key)}, ${[...new Set(body.scopes)]})
          returning id, name, mode, prefix, scopes, created_at`;
        return { status: 201, data: { ...k!, key } };
      },
    }),
    route({
      method: 'get',
      path: '/api-keys',
      summary: 'Your API keys (without the secret), with last-used time',
      tag: 'api-keys',
      auth: ROLES,
      query: pageQuery,
      async handler({ deps: { sql }, user, query }) {
        return pagedQuery(sql, query, {
          columns: sql`id, name, mode, prefix, scopes, created_at, last_used_at, revoked_at`,
          from: sql`api_keys`,
          where: sql`user_id = ${user.user_id}`,
          orderBy: sql`id desc`,
        });
      },
    }),
    route({
      method: 'delete',
      path: '/api-keys/:id',
      summary: 'Revoke an API key',
      tag: 'api-keys',
      auth: ROLES,
      async handler({ deps: { sql }, user, params }) {
        return { data: await revokeToken(sql, 'API key', params.id!, user.user_id) };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
