/**
 * `GET /api/v1/track/conversion/:event_id` (postback token, as the postback): a conversion's final decision, for
 * advertisers reading it back after the immediate answer. Scoped to the token's advertiser: another advertiser's
 * event_id is NOT_FOUND, exactly as an unknown one.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Logger, Sql } from '../../infra/index.ts';
import { MAX_EVENT_ID_LENGTH, type TokenCache } from './conversion.ts';
import type { EventIds } from './event-ids.ts';
import { type ReqState, sendAppError, sendError, sendJson } from './http.ts';
import { LIMITS, queryTooLong, rawQuery } from './request.ts';

/** What the decision handler shares with the server. */
export interface DecisionDeps {
  log: Logger;
  sql: Sql;
  tokens: TokenCache;
  eventIds: EventIds;
  begin(res: HttpResponse, head: boolean): ReqState;
  finish(st: ReqState): void;
}

/**
 * The answer's `data`: `status` is `received` while the conversion is still in the pipeline (only its reservation
 * is known), then the Postgres row's `pending | approved | rejected | reversed`; `revenue_minor` is what the
 * advertiser is charged, in minor units of `currency`; times are ISO 8601 UTC.
 */
export interface ConversionDecision {
  event_id: string;
  conversion_id: string;
  status: 'received' | 'pending' | 'approved' | 'rejected' | 'reversed';
  reject_reason?: string | null;
  goal?: string;
  revenue_minor?: number;
  currency?: string | null;
  event_time?: string;
  updated_at?: string;
}

/** The uWS handler of the decision route. */
export function decisionHandler(deps: DecisionDeps): (res: HttpResponse, req: HttpRequest) => void {
  const { log, sql, tokens, eventIds, begin, finish } = deps;
  const unavailable = (st: ReqState, what: string) => {
    sendAppError(st, 'SERVICE_UNAVAILABLE', `${what} unavailable, retry later`, undefined, { 'Retry-After': '5' });
    finish(st);
  };

  const lookup = async (st: ReqState, advertiserId: number, eventId: string) => {
    const [c] = await sql<
      {
        id: string;
        status: ConversionDecision['status'];
        reject_reason: string | null;
        goal: string;
        revenue: string;
        currency: string | null;
        event_time: Date;
        updated_at: Date;
      }[]
    >`select id, status, reject_reason, goal, revenue::text as revenue, currency, event_time, updated_at
      from conversions where advertiser_id = ${advertiserId} and event_id = ${eventId}`;
    if (c) {
      const data: ConversionDecision = {
        event_id: eventId,
        conversion_id: c.id,
        status: c.status,
        reject_reason: c.reject_reason,
        goal: c.goal,
        revenue_minor: Number(c.revenue),
        currency: c.currency?.trim() ?? null,
        event_time: c.event_time.toISOString(),
        updated_at: c.updated_at.toISOString(),
      };
      sendJson(st, 200, { success: true, data });
      return finish(st);
    }
    const held = await eventIds.lookup(advertiserId, eventId);
    if (held === undefined) return unavailable(st, 'conversion store');
    if (held === null) {
      sendAppError(st, 'NOT_FOUND', 'conversion not found');
      return finish(st);
    }
    const data: ConversionDecision = { event_id: eventId, conversion_id: held, status: 'received' };
    sendJson(st, 200, { success: true, data });
    finish(st);
  };

  return (res, req) => {
    const st = begin(res, false);
    const query = rawQuery(req);
    if (query.length > LIMITS.queryLength) {
      sendError(st, queryTooLong());
      return finish(st);
    }
    let eventId: string;
    try {
      eventId = decodeURIComponent(req.getParameter(0) ?? '');
    } catch {
      eventId = '';
    }
    const token = req.getHeader('x-postback-token') || (new URLSearchParams(query).get('token') ?? '');
    if (token === '' || token.length > 512) {
      sendAppError(st, 'UNAUTHORIZED', 'missing or invalid postback token');
      return finish(st);
    }
    if (eventId === '' || eventId.length > MAX_EVENT_ID_LENGTH) {
      sendAppError(st, 'VALIDATION_ERROR', 'invalid event_id', {
        event_id: [`must be 1 to ${MAX_EVENT_ID_LENGTH} characters`],
      });
      return finish(st);
    }
    tokens.advertiser(token).then(
      (advertiserId) => {
        if (advertiserId === null) {
          sendAppError(st, 'UNAUTHORIZED', 'missing or invalid postback token');
          return finish(st);
        }
        lookup(st, advertiserId, eventId).catch((err: Error) => {
          log.error({ err: err.message }, 'conversion decision lookup failed');
          unavailable(st, 'conversion store');
        });
      },
      (err: Error) => {
        log.error({ err: err.message }, 'postback token lookup failed');
        unavailable(st, 'authentication');
      },
    );
  };
}
