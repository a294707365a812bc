import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { AppError, type EventRecipient, eventFor, type LiveEvent } from '../../infra/index.ts';
import {
  checkDestination,
  type EndpointState,
  endpointUrl,
  eventList,
  insertWithinCap,
  listEndpoints,
  loadEndpoint,
  statusAssignments,
} from './endpoints.ts';
import { decryptSecret, encryptSecret, generateWebhookSecret } from './secrets.ts';
import { destinationOf } from './ssrf.ts';
import {
  type Ctx,
  type DeliveryRow,
  insertDeliveries,
  listEndpointDeliveries,
  type NewDelivery,
  softDeleteEndpoint,
  toView,
} from './store.ts';
import {
  type Actor,
  type DeliveryStatus,
  type DeliveryView,
  fieldError,
  type Page,
  type PageQuery,
  pageQuerySchema,
  parseInput,
  WEBHOOK_EVENTS,
  type WebhookEvent,
} from './types.ts';

/** A webhook endpoint as the API shows it (never its secret). */
export interface WebhookEndpoint extends EndpointState {
  id: number;
  user_id: number;
  url: string;
  events: WebhookEvent[];
  description: string | null;
  /** While set and in the future, the previous secret still signs too (rotation grace). */
  previous_secret_expires_at: string | null;
}

const events = eventList(WEBHOOK_EVENTS);

/** `POST /webhooks` body. */
export const createWebhookSchema = z.strictObject({
  url: endpointUrl,
  events,
  description: z.string().trim().max(500).nullable().default(null),
});

/** `PATCH /webhooks/:id` body; `status: 'active'` re-enables a disabled endpoint. */
export const updateWebhookSchema = z.strictObject({
  url: endpointUrl.optional(),
  events: events.optional(),
  description: z.string().trim().max(500).nullable().optional(),
  status: z.enum(['active', 'disabled']).optional(),
});

/** `POST /webhooks/retry-failed` and `POST /webhooks/test` body. */
export const webhookTargetSchema = z.strictObject({
  webhook_id: z.number().int().positive().optional(),
});

interface WebhookRow extends EndpointState<Date> {
  id: number;
  user_id: number;
  url: string;
  events: string[];
  description: string | null;
  secret_enc: string;
  previous_secret_enc: string | null;
  previous_secret_expires_at: Date | null;
}

function view(r: WebhookRow, nowMs: number): WebhookEndpoint {
  const exp = r.previous_secret_expires_at;
  return {
    id: r.id,
    user_id: r.user_id,
    url: r.url,
    events: r.events as WebhookEvent[],
    description: r.description,
    status: r.status,
    disabled_reason: r.disabled_reason,
    previous_secret_expires_at: exp && exp.getTime() > nowMs ? exp.toISOString() : null,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  };
}

function validateUrl(ctx: Ctx, raw: string): void {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw fieldError('url', 'not a valid URL');
  }
  checkDestination(ctx, u);
}

/** Loads a webhook endpoint the actor may see. @throws AppError NOT_FOUND (also for others' endpoints). */
const load = (ctx: Ctx, actor: Actor, id: number) => loadEndpoint<WebhookRow>(ctx, 'webhook', actor, id);

/**
 * The secrets a delivery is signed with right now: the current one, plus the previous one during
 * its rotation grace period (so receivers verifying with either secret accept every delivery).
 */
export function signingSecrets(
  ctx: Ctx,
  r: { secret_enc: string; previous_secret_enc: string | null; previous_secret_expires_at: Date | null },
  nowMs: number,
): string[] {
  const out = [decryptSecret(ctx.secretKey, r.secret_enc)];
  if (r.previous_secret_enc && r.previous_secret_expires_at && r.previous_secret_expires_at.getTime() > nowMs) {
    out.push(decryptSecret(ctx.secretKey, r.previous_secret_enc));
  }
  return out;
}

/** The webhook payload: `{ id, type, created_at, data }` (Standard Webhooks style). */
export function webhookPayload(e: Pick<LiveEvent, 'id' | 'type' | 'created_at' | 'data'>): string {
  return JSON.stringify({ id: e.id, type: e.type, created_at: e.created_at, data: e.data });
}

/** An endpoint a delivery goes to, with its owner's role (the payload is built for it). */
interface Target {
  id: number;
  user_id: number;
  url: string;
  role: EventRecipient['role'];
}

/**
 * The delivery of `e` to one endpoint, its body built for the endpoint owner's role (`eventFor`, infra/event-policy.ts:
 * an affiliate's endpoint gets no revenue or advertiser order id), so the signature, computed over the stored body
 * at send time, covers exactly what that owner may see. `null` when the owner may not receive the event.
 */
function deliveryFor(w: Target, event: LiveEvent): NewDelivery | null {
  const e = eventFor(event, { role: w.role, user_id: w.user_id });
  if (!e) return null;
  return {
    kind: 'webhook',
    endpoint_id: w.id,
    owner_id: w.user_id,
    event_id: e.id,
    event_type: e.type,
    method: 'POST',
    url: w.url,
    destination: destinationOf(new URL(w.url)).key,
    body: webhookPayload(e),
  };
}

/**
 * Turns one live event into deliveries for every active endpoint subscribed to its type whose
 * owner is among `event.user_ids`, plus admins' endpoints (admins see every event); each body is the event
 * as that owner's role may see it. Idempotent by (endpoint, event id). @returns number of deliveries queued by this call.
 */
export async function enqueueWebhookEvent(ctx: Ctx, event: LiveEvent): Promise<number> {
  if (!(WEBHOOK_EVENTS as readonly string[]).includes(event.type)) return 0;
  const userIds = event.user_ids.filter((x) => Number.isSafeInteger(x));
  const endpoints = await ctx.sql<Target[]>`
    select w.id, w.user_id, w.url, u.role from webhook_endpoints w join users u on u.id = w.user_id
    where w.status = 'active' and ${event.type} = any(w.events)
      and (w.user_id = any(${userIds}::int8[]) or u.role = 'admin')`;
  return (
    await insertDeliveries(
      ctx,
      endpoints.map((w) => deliveryFor(w, event)).filter((d) => d !== null),
    )
  ).length;
}

/** Webhook repository (thin HTTP routes call these; each checks the actor). */
export function webhookRepository(ctx: Ctx) {
  const { sql } = ctx;
  const admin = (a: Actor) => a.role === 'admin';
  return {
    /** `GET /webhooks`: the actor's endpoints (every one for admins), newest first. */
    async list(actor: Actor, q: PageQuery = {}): Promise<Page<WebhookEndpoint>> {
      const page = await listEndpoints<WebhookRow>(ctx, 'webhook', actor, q);
      const now = ctx.clock();
      return { ...page, items: page.items.map((r) => view(r, now)) };
    },

    /**
     * `POST /webhooks`: creates an endpoint and returns its `whsec_…` secret — the only time the
     * secret is shown. @throws AppError VALIDATION_ERROR
     */
    async create(actor: Actor, input: unknown): Promise<{ webhook: WebhookEndpoint; secret: string }> {
      const b = parseInput(createWebhookSchema, input);
      validateUrl(ctx, b.url);
      const secret = generateWebhookSecret();
      const now = new Date(ctx.clock());
      const r = await insertWithinCap(ctx, 'webhook', actor.id, async (tx) => {
        const [row] = await tx<WebhookRow[]>`
          insert into webhook_endpoints (user_id, url, events, description, secret_enc, created_at, updated_at)
          values (${actor.id}, ${b.url}, ${b.events}::text[], ${b.description}, ${encryptSecret(ctx.secretKey, secret)},
                  ${now}, ${now})
          returning *`;
        return row!;
      });
      return { webhook: view(r, now.getTime()), secret };
    },

    /** `GET /webhooks/:id`. @throws AppError NOT_FOUND */
    async get(actor: Actor, id: number): Promise<WebhookEndpoint> {
      return view(await load(ctx, actor, id), ctx.clock());
    },

    /** `PATCH /webhooks/:id`. @throws AppError NOT_FOUND | VALIDATION_ERROR */
    async update(actor: Actor, id: number, input: unknown): Promise<WebhookEndpoint> {
      const b = parseInput(updateWebhookSchema, input);
      const cur = await load(ctx, actor, id);
      if (b.url !== undefined) validateUrl(ctx, b.url);
      const now = new Date(ctx.clock());
      const [r] = await sql<WebhookRow[]>`
        update webhook_endpoints set
          url = ${b.url ?? cur.url},
          events = ${b.events ?? cur.events}::text[],
          description = ${b.description === undefined ? cur.description : b.description},
          ${statusAssignments(sql, b.status, cur)},
          updated_at = ${now}
        where id = ${id}
        returning *`;
      // Queued deliveries follow the endpoint to its new URL.
      if (b.url !== undefined && b.url !== cur.url) {
        await sql`update deliveries set url = ${b.url}, destination = ${destinationOf(new URL(b.url)).key}
                  where webhook_id = ${id} and status = 'pending'`;
      }
      return view(r!, now.getTime());
    },

    /** `DELETE /webhooks/:id`: soft delete (the delivery log stays); pending deliveries fail. */
    async remove(actor: Actor, id: number): Promise<void> {
      await load(ctx, actor, id);
      await softDeleteEndpoint(ctx, 'webhook', id);
    },

    /**
     * `PUT /webhooks/:id/rotate-secret`: a new secret, returned once; the previous one keeps
     * signing (deliveries carry both signatures) until `previous_secret_expires_at`
     * (now + DELIVERY_ROTATION_GRACE_S). A second rotation within the grace drops the oldest.
     */
    async rotateSecret(
      actor: Actor,
      id: number,
    ): Promise<{ webhook: WebhookEndpoint; secret: string; previous_secret_expires_at: string }> {
      await load(ctx, actor, id);
      const secret = generateWebhookSecret();
      const now = ctx.clock();
      const expires = new Date(now + ctx.config.DELIVERY_ROTATION_GRACE_S * 1000);
      const [r] = await sql<WebhookRow[]>`
        update webhook_endpoints set previous_secret_enc = secret_enc, previous_secret_expires_at = ${expires},
          secret_enc = ${encryptSecret(ctx.secretKey, secret)}, updated_at = ${new Date(now)}
        where id = ${id}
        returning *`;
      return { webhook: view(r!, now), secret, previous_secret_expires_at: expires.toISOString() };
    },

    /** `GET /webhooks/:id/deliveries`: deliveries with every attempt, newest first. */
    async deliveries(
      actor: Actor,
      id: number,
      q: PageQuery & { status?: DeliveryStatus } = {},
    ): Promise<Page<DeliveryView>> {
      await load(ctx, actor, id);
      const p = parseInput(pageQuerySchema, { page: q.page, per_page: q.per_page });
      return listEndpointDeliveries(ctx, 'webhook', id, p, q.status);
    },

    /**
     * `POST /webhooks/deliveries/:deliveryId/replay`: sends a delivery again now, with the same
     * `webhook-id` and body, and a fresh retry window. Works for postback deliveries too.
     * @throws AppError NOT_FOUND | INVALID_STATE (endpoint disabled or deleted)
     */
    async replay(actor: Actor, deliveryId: number): Promise<DeliveryView> {
      const now = new Date(ctx.clock());
      const [d] = await sql<(DeliveryRow & { endpoint_status: string })[]>`
        select d.*, coalesce(w.status, p.status) as endpoint_status
        from deliveries d
        left join webhook_endpoints w on w.id = d.webhook_id
        left join postback_endpoints p on p.id = d.postback_id
        where d.id = ${deliveryId} and (${admin(actor)} or d.owner_id = ${actor.id})`;
      if (!d || d.endpoint_status === 'deleted') throw new AppError('NOT_FOUND', 'delivery not found');
      if (d.endpoint_status !== 'active') throw new AppError('INVALID_STATE', 'the endpoint is disabled');
      const [r] = await sql<DeliveryRow[]>`
        update deliveries set status = 'pending', next_attempt_at = ${now}, window_started_at = ${now},
          locked_until = null, completed_at = null, updated_at = ${now}
        where id = ${deliveryId}
        returning *`;
      ctx.wake();
      return toView(r!);
    },

    /**
     * `POST /webhooks/retry-failed`: requeues every failed webhook delivery of the actor's active
     * endpoints (or of one endpoint), with a fresh retry window. @returns how many were requeued.
     */
    async retryFailed(actor: Actor, input: unknown = {}): Promise<{ requeued: number }> {
      const b = parseInput(webhookTargetSchema, input);
      if (b.webhook_id !== undefined) await load(ctx, actor, b.webhook_id);
      const now = new Date(ctx.clock());
      const rows = await sql`
        update deliveries d set status = 'pending', next_attempt_at = ${now}, window_started_at = ${now},
          locked_until = null, completed_at = null, updated_at = ${now}
        from webhook_endpoints w
        where w.id = d.webhook_id and w.status = 'active' and d.status = 'failed'
          and (${admin(actor)} or d.owner_id = ${actor.id})
          and (${b.webhook_id ?? null}::int8 is null or d.webhook_id = ${b.webhook_id ?? null})
        returning d.id`;
      if (rows.length > 0) ctx.wake();
      return { requeued: rows.length };
    },

    /**
     * `POST /webhooks/test`: queues a sample `conversion.created` event (`data.test = true`) to one
     * endpoint, or to every active endpoint of the actor, shaped for each endpoint owner's role like a real
     * event (an affiliate's sample has no revenue or event_id). @returns the deliveries queued.
     */
    async sendTest(actor: Actor, input: unknown = {}): Promise<DeliveryView[]> {
      const b = parseInput(webhookTargetSchema, input);
      const targets =
        b.webhook_id !== undefined
          ? [await load(ctx, actor, b.webhook_id)]
          : await sql<WebhookRow[]>`select * from webhook_endpoints where user_id = ${actor.id} and status = 'active'`;
      if (targets.some((t) => t.status !== 'active')) throw new AppError('INVALID_STATE', 'the endpoint is disabled');
      if (targets.length === 0) throw new AppError('INVALID_STATE', 'no active webhook endpoint');
      const event: LiveEvent = {
        id: `msg_test_${randomUUID()}`,
        type: 'conversion.created',
        created_at: new Date(ctx.clock()).toISOString(),
        // The endpoints' owners (an admin may test another user's endpoint).
        user_ids: [...new Set(targets.map((t) => t.user_id))],
        data: {
          test: true,
          conversion_id: randomUUID(),
          event_id: 'test-order-1',
          campaign_id: 1,
          affiliate_id: actor.id,
          goal: 'purchase',
          status: 'pending',
          payout: 1500,
          revenue: 2000,
          currency: 'USD',
        },
      };
      const roles = await sql<{ id: number; role: EventRecipient['role'] }[]>`
        select id, role from users where id = any(${event.user_ids}::int8[])`;
      const roleOf = new Map(roles.map((r) => [Number(r.id), r.role]));
      const ids = await insertDeliveries(
        ctx,
        targets
          .map((t) => deliveryFor({ ...t, role: roleOf.get(Number(t.user_id)) ?? 'affiliate' }, event))
          .filter((d) => d !== null),
      );
      const rows = await sql<DeliveryRow[]>`select * from deliveries where id = any(${ids}::int8[]) order by id`;
      return rows.map((r) => toView(r));
    },
  };
}

export type WebhookRepository = ReturnType<typeof webhookRepository>;
