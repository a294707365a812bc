/**
 * The S2S conversion postback (`GET|POST /api/v1/track/conversion`): authenticate, validate, store, answer. The
 * answer says what the tracker knows at once: `accepted` (stored, with its conversion_id), `duplicate` (the event_id
 * was accepted before: the original conversion_id), `rejected` `unknown_click` (the click_id is not an id this
 * system issued). The final decision is read later with `GET /api/v1/track/conversion/:event_id` (./decision.ts).
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Logger } from '../../infra/index.ts';
import { parsePostback, type TokenAuth, type TokenCache } from './conversion.ts';
import type { EventIds } from './event-ids.ts';
import { type ReqState, sendAppError, sendError, sendJson } from './http.ts';
import type { TrustedProxies } from './proxies.ts';
import { isMethod, LIMITS, peerAddress, queryTooLong, rawQuery, readBody } from './request.ts';
import { type ConversionStore, storeConversion } from './store-conversion.ts';
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

  const store: ConversionStore = { uuid, partitions, conversions, eventIds };

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
              const fields = parsePostback(params, received_ms);
              storeConversion(store, { advertiser_id, fields, received_ms, ip, source: 's2s' }, (r) => {
                if (r.outcome === 'unavailable' || r.outcome === 'failed') sendError(st, r.error);
                else sendJson(st, 200, { success: true, data: r.data });
                finish(st);
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
