import { z } from 'zod';
import { AppError } from '../../infra/index.ts';
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
import { fillTemplate, type MacroValues, sampleUrl, unknownMacros } from './macros.ts';
import { destinationOf } from './ssrf.ts';
import { type Ctx, insertDeliveries, listEndpointDeliveries, type NewDelivery, softDeleteEndpoint } from './store.ts';
import {
  type Actor,
  type DeliveryStatus,
  type DeliveryView,
  fieldError,
  type Page,
  type PageQuery,
  POSTBACK_EVENTS,
  type PostbackEvent,
  pageQuerySchema,
  parseInput,
} from './types.ts';

/** An affiliate's postback URL template, as the API shows it. */
export interface Postback extends EndpointState {
  id: number;
  affiliate_id: number;
  /** null = every campaign. */
  campaign_id: number | null;
  events: PostbackEvent[];
  method: 'GET' | 'POST';
  url: string;
  include_fraud: boolean;
}

const events = eventList(POSTBACK_EVENTS);

/** `POST /postbacks` body. `affiliate_id` only for admins (acting for an affiliate). */
export const createPostbackSchema = z.strictObject({
  url: endpointUrl,
  campaign_id: z.number().int().positive().nullable().default(null),
  events: events.default(['conversion.created']),
  method: z.enum(['GET', 'POST']).default('GET'),
  include_fraud: z.boolean().default(false),
  affiliate_id: z.number().int().positive().optional(),
});

/** `PATCH /postbacks/:id` body; `status: 'active'` re-enables a disabled endpoint. */
export const updatePostbackSchema = z.strictObject({
  url: endpointUrl.optional(),
  campaign_id: z.number().int().positive().nullable().optional(),
  events: events.optional(),
  method: z.enum(['GET', 'POST']).optional(),
  include_fraud: z.boolean().optional(),
  status: z.enum(['active', 'disabled']).optional(),
});

interface PostbackRow extends EndpointState<Date> {
  id: number;
  affiliate_id: number;
  campaign_id: number | null;
  events: string[];
  method: 'GET' | 'POST';
  url_template: string;
  include_fraud: boolean;
}

function view(r: PostbackRow): Postback {
  return {
    id: r.id,
    affiliate_id: r.affiliate_id,
    campaign_id: r.campaign_id,
    events: r.events as PostbackEvent[],
    method: r.method,
    url: r.url_template,
    include_fraud: r.include_fraud,
    status: r.status,
    disabled_reason: r.disabled_reason,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  };
}

function validateTemplate(ctx: Ctx, template: string): void {
  const unknown = unknownMacros(template);
  if (unknown.length > 0) {
    throw fieldError('url', `unknown macros: ${unknown.map((m) => `{${m}}`).join(', ')}`);
  }
  let u: URL;
  try {
    u = new URL(sampleUrl(template));
  } catch {
    throw fieldError('url', 'not a valid URL');
  }
  // A macro in the host would let conversion data choose the destination.
  if (/\{/.test(template.slice(0, template.indexOf(u.host) + u.host.length))) {
    throw fieldError('url', 'macros are not allowed in the scheme or host');
  }
  checkDestination(ctx, u);
}

async function checkCampaign(ctx: Ctx, campaignId: number | null | undefined): Promise<void> {
  if (campaignId == null) return;
  const [c] = await ctx.sql`select id from campaigns where id = ${campaignId}`;
  if (!c) {
    throw fieldError('campaign_id', 'campaign not found');
  }
}

async function ownAffiliate(ctx: Ctx, actor: Actor, requested: number | undefined): Promise<number> {
  if (actor.role === 'affiliate') {
    if (requested !== undefined && requested !== actor.id) throw new AppError('FORBIDDEN', 'not allowed');
    return actor.id;
  }
  if (actor.role !== 'admin') throw new AppError('FORBIDDEN', 'only affiliates have postbacks');
  if (requested === undefined) {
    throw fieldError('affiliate_id', 'required for admins');
  }
  const [u] = await ctx.sql`select id from users where id = ${requested} and role = 'affiliate'`;
  if (!u) {
    throw fieldError('affiliate_id', 'affiliate not found');
  }
  return requested;
}

/** Loads a postback the actor may see. @throws AppError NOT_FOUND (also for others' postbacks). */
const load = (ctx: Ctx, actor: Actor, id: number) => loadEndpoint<PostbackRow>(ctx, 'postback', actor, id);

/** Postback repository (thin HTTP routes call these; each checks the actor). */
export function postbackRepository(ctx: Ctx) {
  const { sql } = ctx;
  return {
    /** `GET /postbacks`: the actor's postbacks (every one for admins), newest first. */
    async list(actor: Actor, q: PageQuery = {}): Promise<Page<Postback>> {
      const page = await listEndpoints<PostbackRow>(ctx, 'postback', actor, q);
      return { ...page, items: page.items.map(view) };
    },

    /** `POST /postbacks`. @throws AppError VALIDATION_ERROR | FORBIDDEN */
    async create(actor: Actor, input: unknown): Promise<Postback> {
      const b = parseInput(createPostbackSchema, input);
      const affiliateId = await ownAffiliate(ctx, actor, b.affiliate_id);
      validateTemplate(ctx, b.url);
      await checkCampaign(ctx, b.campaign_id);
      const now = new Date(ctx.clock());
      const r = await insertWithinCap(ctx, 'postback', affiliateId, async (tx) => {
        const [row] = await tx<PostbackRow[]>`
          insert into postback_endpoints (affiliate_id, campaign_id, events, method, url_template, include_fraud,
                                          created_at, updated_at)
          values (${affiliateId}, ${b.campaign_id}, ${b.events}::text[], ${b.method}, ${b.url}, ${b.include_fraud},
                  ${now}, ${now})
          returning *`;
        return row!;
      });
      return view(r);
    },

    /** `GET /postbacks/:id`. @throws AppError NOT_FOUND */
    async get(actor: Actor, id: number): Promise<Postback> {
      return view(await load(ctx, actor, id));
    },

    /** `PATCH /postbacks/:id`. @throws AppError NOT_FOUND | VALIDATION_ERROR */
    async update(actor: Actor, id: number, input: unknown): Promise<Postback> {
      const b = parseInput(updatePostbackSchema, input);
      const cur = await load(ctx, actor, id);
      if (b.url !== undefined) validateTemplate(ctx, b.url);
      if (b.campaign_id !== undefined) await checkCampaign(ctx, b.campaign_id);
      const [r] = await sql<PostbackRow[]>`
        update postback_endpoints set
          url_template = ${b.url ?? cur.url_template},
          campaign_id = ${b.campaign_id === undefined ? cur.campaign_id : b.campaign_id},
          events = ${b.events ?? cur.events}::text[],
          method = ${b.method ?? cur.method},
          include_fraud = ${b.include_fraud ?? cur.include_fraud},
          ${statusAssignments(sql, b.status, cur)},
          updated_at = ${new Date(ctx.clock())}
        where id = ${id}
        returning *`;
      return view(r!);
    },

    /** `DELETE /postbacks/:id`: soft delete (the attempt log stays); pending deliveries fail. */
    async remove(actor: Actor, id: number): Promise<void> {
      await load(ctx, actor, id);
      await softDeleteEndpoint(ctx, 'postback', id);
    },

    /** `GET /postbacks/:id/logs`: deliveries with every attempt. */
    async logs(actor: Actor, id: number, q: PageQuery & { status?: DeliveryStatus } = {}): Promise<Page<DeliveryView>> {
      await load(ctx, actor, id);
      const p = parseInput(pageQuerySchema, { page: q.page, per_page: q.per_page });
      return listEndpointDeliveries(ctx, 'postback', id, p, q.status);
    },
  };
}

export type PostbackRepository = ReturnType<typeof postbackRepository>;

interface ConversionRow {
  id: string;
  event_id: string;
  click_id: string | null;
  campaign_id: number | null;
  affiliate_id: number | null;
  goal: string;
  status: string;
  payout: number;
  currency: string | null;
  campaign_currency: string | null;
  fraud_reasons: string[];
  sub1: string | null;
  sub2: string | null;
  sub3: string | null;
  sub4: string | null;
  sub5: string | null;
}

/**
 * Enqueues the affiliate postbacks of one conversion event, reading the conversion from Postgres
 * (the source of truth). Idempotent: one delivery per (postback, conversion, event type).
 * Nothing fires for a conversion without an affiliate; a rejected conversion fires only
 * `conversion.rejected` postbacks (those subscribed to it); a fraud-flagged one (non-empty
 * `fraud_reasons`) only postbacks with `include_fraud`.
 * @returns number of deliveries queued by this call.
 */
export async function firePostbacks(ctx: Ctx, conversionId: string, type: PostbackEvent): Promise<number> {
  const [c] = await ctx.sql<ConversionRow[]>`
    select v.id, v.event_id, v.click_id, v.campaign_id, v.affiliate_id, v.goal, v.status, v.payout, v.currency,
           k.currency as campaign_currency, v.fraud_reasons, v.sub1, v.sub2, v.sub3, v.sub4, v.sub5
    from conversions v left join campaigns k on k.id = v.campaign_id
    where v.id = ${conversionId}`;
  if (!c || c.affiliate_id == null) return 0;
  if (c.status === 'rejected' && type !== 'conversion.rejected') return 0;
  const fraud = c.fraud_reasons.length > 0;
  const endpoints = await ctx.sql<{ id: number; affiliate_id: number; method: 'GET' | 'POST'; url_template: string }[]>`
    select id, affiliate_id, method, url_template from postback_endpoints
    where affiliate_id = ${c.affiliate_id} and status = 'active' and ${type} = any(events)
      and (campaign_id is null or campaign_id = ${c.campaign_id})
      and (${!fraud} or include_fraud)`;
  const values: MacroValues = {
    click_id: c.click_id ?? '',
    event_id: c.event_id,
    campaign_id: c.campaign_id == null ? '' : String(c.campaign_id),
    goal: c.goal,
    // Minor units (integer), like every amount in the system.
    payout: String(c.payout),
    currency: (c.campaign_currency ?? c.currency ?? '').trim(),
    status: c.status,
    sub1: c.sub1 ?? '',
    sub2: c.sub2 ?? '',
    sub3: c.sub3 ?? '',
    sub4: c.sub4 ?? '',
    sub5: c.sub5 ?? '',
  };
  const rows: NewDelivery[] = [];
  for (const e of endpoints) {
    const url = fillTemplate(e.url_template, values);
    let dest: string;
    try {
      dest = destinationOf(new URL(url)).key;
    } catch {
      ctx.logger.warn({ postback_id: e.id }, 'postback template yields an invalid URL; skipped');
      continue;
    }
    rows.push({
      kind: 'postback',
      endpoint_id: e.id,
      owner_id: e.affiliate_id,
      event_id: `${c.id}:${type}`,
      event_type: type,
      method: e.method,
      url,
      destination: dest,
      body: e.method === 'POST' ? JSON.stringify({ event: type, ...values }) : null,
    });
  }
  return (await insertDeliveries(ctx, rows)).length;
}
