import { z } from 'zod';
import { AppError, ERROR_STATUS, type Sql } from '../../infra/index.ts';
import type { AnalyticsScope } from '../../tracker/index.ts';
import { analystScope } from '../domain/analysts/analyst-scope.ts';
import { testModeCampaignIds } from '../domain/reports/scope-report-query.ts';
import { type Route, route } from '../http.ts';
import { hashPassword } from '../security.ts';
import type { Principal } from '../types.ts';

const ids = z.array(z.number().int().min(1).max(Number.MAX_SAFE_INTEGER)).max(1000).default([]);

/**
 * The scope of an analytics query: admins and unscoped analysts see the network, an analyst with rows in
 * `analyst_scopes` those advertisers' and campaigns' rows, live callers never the test-mode campaigns' rows; test-mode
 * API keys see nothing.
 */
async function scopeOf(sql: Sql, user: Principal): Promise<AnalyticsScope> {
  if (user.mode === 'test') return { advertiserIds: [], campaignIds: [] };
  // ClickHouse holds no mode: live callers never read the test-mode (sandbox) campaigns' rows.
  const excludeCampaignIds = await testModeCampaignIds(sql);
  const scope = await analystScope(sql, user);
  if (!scope) return { advertiserIds: [], campaignIds: [], network: true, excludeCampaignIds };
  return { ...scope, excludeCampaignIds };
}

/** Replaces an analyst's scope. @throws AppError NOT_FOUND for an unknown advertiser or campaign. */
async function setScope(sql: Sql, analystId: number, advertiserIds: number[], campaignIds: number[]): Promise<void> {
  const adv = await sql`select id from users where role = 'advertiser' and id = any(${advertiserIds}::bigint[])`;
  if (adv.length !== new Set(advertiserIds).size) throw new AppError('NOT_FOUND', 'advertiser not found');
  const camp = await sql`select id from campaigns where id = any(${campaignIds}::bigint[])`;
  if (camp.length !== new Set(campaignIds).size) throw new AppError('NOT_FOUND', 'campaign not found');
  await sql`delete from analyst_scopes where analyst_id = ${analystId}`;
  for (const a of new Set(advertiserIds))
    await sql`insert into analyst_scopes (analyst_id, advertiser_id) values (${analystId}, ${a})`;
  for (const c of new Set(campaignIds))
    await sql`insert into analyst_scopes (analyst_id, campaign_id) values (${analystId}, ${c})`;
}

export const analyticsQueryBody = z.object({
  sql: z.string().min(1).max(100_000),
  params: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.union([z.string().max(10_000), z.number(), z.boolean()]))
    .default({}),
  format: z.enum(['json', 'csv']).default('json'),
});

/** Analysts (admin-created, read-only) and read-only SQL over ClickHouse (issue 19). */
export function analyticsRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'post',
      path: '/analysts',
      summary: 'Create an analyst (read-only role), network-wide or scoped to advertisers and/or campaigns',
      tag: 'analytics',
      auth: ['admin'],
      body: z.object({
        name: z.string().trim().min(1).max(200),
        email: z.email().max(254),
        password: z.string().min(10).max(200),
        advertiser_ids: ids,
        campaign_ids: ids,
      }),
      example: { name: 'Ana Lyst', email: 'analyst@example.com', password: 'correct-horse-9', advertiser_ids: [] },
      async handler({ deps: { sql }, body }) {
        const hash = await hashPassword(body.password);
        const analyst = await sql.begin(async (tx) => {
          const [dup] = await tx`select id from users where lower(email) = lower(${body.email})`;
          if (dup) throw new AppError('CONFLICT', 'email already registered');
          const [u] = await tx<{ id: number; role: string; name: string; email: string; created_at: Date }[]>`
            insert into users (role, name, email, password_hash) values ('analyst', ${body.name}, ${body.email}, ${hash})
            returning id, role, name, email, created_at`;
          await setScope(tx as unknown as Sql, u!.id, body.advertiser_ids, body.campaign_ids);
          return u!;
        });
        return {
          status: 201,
          data: { ...analyst, advertiser_ids: body.advertiser_ids, campaign_ids: body.campaign_ids },
        };
      },
    }),
    route({
      method: 'put',
      path: '/analysts/:id/scope',
      summary: "Replace an analyst's scope (both lists empty → network-wide)",
      tag: 'analytics',
      auth: ['admin'],
      body: z.object({ advertiser_ids: ids, campaign_ids: ids }),
      example: { advertiser_ids: [], campaign_ids: [] },
      async handler({ deps: { sql }, params, body }) {
        await sql.begin(async (tx) => {
          const [a] = await tx`select id from users where id = ${params.id!} and role = 'analyst' for update`;
          if (!a) throw new AppError('NOT_FOUND', 'analyst not found');
          await setScope(tx as unknown as Sql, params.id!, body.advertiser_ids, body.campaign_ids);
        });
        return { data: { id: params.id, advertiser_ids: body.advertiser_ids, campaign_ids: body.campaign_ids } };
      },
    }),
    route({
      method: 'post',
      path: '/analytics/query',
      summary:
        'Read-only SQL over the ClickHouse tables (README "For analysts"): JSON (columns with types) or CSV, streamed',
      tag: 'analytics',
      auth: ['admin', 'analyst'],
      scope: 'analytics:query',
      // A read; its own `analytics.query` row below records it with the SQL.
      audit: false,
      body: analyticsQueryBody,
      produces: ['text/csv'],
      example: { sql: 'SELECT count() AS clicks FROM clicks', params: {}, format: 'json' },
      async handler({ ctx, deps, user, body }) {
        if (!deps.analytics) throw new AppError('SERVICE_UNAVAILABLE', 'analytics are not available');
        const scope = await scopeOf(deps.sql, user);
        const audit = (outcome: string, extra: Record<string, unknown>) =>
          deps.sql`insert into audit_log (user_id, api_key_id, action, ip, request_id, status, detail)
            values (${user.user_id}, ${user.api_key_id ?? null}, 'analytics.query', ${ctx.state.clientIp || null},
                    ${ctx.state.requestId ?? null}, ${outcome === 'ok' ? 200 : (ERROR_STATUS[extra.code as keyof typeof ERROR_STATUS] ?? 500)},
                    ${deps.sql.json({ sql: body.sql, params: body.params, format: body.format, scope: scope ?? null, outcome, ...extra } as never)})`;
        let result: Awaited<ReturnType<typeof deps.analytics.run>>;
        try {
          result = await deps.analytics.run({ ...body, scope });
        } catch (err) {
          const code = err instanceof AppError ? err.code : 'INTERNAL_ERROR';
          await audit('refused', { code });
          throw err;
        }
        await audit('ok', { tables: result.tables });
        ctx.type = result.contentType;
        ctx.body = result.body;
        return undefined;
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
