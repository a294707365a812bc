/**
 * The HTTP surface of deliveries as a framework-free table, so the admin API's router file only
 * maps each entry onto `@koa/router` (authentication, the envelope and error middleware stay
 * in the admin API). Paths are relative to `/api/v1`, in `@koa/router` syntax.
 */
import { z } from 'zod';
import { AppError } from '../../infra/index.ts';
import type { Deliveries } from './engine.ts';
import { createPostbackSchema, updatePostbackSchema } from './postbacks.ts';
import { type Actor, fieldError, type Page, pageQuerySchema } from './types.ts';
import { createWebhookSchema, updateWebhookSchema, webhookTargetSchema } from './webhooks.ts';

/** Query of delivery/log lists. */
const logQuery = pageQuerySchema.extend({ status: z.enum(['pending', 'succeeded', 'failed']).optional() });

/** Envelope `meta` of list responses. */
export type PageMeta = {
  page: number;
  per_page: number;
  total: number;
  total_pages: number;
};

/** What a route hands back: the envelope's `data` (and `meta` for lists), with its HTTP status. */
export interface RouteResult {
  status: number;
  data: unknown;
  meta?: PageMeta;
}

/** The parts of a request a route reads. The caller authenticates and supplies `actor`. */
export interface RouteRequest {
  actor: Actor;
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
}

export interface DeliveryRoute {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  /** One line for the API docs. */
  summary: string;
  /** Body schema (the handler validates again; this one is for docs and early 400s). */
  body?: z.ZodType;
  /** Query schema (lists: page, per_page, status). */
  query?: z.ZodType;
  /** A valid body, for docs and tests. */
  example?: unknown;
  /** Roles allowed (others get FORBIDDEN before the handler runs). */
  roles: ReadonlyArray<Actor['role']>;
  handle(d: Deliveries, req: RouteRequest): Promise<RouteResult>;
}

/** Parses a path id. @throws AppError NOT_FOUND for anything but a positive safe integer. */
function idParam(params: Record<string, string>, name: string): number {
  const raw = params[name] ?? '';
  const n = Number(raw);
  if (!/^[1-9][0-9]{0,15}$/.test(raw) || !Number.isSafeInteger(n)) throw new AppError('NOT_FOUND', 'not found');
  return n;
}

function pageQuery(q: Record<string, unknown>) {
  const status = q.status;
  if (status !== undefined && status !== 'pending' && status !== 'succeeded' && status !== 'failed') {
    throw fieldError('status', 'expected pending, succeeded or failed');
  }
  return {
    page: q.page as string | undefined,
    per_page: q.per_page as string | undefined,
    status: status as 'pending' | 'succeeded' | 'failed' | undefined,
  };
}

function list<T>(p: Page<T>): RouteResult {
  return {
    status: 200,
    data: p.items,
    meta: { page: p.page, per_page: p.per_page, total: p.total, total_pages: Math.ceil(p.total / p.per_page) },
  };
}

const ok = (data: unknown, status = 200): RouteResult => ({ status, data });
const AFFILIATE: Actor['role'][] = ['affiliate', 'admin'];
const ANYONE: Actor['role'][] = ['advertiser', 'affiliate', 'admin'];

/** Every deliveries route: postbacks (affiliates, admins) and webhooks (every role). */
export const DELIVERY_ROUTES: readonly DeliveryRoute[] = [
  {
    method: 'GET',
    path: '/postbacks',
    summary: 'Your postback URL templates (admins: all)',
    query: pageQuerySchema,
    roles: AFFILIATE,
    handle: async (d, r) => list(await d.postbacks.list(r.actor, pageQuery(r.query))),
  },
  {
    method: 'POST',
    path: '/postbacks',
    summary: 'Create a postback URL template (global or per campaign; macros {click_id} {payout} {sub1}…)',
    body: createPostbackSchema,
    example: {
      url: 'https://tracker.example/pb?cid={click_id}&p={payout}&c={currency}',
      events: ['conversion.approved'],
    },
    roles: AFFILIATE,
    handle: async (d, r) => ok(await d.postbacks.create(r.actor, r.body), 201),
  },
  {
    method: 'GET',
    path: '/postbacks/:id',
    summary: 'One postback',
    roles: AFFILIATE,
    handle: async (d, r) => ok(await d.postbacks.get(r.actor, idParam(r.params, 'id'))),
  },
  {
    method: 'PATCH',
    path: '/postbacks/:id',
    summary: 'Change a postback (status active re-enables it)',
    body: updatePostbackSchema,
    example: { method: 'POST' },
    roles: AFFILIATE,
    handle: async (d, r) => ok(await d.postbacks.update(r.actor, idParam(r.params, 'id'), r.body)),
  },
  {
    method: 'DELETE',
    path: '/postbacks/:id',
    summary: 'Delete a postback (its logs stay)',
    roles: AFFILIATE,
    handle: async (d, r) => {
      await d.postbacks.remove(r.actor, idParam(r.params, 'id'));
      return ok({ deleted: true });
    },
  },
  {
    method: 'GET',
    path: '/postbacks/:id/logs',
    summary: 'Deliveries of a postback with every attempt',
    query: logQuery,
    roles: AFFILIATE,
    handle: async (d, r) => list(await d.postbacks.logs(r.actor, idParam(r.params, 'id'), pageQuery(r.query))),
  },
  {
    method: 'GET',
    path: '/webhooks',
    summary: 'Your webhook endpoints (admins: all)',
    query: pageQuerySchema,
    roles: ANYONE,
    handle: async (d, r) => list(await d.webhooks.list(r.actor, pageQuery(r.query))),
  },
  {
    method: 'POST',
    path: '/webhooks',
    summary: 'Create a webhook endpoint; answers its whsec_ signing secret once',
    body: createWebhookSchema,
    example: { url: 'https://hooks.example/affiliate', events: ['conversion.created', 'payout.paid'] },
    roles: ANYONE,
    handle: async (d, r) => {
      const { webhook, secret } = await d.webhooks.create(r.actor, r.body);
      return ok({ ...webhook, secret }, 201);
    },
  },
  {
    method: 'POST',
    path: '/webhooks/retry-failed',
    summary: 'Requeue every failed webhook delivery (or those of one endpoint)',
    body: webhookTargetSchema,
    example: {},
    roles: ANYONE,
    handle: async (d, r) => ok(await d.webhooks.retryFailed(r.actor, r.body ?? {})),
  },
  {
    method: 'POST',
    path: '/webhooks/test',
    summary: 'Send a sample conversion.created to one endpoint (or all of yours)',
    body: webhookTargetSchema,
    example: {},
    roles: ANYONE,
    handle: async (d, r) => ok(await d.webhooks.sendTest(r.actor, r.body ?? {}), 202),
  },
  {
    method: 'POST',
    path: '/webhooks/deliveries/:deliveryId/replay',
    summary: 'Send a delivery again now (same webhook-id and body)',
    roles: ANYONE,
    handle: async (d, r) => ok(await d.webhooks.replay(r.actor, idParam(r.params, 'deliveryId')), 202),
  },
  {
    method: 'GET',
    path: '/webhooks/:id',
    summary: 'One webhook endpoint',
    roles: ANYONE,
    handle: async (d, r) => ok(await d.webhooks.get(r.actor, idParam(r.params, 'id'))),
  },
  {
    method: 'PATCH',
    path: '/webhooks/:id',
    summary: 'Change a webhook endpoint (status active re-enables it)',
    body: updateWebhookSchema,
    example: { events: ['conversion.approved'] },
    roles: ANYONE,
    handle: async (d, r) => ok(await d.webhooks.update(r.actor, idParam(r.params, 'id'), r.body)),
  },
  {
    method: 'DELETE',
    path: '/webhooks/:id',
    summary: 'Delete a webhook endpoint (its delivery log stays)',
    roles: ANYONE,
    handle: async (d, r) => {
      await d.webhooks.remove(r.actor, idParam(r.params, 'id'));
      return ok({ deleted: true });
    },
  },
  {
    method: 'PUT',
    path: '/webhooks/:id/rotate-secret',
    summary: 'New signing secret (answered once); the previous one keeps signing for the grace period',
    roles: ANYONE,
    handle: async (d, r) => ok(await d.webhooks.rotateSecret(r.actor, idParam(r.params, 'id'))),
  },
  {
    method: 'GET',
    path: '/webhooks/:id/deliveries',
    summary: 'Deliveries of a webhook endpoint with every attempt',
    query: logQuery,
    roles: ANYONE,
    handle: async (d, r) => list(await d.webhooks.deliveries(r.actor, idParam(r.params, 'id'), pageQuery(r.query))),
  },
];

/**
 * Runs one route: role check, then the handler.
 * @throws AppError FORBIDDEN when the actor's role may not use the route; whatever the handler throws.
 */
export async function runRoute(route: DeliveryRoute, d: Deliveries, req: RouteRequest): Promise<RouteResult> {
  if (!route.roles.includes(req.actor.role)) throw new AppError('FORBIDDEN', 'not allowed for your role');
  return route.handle(d, req);
}
