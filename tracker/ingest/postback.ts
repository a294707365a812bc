/**
 * The S2S conversion postback (`GET|POST /api/v1/track/conversion`): authenticate, validate, store, answer. The
 * answer says what the tracker knows at once: `accepted` (stored, with its conversion_id), `duplicate` (the event_id
 * was accepted before: the original conversion_id), `rejected` `unknown_click` (the click_id is not an id this
 * system issued). The final decision is read later with `GET /api/v1/track/conversion/:event_id` (./decision.ts).
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Logger } from '../../infra/index.ts';
import { encodeConversion, viaCustomer } from '../events.ts';
import {
  conversionPartition,
  type PostbackFields,
  parsePostback,
  type TokenAuth,
  type TokenCache,
} from './conversion.ts';
import type { EventIds } from './event-ids.ts';
import { type ReqState, sendAppError, sendError, sendJson } from './http.ts';
import type { TrustedProxies } from './proxies.ts';
import { isMethod, LIMITS, peerAddress, queryTooLong, rawQuery, readBody } from './request.ts';
import type { UuidV7 } from './uuid7.ts';
import type { GroupWriter, Stored } from './writer.ts';

/** What the postback handler shares with the server (built once at start-up). */
export interface PostbackDeps {
  log: Logger;
  proxies: TrustedProxies;
  uuid: UuidV7;
  partitions: number;
  tokens: TokenCache;
  conversions: GroupWriter<Stored>;
  /** The event_id reservations behind the immediate `duplicate` answer. */
  eventIds: EventIds;
  begin(res: HttpResponse, head: boolean): ReqState;
  finish(st: ReqState): void;
  /** Called (without waiting) for each postback refused by its advertiser's IP allowlist: count and record it. */
  onIpRefused(auth: TokenAuth, ip: string, received_ms: number): void;
}

/** The uWS handler of the conversion route. */
export function postbackHandler(deps: PostbackDeps): (res: HttpResponse, req: HttpRequest) => void {
  const { log, proxies, uuid, partitions, tokens, conversions, eventIds, begin, finish, onIpRefused } = deps;

  /** XADDs the conversion and answers `accepted` once acknowledged (503 otherwise, its reservation given back). */
  const store = (
    st: ReqState,
    advertiser_id: number,
    f: PostbackFields,
    conversion_id: string,
    p: number,
    received_ms: number,
    ip: string,
    reserved: boolean,
  ) => {
    const line = encodeConversion({
      conversion_id,
      event_id: f.event_id,
      click_id: f.click_id,
      advertiser_id,
      goal: f.goal,
      amount_minor: f.amount_minor,
      currency: f.currency,
      status: f.status,
      event_time_ms: f.event_time_ms ?? received_ms,
      received_ms,
      ip,
      ...(f.customer_id ? { customer_id: f.customer_id } : {}),
    });
    conversions.add(
      line,
      (ok) => {
        if (ok) {
          if (reserved) eventIds.confirm(advertiser_id, f.event_id, conversion_id);
          sendJson(st, 200, { success: true, data: { decision: 'accepted', conversion_id, event_id: f.event_id } });
        } else {
          if (reserved) eventIds.release(advertiser_id, f.event_id, conversion_id);
          sendAppError(st, 'SERVICE_UNAVAILABLE', 'conversion could not be stored, retry later', undefined, {
            'Retry-After': '5',
          });
        }
        finish(st);
      },
      p,
    );
  };

  const onConversion = (res: HttpResponse, req: HttpRequest) => {
    const post = isMethod(req, 'post');
    const st = begin(res, false);
    try {
      const received_ms = Date.now();
      const query = rawQuery(req);
      const headerToken = req.getHeader('x-postback-token');
      const contentType = req.getHeader('content-type').split(';')[0]!.trim().toLowerCase();
      const contentLength = req.getHeader('content-length');
      const peer = peerAddress(res);
      const ip =
        peer !== '' && proxies.isTrusted(peer) ? proxies.clientIp(peer, req.getHeader('x-forwarded-for')) : peer;
      if (query.length > LIMITS.queryLength) {
        sendError(st, queryTooLong());
        return finish(st);
      }
      const params: Record<string, unknown> = Object.fromEntries(new URLSearchParams(query));
      const go = (body: Record<string, unknown>) => {
        Object.assign(params, body);
        const token = headerToken || (typeof params.token === 'string' ? params.token : '');
        if (token === '' || token.length > 512) {
          sendAppError(st, 'UNAUTHORIZED', 'missing or invalid postback token');
          return finish(st);
        }
        tokens.resolve(token).then(
          (auth) => {
            if (auth === null) {
              sendAppError(st, 'UNAUTHORIZED', 'missing or invalid postback token');
              return finish(st);
            }
            // Checked before anything is parsed or reserved: a refused source learns nothing about its postback.
            if (auth.allowlist !== null && !auth.allowlist.allows(ip)) {
              onIpRefused(auth, ip, received_ms);
              sendAppError(st, 'IP_NOT_ALLOWED', `postbacks from ${ip || 'this address'} are not allowed`);
              return finish(st);
            }
            const advertiser_id = auth.advertiser_id;
            try {
              const f = parsePostback(params, received_ms);
              if (!f.own_click && !viaCustomer(f)) {
                // Not an id this system issued: nothing to attribute, nothing stored.
                sendJson(st, 200, {
                  success: true,
                  data: { decision: 'rejected', reason: 'unknown_click', event_id: f.event_id },
                });
                return finish(st);
              }
              // To its click's partition (the click_id's tag), or its customer's (./conversion.ts).
              const p = conversionPartition(f, advertiser_id, partitions);
              const conversion_id = uuid.next(received_ms, p);
              eventIds.reserve(advertiser_id, f.event_id, conversion_id).then((r) => {
                try {
                  if (r.kind === 'duplicate') {
                    sendJson(st, 200, {
                      success: true,
                      data: { decision: 'duplicate', conversion_id: r.conversion_id, event_id: f.event_id },
                    });
                    return finish(st);
                  }
                  if (r.kind === 'in_progress') {
                    sendAppError(
                      st,
                      'SERVICE_UNAVAILABLE',
                      'a postback of this event_id is being stored, retry',
                      undefined,
                      {
                        'Retry-After': '1',
                      },
                    );
                    return finish(st);
                  }
                  store(st, advertiser_id, f, conversion_id, p, received_ms, ip, r.kind === 'reserved');
                } catch (err) {
                  sendError(st, err);
                  finish(st);
                }
              });
            } catch (err) {
              sendError(st, err);
              finish(st);
            }
          },
          (err: Error) => {
            log.error({ err: err.message }, 'postback token lookup failed');
            sendAppError(st, 'SERVICE_UNAVAILABLE', 'authentication unavailable, retry later', undefined, {
              'Retry-After': '5',
            });
            finish(st);
          },
        );
      };
      if (!post) return go({});
      readBody(res, st, contentType, contentLength, finish, go);
    } catch (err) {
      log.error({ err }, 'conversion handler failed');
      sendError(st, err);
      finish(st);
    }
  };

  return onConversion;
}
