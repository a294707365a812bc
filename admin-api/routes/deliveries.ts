import { AppError } from '../../infra/index.ts';
import { DELIVERY_ROUTES, runRoute } from '../../tracker/index.ts';
import { type Route, route } from '../http.ts';

/**
 * Affiliate postbacks and webhooks: the route table of `tracker/deliveries` mapped onto this API
 * (authentication, roles, validation and the envelope stay here; the engine checks ownership).
 */
export function deliveryRoutes(): Route<unknown, unknown>[] {
  return DELIVERY_ROUTES.map((r) =>
    route<unknown, unknown>({
      method: r.method.toLowerCase() as Route['method'],
      path: r.path,
      summary: r.summary,
      tag: r.path.startsWith('/postbacks') ? 'postbacks' : 'webhooks',
      auth: r.roles,
      body: r.body,
      query: r.query,
      example: r.example,
      async handler({ deps, user, params, query, body }) {
        if (!deps.deliveries) throw new AppError('SERVICE_UNAVAILABLE', 'deliveries are not configured');
        return runRoute(r, deps.deliveries, {
          actor: { id: user.user_id, role: user.role },
          params: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])),
          query: (query ?? {}) as Record<string, unknown>,
          body,
        });
      },
    }),
  );
}
