import { z } from 'zod';
import {
  MAX_ALLOWLIST_ENTRIES,
  normaliseAllowlistEntry,
  parsePostbackRefusal,
  publishPostbackInvalidation,
  validationError,
} from '../../infra/index.ts';
import { type Route, route } from '../http.ts';

const STREAM_ID_RE = /^\d{1,20}-\d{1,20}$/;

/**
 * An advertiser's postback IP allowlist (per advertiser, as Everflow and TUNE keep it: one list covers every token,
 * so rotating a token never reopens the door) and the postbacks it refused. The tracker reads the list with the
 * token and matches it in-process; a change is published to every tracker at once (`keys.postbackInvalidation`).
 */
export function postbackAllowlistRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/postback-allowlist',
      summary: 'The IPs and CIDR ranges your postbacks may come from (empty: any address)',
      tag: 'postback-tokens',
      auth: ['advertiser'],
      async handler({ deps: { sql }, user }) {
        const [row] = await sql<{ entries: string[]; updated_at: Date }[]>`
          select entries, updated_at from postback_ip_allowlists where advertiser_id = ${user.user_id}`;
        return { data: { entries: row?.entries ?? [], updated_at: row?.updated_at ?? null } };
      },
    }),
    route({
      method: 'put',
      path: '/postback-allowlist',
      summary: `Replace the postback IP allowlist: IPv4/IPv6 addresses or CIDR ranges, at most ${MAX_ALLOWLIST_ENTRIES}; [] allows any address`,
      tag: 'postback-tokens',
      auth: ['advertiser'],
      body: z.object({ entries: z.array(z.string().max(64)).max(MAX_ALLOWLIST_ENTRIES) }),
      example: { entries: ['203.0.113.7', '198.51.100.0/24', '2001:db8::/32'] },
      async handler({ deps: { sql, redis }, services, user, body }) {
        const bad: Record<string, string> = {};
        const entries: string[] = [];
        body.entries.forEach((raw, i) => {
          const r = normaliseAllowlistEntry(raw);
          if ('error' in r) bad[`entries.${i}`] = r.error;
          else if (!entries.includes(r.entry)) entries.push(r.entry);
        });
        if (Object.keys(bad).length > 0) throw validationError(bad);
        const [row] = await sql<{ entries: string[]; updated_at: Date }[]>`
          insert into postback_ip_allowlists (advertiser_id, entries) values (${user.user_id}, ${entries})
          on conflict (advertiser_id) do update set entries = excluded.entries, updated_at = now()
          returning entries, updated_at`;
        await publishPostbackInvalidation(redis, services.keys, user.user_id);
        return { data: row };
      },
    }),
    route({
      method: 'get',
      path: '/postback-allowlist/refusals',
      summary: 'Your postbacks refused by the allowlist (403 IP_NOT_ALLOWED), newest first; the last 1,000 are kept',
      tag: 'postback-tokens',
      auth: ['advertiser'],
      query: z.object({
        limit: z.coerce.number().int().min(1).max(100).default(50),
        cursor: z.string().regex(STREAM_ID_RE, 'must be a next_cursor from a previous page').optional(),
      }),
      async handler({ deps: { redis }, services, user, query }) {
        const rows = (await redis.xrevrange(
          services.keys.postbackRefusals(user.user_id),
          query.cursor === undefined ? '+' : `(${query.cursor}`,
          '-',
          'COUNT',
          query.limit,
        )) as Array<[string, string[]]>;
        const data = rows.map(([id, fields]) => {
          const r = parsePostbackRefusal(fields);
          return { id, ip: r.ip, token_prefix: r.token_prefix, received_at: new Date(r.received_ms).toISOString() };
        });
        const next = rows.length === query.limit ? rows[rows.length - 1]![0] : null;
        return { data, meta: { limit: query.limit, next_cursor: next } };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
