/**
 * Admin REST API (Koa, `/api/v1`): auth, 2FA, sessions, API keys, websites, campaigns, links,
 * postback tokens, reports, wallet & ledger operations, live events (SSE).
 */
export { API_PREFIX, type ApiApp, createApi, type RunningApi, startApi } from './app.ts';
export { createAdmin } from './create-admin.ts';
export { API_SCOPES, type ApiScope, type Route } from './http.ts';
export { buildOpenApi } from './openapi.ts';
export { allRoutes } from './routes/index.ts';
export { hashPassword } from './security.ts';
export type {
  ApiDeps,
  Principal,
  ReportGroupBy,
  ReportQuery,
  ReportRow,
  Reports,
  Role,
} from './types.ts';
