/**
 * The API's prom-client metrics and the Koa middleware that records them. Labels are bounded: the route is the
 * @koa/router pattern (`/api/v1/campaigns/:id`), never the raw path; requests no route matched (404s, rate-limited
 * requests refused before routing) share `route="unmatched"`.
 */
import type { Context, Next } from 'koa';
import { counterOn, histogramOn, LATENCY_BUCKETS_S, type Registry } from '../infra/index.ts';

/** What the API records besides the request histogram. */
export interface ApiMetrics {
  /** Counts an account lock being set (LOGIN_MAX_FAILURES reached). */
  lockout(): void;
  /** The middleware timing every request and counting logins and rate-limit refusals; outermost. */
  middleware(ctx: Context, next: Next): Promise<void>;
}

/** The login steps: their answers are counted in `api_logins_total`. */
const LOGIN_ROUTES = new Set(['/api/v1/auth/login', '/api/v1/auth/2fa/verify-login']);

/** Outcome label of a login answer. */
function loginOutcome(ctx: Context): string {
  switch (ctx.status) {
    case 200:
      return (ctx.body as { data?: { two_factor_required?: boolean } } | undefined)?.data?.two_factor_required
        ? 'two_factor_required'
        : 'success';
    case 401:
      return 'failure';
    case 403:
      return 'forbidden';
    case 423:
      return 'locked';
    case 429:
      return 'rate_limited';
    default:
      return ctx.status < 500 ? 'invalid' : 'error';
  }
}

/**
 * Registers `api_request_duration_seconds{method,route,status}`, `api_rate_limited_total`,
 * `api_logins_total{outcome}` and `api_lockouts_total` on `registry`.
 */
export function createApiMetrics(registry: Registry): ApiMetrics {
  const duration = histogramOn(registry, {
    name: 'api_request_duration_seconds',
    help: 'Admin API requests by method, route pattern and status, seconds',
    labelNames: ['method', 'route', 'status'],
    buckets: LATENCY_BUCKETS_S,
  });
  const limited = counterOn(registry, {
    name: 'api_rate_limited_total',
    help: 'Requests refused by a rate limit (429: per-IP request budget or login budget)',
  });
  const logins = counterOn(registry, {
    name: 'api_logins_total',
    help: 'Login steps (password, 2FA) by outcome',
    labelNames: ['outcome'],
  });
  const lockouts = counterOn(registry, {
    name: 'api_lockouts_total',
    help: 'Accounts locked after LOGIN_MAX_FAILURES failed logins',
  });
  return {
    lockout: () => lockouts.inc(),
    async middleware(ctx, next) {
      const started = performance.now();
      try {
        await next();
      } finally {
        const route = (ctx as Context & { _matchedRoute?: string })._matchedRoute;
        const pattern = typeof route === 'string' ? route : 'unmatched';
        // An SSE stream (`/events/stream`) is observed once it ends: its duration is the stream's life.
        duration.observe(
          { method: ctx.method, route: pattern, status: String(ctx.status) },
          (performance.now() - started) / 1000,
        );
        if (ctx.status === 429) limited.inc();
        if (LOGIN_ROUTES.has(pattern)) logins.inc({ outcome: loginOutcome(ctx) });
      }
    },
  };
}
