/** The S2S conversion postback (`GET|POST /api/v1/track/conversion`): authenticate, validate, store, answer. */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { type Logger, UUID_RE } from '../../infra/index.ts';
import { encodeConversion, idTag } from '../events.ts';
import { parsePostback, type TokenCache } from './conversion.ts';
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
  begin(res: HttpResponse, head: boolean): ReqState;
  finish(st: ReqState): void;
}

/** The uWS handler of the conversion route. */
export function postbackHandler(deps: PostbackDeps): (res: HttpResponse, req: HttpRequest) => void {
  const { log, proxies, uuid, partitions, tokens, conversions, begin, finish } = deps;

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
        tokens.advertiser(token).then(
          (advertiser_id) => {
            if (advertiser_id === null) {
              sendAppError(st, 'UNAUTHORIZED', 'missing or invalid postback token');
              return finish(st);
            }
            try {
              const f = parsePostback(params, received_ms);
              // To its click's partition (the click_id's tag), so the pipeline finds the click there; a click_id
              // that is not a UUID has no click to find and goes round robin.
              const p = UUID_RE.test(f.click_id) ? idTag(f.click_id) % partitions : conversions.roundRobin();
              const conversion_id = uuid.next(received_ms, p);
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
              });
              conversions.add(
                line,
                (ok) => {
                  if (ok) {
                    sendJson(st, 200, {
                      success: true,
                      data: { decision: 'accepted', conversion_id, event_id: f.event_id },
                    });
                  } else {
                    sendAppError(st, 'SERVICE_UNAVAILABLE', 'conversion could not be stored, retry later', undefined, {
                      'Retry-After': '5',
                    });
                  }
                  finish(st);
                },
                p,
              );
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
