import type { AddressInfo } from 'node:net';
import { Router } from '@koa/router';
import Koa, { type Context, type Next } from 'koa';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { z } from 'zod';
import {
  AppError,
  createMetricsRegistry,
  errorBody,
  isRetriable,
  loadSecretKey,
  type Registry,
  redisKeys,
  runReadyChecks,
  UUID_RE,
  zodDetails,
} from '../infra/index.ts';
import { auditMiddleware } from './audit.ts';
import { clientIp, trustedProxies } from './client-ip.ts';
import { dashboardMiddleware } from './dashboard/serve.ts';
import { encryptPlainTotpSecrets } from './domain/auth/encrypt-plain-totp-secrets.ts';
import { type ApiServices, type HandlerResult, idParam, MAX_BODY_BYTES, parse, type Route } from './http.ts';
import { createApiMetrics } from './metrics.ts';
import { buildOpenApi } from './openapi.ts';
import { allRoutes } from './routes/index.ts';
import { authenticate, requireAdminTwoFactor, resolveJwtSecret, Tokens } from './security.ts';
import { EventHub } from './sse.ts';
import type { ApiDeps, Principal } from './types.ts';

/** Base path of every route. */
export const API_PREFIX = '/api/v1';

/** The Koa app plus a shutdown hook for what it owns (the SSE subscriber connection) and its metrics registry. */
export type ApiApp = Koa & { shutdown(): Promise<void>; services: ApiServices; registry: Registry };

/**
 * Reads the request body as JSON, refusing more than MAX_BODY_BYTES and non-JSON media types; with `csv`
 * a `text/csv` body is accepted too and converted by it.
 */
async function readJson(ctx: Context, csv?: (text: string) => unknown): Promise<unknown> {
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > MAX_BODY_BYTES) throw new AppError('PAYLOAD_TOO_LARGE', `body exceeds ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new AppError('PAYLOAD_TOO_LARGE', `body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  if (csv && ctx.is('text/csv')) return csv(Buffer.concat(chunks).toString('utf8'));
  if (!ctx.is('application/json'))
    throw new AppError(
      'UNSUPPORTED_MEDIA_TYPE',
      csv ? 'request body must be application/json or text/csv' : 'request body must be application/json',
    );
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new AppError('BAD_REQUEST', 'request body is not valid JSON');
  }
}

function bearer(ctx: Context): string | undefined {
  const h = ctx.get('authorization');
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m?.[1];
}

/** Wraps one route: authentication, role and scope checks, input validation, envelope. */
function handle(route: Route<unknown, unknown>, deps: ApiDeps, services: ApiServices) {
  const paramSchema = z.record(z.string(), idParam);
  const uuidNames = route.uuidParams ?? [];
  return async (ctx: Context) => {
    // Only read by handlers of non-public routes, where it is always set below.
    let user = undefined as unknown as Principal;
    if (route.auth !== 'public') {
      const cred = route.path === '/events/stream' ? (bearer(ctx) ?? String(ctx.query.token ?? '')) : bearer(ctx);
      if (!cred) throw new AppError('UNAUTHORIZED', 'authentication required');
      user = await authenticate(deps.sql, services.tokens, cred);
      // Set before the role and scope checks: a refused call is audited as the caller's.
      ctx.state.user = user;
      if (user.kind === 'api_key' && (!route.scope || !user.scopes?.includes(route.scope)))
        throw new AppError(
          'FORBIDDEN',
          route.scope ? `API key lacks scope ${route.scope}` : 'API keys cannot call this route',
        );
      if (!route.auth.includes(user.role)) throw new AppError('FORBIDDEN', 'your role cannot call this route');
      await requireAdminTwoFactor(deps.sql, deps.config, user, route);
    }
    // Every path param is an integer id except `sid` (a session uuid the handler checks itself).
    // Names in `uuidParams` are UUIDs (ledger transfers, conversions).
    const { sid: _sid, ...rawParams } = (ctx as Context & { params?: Record<string, string> }).params ?? {};
    const uuids: Record<string, string> = {};
    for (const name of uuidNames) {
      const v = rawParams[name] ?? '';
      delete rawParams[name];
      if (!UUID_RE.test(v)) throw new AppError('NOT_FOUND', 'not found', { [name]: ['must be a UUID'] });
      uuids[name] = v.toLowerCase();
    }
    const pr = paramSchema.safeParse(rawParams);
    if (!pr.success) throw new AppError('NOT_FOUND', 'not found', zodDetails(pr.error));
    const query = route.query ? parse(route.query, ctx.query) : undefined;
    const raw = ctx.method === 'GET' || ctx.method === 'DELETE' ? undefined : await readJson(ctx, route.csv);
    const body = route.body ? parse(route.body, raw ?? {}) : undefined;
    const result: HandlerResult | undefined = await route.handler({
      ctx,
      deps,
      services,
      body,
      query,
      params: pr.data,
      uuids,
      user,
    });
    if (result === undefined) return;
    ctx.status = result.status ?? 200;
    ctx.body = { success: true, data: result.data, ...(result.meta ? { meta: result.meta } : {}) };
  };
}

/**
 * Builds the admin API (Koa app, routes under `/api/v1`). Middleware order: envelope errors →
 * rate limit (headers on every response) → routes.
 */
export function createApi(deps: ApiDeps): ApiApp {
  const log = deps.logger.child({ module: 'admin-api' });
  const app = new Koa({ proxy: false }) as ApiApp;
  const registry = deps.registry ?? createMetricsRegistry();
  const keys = redisKeys(deps.config.REDIS_PREFIX);
  const services: ApiServices = {
    tokens: new Tokens(resolveJwtSecret(deps.config), deps.config.JWT_ISSUER, deps.config.JWT_AUDIENCE),
    keys,
    hub: new EventHub(deps.redis, keys, log, deps.sseHeartbeatMs ?? 15_000),
    totpKey: loadSecretKey(deps.config, 'TOTP_SECRET_KEY', 'totp-secret.key'),
    metrics: createApiMetrics(registry),
  };
  app.services = services;
  app.registry = registry;
  app.shutdown = () => services.hub.close();

  // Outermost: times every answer, errors included.
  app.use(services.metrics.middleware);

  // Outside the error middleware, so it sees each answer's final status; writes the audit row of a state change.
  const routes = allRoutes();
  const unaudited = new Set(
    routes.filter((r) => r.audit === false).map((r) => `${r.method.toUpperCase()} ${API_PREFIX}${r.path}`),
  );
  app.use(auditMiddleware(deps.sql, log, registry, unaudited));

  // One place that writes errors (EXAMPLES.md #4).
  app.use(async (ctx: Context, next: Next) => {
    try {
      await next();
      if (ctx.body === undefined && ctx.respond !== false) {
        if (ctx.status === 404) throw new AppError('NOT_FOUND', 'route not found');
        if (ctx.status === 405 || ctx.status === 501) throw new AppError('METHOD_NOT_ALLOWED', 'method not allowed');
      }
    } catch (caught) {
      // An outage of Postgres/Redis is the client's cue to retry, not a bug: 503, no internals.
      const err =
        !(caught instanceof AppError) && isRetriable(caught)
          ? new AppError('SERVICE_UNAVAILABLE', 'a dependency is unavailable; retry later', undefined, {
              'Retry-After': '5',
            })
          : caught;
      if (err !== caught) log.warn({ err: caught, method: ctx.method, path: ctx.path }, 'dependency unavailable');
      const { status, body, headers } = errorBody(err);
      if (status >= 500 && err === caught) log.error({ err, method: ctx.method, path: ctx.path }, 'request failed');
      ctx.status = status;
      ctx.body = body;
      for (const [k, v] of Object.entries(headers ?? {})) ctx.set(k, v);
    }
  });

  // Operations endpoints outside /api/v1, before the rate limit (probes and scrapers must not spend a client's
  // budget, nor be refused by it) and without the envelope: /healthz liveness, /readyz dependencies, /metrics.
  const readyChecks = {
    redis: () => deps.redis.ping(),
    postgres: () => deps.sql`select 1`,
    ...deps.readyChecks,
  };
  app.use(async (ctx: Context, next: Next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    if (ctx.path === '/healthz') ctx.body = { status: 'ok' };
    else if (ctx.path === '/readyz') {
      const r = await runReadyChecks(readyChecks);
      ctx.status = r.ready ? 200 : 503;
      ctx.body = r;
    } else if (ctx.path === '/metrics') {
      ctx.type = registry.contentType;
      ctx.body = await registry.metrics();
    } else return next();
    ctx.set('Cache-Control', 'no-store');
  });

  // The dashboard's page and files (./dashboard/serve.ts), also outside the rate limit: loading the page must not
  // spend the budget its API calls need.
  app.use(dashboardMiddleware(log));

  const proxies = trustedProxies(deps.config.TRUSTED_PROXIES);
  app.use(async (ctx: Context, next: Next) => {
    ctx.state.clientIp = clientIp(ctx, proxies);
    await next();
  });

  const limiter = new RateLimiterRedis({
    storeClient: deps.redis,
    keyPrefix: keys.key('ratelimit'),
    points: deps.config.RATE_LIMIT_POINTS,
    duration: deps.config.RATE_LIMIT_WINDOW_S,
  });
  // Keyed by client address: it runs before authentication so floods never reach the database.
  app.use(async (ctx: Context, next: Next) => {
    const limit = deps.config.RATE_LIMIT_POINTS;
    let res: RateLimiterRes;
    try {
      res = await limiter.consume(ctx.state.clientIp || 'unknown');
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      const reset = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
      ctx.set('RateLimit-Limit', String(limit));
      ctx.set('RateLimit-Remaining', '0');
      ctx.set('RateLimit-Reset', String(reset));
      throw new AppError('RATE_LIMITED', 'too many requests', undefined, { 'Retry-After': String(reset) });
    }
    ctx.set('RateLimit-Limit', String(limit));
    ctx.set('RateLimit-Remaining', String(res.remainingPoints));
    ctx.set('RateLimit-Reset', String(Math.max(1, Math.ceil(res.msBeforeNext / 1000))));
    await next();
  });

  const router = new Router({ prefix: API_PREFIX });
  const openapi = buildOpenApi(routes, API_PREFIX);
  router.get('/openapi.json', (ctx) => {
    ctx.body = openapi;
  });
  for (const r of routes) router[r.method](r.path, handle(r as Route<unknown, unknown>, deps, services));
  app.use(router.routes());
  // Sets 405 + Allow (or 501); the error middleware turns the empty answer into the envelope.
  app.use(router.allowedMethods());
  return app;
}

/** A running API server. */
export interface RunningApi {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Encrypts any TOTP secret still stored in plain text, then starts the API on `port` (default
 * `config.API_PORT`; 0 = any free port) at `config.BIND_HOST`.
 * `close()` ends open SSE streams, the subscriber connection and the HTTP server.
 */
export async function startApi(deps: ApiDeps, opts: { port?: number } = {}): Promise<RunningApi> {
  const app = createApi(deps);
  // Rows from before migration 00005 hold plain TOTP secrets: none may remain once the API has started.
  const encrypted = await encryptPlainTotpSecrets(deps.sql, app.services.totpKey).catch(async (err) => {
    await app.shutdown();
    throw err;
  });
  if (encrypted > 0) deps.logger.child({ module: 'admin-api' }).info({ encrypted }, 'encrypted plain TOTP secrets');
  const server = app.listen(opts.port ?? deps.config.API_PORT, deps.config.BIND_HOST);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const host = deps.config.BIND_HOST.includes(':') ? `[${deps.config.BIND_HOST}]` : deps.config.BIND_HOST;
  return {
    url: `http://${host}:${port}`,
    port,
    async close() {
      await app.shutdown();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
