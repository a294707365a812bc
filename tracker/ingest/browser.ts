/**
 * Conversions from advertisers' web pages, beside the S2S postback (./postback.ts) on the same path: the same
 * validation (parsePostback), event_id reservation (./event-ids.ts), conversions stream and answers. What differs:
 *
 * - the credential is a publishable key (`pk_live_…` / `pk_test_…`, ./publishable-keys.ts), public by design and
 *   valid only from the origins its advertiser listed: the CORS preflight answers only those, and the POST checks
 *   `Origin` (the pixel checks the `Referer`'s origin, an image request has no `Origin`);
 * - a browser is not trusted: the conversion is `pending` whatever the page sends, takes the tracker's receive time
 *   (no `event_time`), and carries the key's mode so the pipeline attributes it only to a campaign of that mode;
 * - each (key, client IP) may send BROWSER_CONVERSION_RATE_POINTS per window, counted in this process's memory.
 *
 * Routes: `OPTIONS|POST /api/v1/track/conversion/browser`, `GET /api/v1/track/pixel` (always a 1×1 GIF, deciding
 * quietly), `GET /s.js` (./browser-script.ts).
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError, counterOn, type Logger, type Registry } from '../../infra/index.ts';
import { encodeConversion, viaCustomer } from '../events.ts';
import { BROWSER_SCRIPT } from './browser-script.ts';
import { conversionPartition, type PostbackFields, parsePostback } from './conversion.ts';
import type { EventIds } from './event-ids.ts';
import { FALLBACK, type ReqState, sendError, sendJson, statusLine } from './http.ts';
import type { TrustedProxies } from './proxies.ts';
import type { PublishableKey, PublishableKeyCache } from './publishable-keys.ts';
import { isMethod, LIMITS, peerAddress, queryTooLong, rawQuery, readBody } from './request.ts';
import type { UuidV7 } from './uuid7.ts';
import type { GroupWriter, Stored } from './writer.ts';

/** How long a browser may cache a preflight answer, s. */
const PREFLIGHT_MAX_AGE_S = 600;
/** How long browsers and CDNs may cache `/s.js`, s. */
const SCRIPT_MAX_AGE_S = 3600;
/** A transparent 1×1 GIF (43 bytes). */
const GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
const SCRIPT = Buffer.from(BROWSER_SCRIPT, 'utf8');

/** What the browser handlers share with the server (built once at start-up). */
export interface BrowserDeps {
  log: Logger;
  proxies: TrustedProxies;
  uuid: UuidV7;
  partitions: number;
  keys: PublishableKeyCache;
  conversions: GroupWriter<Stored>;
  eventIds: EventIds;
  registry: Registry;
  /** Requests per (key, client IP) per `rateWindowS`. */
  ratePoints: number;
  rateWindowS: number;
  begin(res: HttpResponse, head: boolean): ReqState;
  finish(st: ReqState): void;
}

/** Outcome label of `tracker_browser_conversions_total`. */
type Outcome =
  | 'accepted'
  | 'duplicate'
  | 'rejected'
  | 'invalid_key'
  | 'origin_not_allowed'
  | 'rate_limited'
  | 'invalid'
  | 'unavailable';

/** What a browser conversion came to (the JSON route answers it, the pixel keeps it to itself). */
type Result = { status: number; body: unknown; headers?: Record<string, string>; outcome: Outcome };

/** The uWS handlers of the browser routes. */
export interface BrowserHandlers {
  conversion(res: HttpResponse, req: HttpRequest): void;
  preflight(res: HttpResponse, req: HttpRequest): void;
  pixel(res: HttpResponse, req: HttpRequest): void;
  script(res: HttpResponse, req: HttpRequest): void;
}

/** Builds the handlers of `/api/v1/track/conversion/browser`, `/api/v1/track/pixel` and `/s.js`. */
export function browserHandlers(deps: BrowserDeps): BrowserHandlers {
  const { log, proxies, uuid, partitions, keys, conversions, eventIds, begin, finish } = deps;
  const limiter = new RateLimiterMemory({ points: deps.ratePoints, duration: deps.rateWindowS });
  const counter = counterOn(deps.registry, {
    name: 'tracker_browser_conversions_total',
    help: 'Browser conversions and pixel hits by source (browser, pixel) and outcome (accepted, duplicate, rejected, invalid_key, origin_not_allowed, rate_limited, invalid, unavailable)',
    labelNames: ['source', 'outcome'],
  });

  const clientIp = (res: HttpResponse, req: HttpRequest): string => {
    const peer = peerAddress(res);
    return peer !== '' && proxies.isTrusted(peer) ? proxies.clientIp(peer, req.getHeader('x-forwarded-for')) : peer;
  };

  const fail = (code: AppError['code'], message: string, outcome: Outcome, headers?: Record<string, string>) => {
    const e = new AppError(code, message, undefined, headers);
    return { status: e.status, body: e.toBody(), headers, outcome } satisfies Result;
  };

  /**
   * Key, origin, rate limit, validation, then the reservation and the XADD of ./postback.ts. `cors` is the header set
   * answered to an allowed origin (none for the pixel). Calls `done` exactly once; never throws.
   */
  const submit = (
    keyText: string,
    origin: string,
    ip: string,
    params: Record<string, unknown>,
    cors: (o: string) => Record<string, string> | undefined,
    done: (r: Result) => void,
  ) => {
    const received_ms = Date.now();
    keys.get(keyText).then(
      (key) => {
        if (key === null)
          return done(fail('INVALID_KEY', 'missing, unknown or revoked publishable key', 'invalid_key'));
        if (origin === '' || !key.origins.has(origin)) {
          return done(fail('ORIGIN_NOT_ALLOWED', 'this origin may not use this publishable key', 'origin_not_allowed'));
        }
        const headers = cors(origin);
        limiter.consume(`${key.id}|${ip}`).then(
          () => validated(key, params, received_ms, ip, headers, done),
          (e: unknown) => {
            if (!(e instanceof RateLimiterRes)) {
              log.error({ err: (e as Error).message }, 'browser conversion rate limiter failed');
              return done(fail('SERVICE_UNAVAILABLE', 'retry later', 'unavailable', headers));
            }
            done(
              fail('RATE_LIMITED', 'too many conversions from this browser', 'rate_limited', {
                ...headers,
                'Retry-After': String(Math.max(1, Math.ceil(e.msBeforeNext / 1000))),
              }),
            );
          },
        );
      },
      (err: Error) => {
        log.error({ err: err.message }, 'publishable key lookup failed');
        done(
          fail('SERVICE_UNAVAILABLE', 'authentication unavailable, retry later', 'unavailable', { 'Retry-After': '5' }),
        );
      },
    );
  };

  const validated = (
    key: PublishableKey,
    params: Record<string, unknown>,
    received_ms: number,
    ip: string,
    headers: Record<string, string> | undefined,
    done: (r: Result) => void,
  ) => {
    let f: PostbackFields;
    try {
      // Not the browser's to say: the advertiser approves (or its hold period does), at our clock.
      f = parsePostback({ ...params, status: 'pending', event_time: undefined, token: undefined }, received_ms);
    } catch (err) {
      const e = err instanceof AppError ? err : new AppError('VALIDATION_ERROR', 'invalid conversion');
      return done({ status: e.status, body: e.toBody(), headers, outcome: 'invalid' });
    }
    const ok = (data: unknown, outcome: Outcome) =>
      done({ status: 200, body: { success: true, data }, headers, outcome });
    if (!f.own_click && !viaCustomer(f))
      return ok({ decision: 'rejected', reason: 'unknown_click', event_id: f.event_id }, 'rejected');
    const p = conversionPartition(f, key.advertiser_id, partitions);
    const conversion_id = uuid.next(received_ms, p);
    const advertiser_id = key.advertiser_id;
    eventIds.reserve(advertiser_id, f.event_id, conversion_id).then((r) => {
      if (r.kind === 'duplicate') {
        return ok({ decision: 'duplicate', conversion_id: r.conversion_id, event_id: f.event_id }, 'duplicate');
      }
      if (r.kind === 'in_progress') {
        return done(
          fail('SERVICE_UNAVAILABLE', 'a conversion of this event_id is being stored, retry', 'unavailable', {
            ...headers,
            'Retry-After': '1',
          }),
        );
      }
      const reserved = r.kind === 'reserved';
      const line = encodeConversion({
        conversion_id,
        event_id: f.event_id,
        click_id: f.click_id,
        advertiser_id,
        goal: f.goal,
        amount_minor: f.amount_minor,
        currency: f.currency,
        status: 'pending',
        event_time_ms: received_ms,
        received_ms,
        ip,
        mode: key.mode,
        ...(f.customer_id ? { customer_id: f.customer_id } : {}),
      });
      conversions.add(
        line,
        (stored) => {
          if (stored) {
            if (reserved) eventIds.confirm(advertiser_id, f.event_id, conversion_id);
            return ok({ decision: 'accepted', conversion_id, event_id: f.event_id }, 'accepted');
          }
          if (reserved) eventIds.release(advertiser_id, f.event_id, conversion_id);
          done(
            fail('SERVICE_UNAVAILABLE', 'conversion could not be stored, retry later', 'unavailable', {
              ...headers,
              'Retry-After': '5',
            }),
          );
        },
        p,
      );
    });
  };

  const corsFor = (origin: string) => ({ 'Access-Control-Allow-Origin': origin, Vary: 'Origin' });

  return {
    conversion(res, req) {
      const st = begin(res, false);
      try {
        const origin = req.getHeader('origin');
        const ip = clientIp(res, req);
        const query = rawQuery(req);
        const contentType = req.getHeader('content-type').split(';')[0]!.trim().toLowerCase();
        const contentLength = req.getHeader('content-length');
        if (query.length > LIMITS.queryLength) {
          sendError(st, queryTooLong());
          return finish(st);
        }
        // text/plain is what s.js sends (a CORS-safelisted type: no preflight, and a beacon may carry it).
        const bodyType = contentType === 'text/plain' ? 'application/json' : contentType;
        readBody(res, st, bodyType, contentLength, finish, (body) => {
          const q = new URLSearchParams(query);
          const keyText = q.get('key') ?? (typeof body.key === 'string' ? body.key : '');
          submit(keyText, origin, ip, body, corsFor, (r) => {
            counter.labels('browser', r.outcome).inc();
            // An unknown key may be read by the page (it tells nothing); a refused origin may not.
            const headers = r.outcome === 'invalid_key' && origin !== '' ? corsFor(origin) : r.headers;
            sendJson(st, r.status, r.body, headers);
            finish(st);
          });
        });
      } catch (err) {
        log.error({ err }, 'browser conversion handler failed');
        sendError(st, err);
        finish(st);
      }
    },

    preflight(res, req) {
      const st = begin(res, false);
      const origin = req.getHeader('origin');
      const keyText = new URLSearchParams(rawQuery(req)).get('key') ?? '';
      keys.get(keyText).then(
        (key) => {
          if (key === null || origin === '' || !key.origins.has(origin)) {
            // No Access-Control-* headers: the browser refuses the request that asked.
            sendError(st, new AppError('ORIGIN_NOT_ALLOWED', 'this origin may not use this publishable key'));
          } else {
            sendEmpty(st, 204, {
              ...corsFor(origin),
              'Access-Control-Allow-Methods': 'POST',
              'Access-Control-Allow-Headers': 'content-type',
              'Access-Control-Max-Age': String(PREFLIGHT_MAX_AGE_S),
            });
          }
          finish(st);
        },
        () => {
          sendError(st, new AppError('SERVICE_UNAVAILABLE', 'retry later', undefined, { 'Retry-After': '5' }));
          finish(st);
        },
      );
    },

    pixel(res, req) {
      const st = begin(res, false);
      const query = rawQuery(req);
      const ip = clientIp(res, req);
      const referer = req.getHeader('referer');
      // Answered at once: the image means nothing, and a page never waits on it. The request stays in flight (a
      // closing tracker waits for it) until its conversion is decided.
      sendBody(st, 200, 'image/gif', GIF, 'no-store');
      if (query.length > LIMITS.queryLength) {
        counter.labels('pixel', 'invalid').inc();
        return finish(st);
      }
      const params: Record<string, unknown> = Object.fromEntries(new URLSearchParams(query));
      const keyText = typeof params.key === 'string' ? params.key : '';
      submit(
        keyText,
        originOf(referer),
        ip,
        params,
        () => undefined,
        (r) => {
          counter.labels('pixel', r.outcome).inc();
          if (r.outcome !== 'accepted' && r.outcome !== 'duplicate') log.debug({ outcome: r.outcome }, 'pixel refused');
          finish(st);
        },
      );
    },

    script(res, req) {
      const st = begin(res, isMethod(req, 'head'));
      sendBody(st, 200, 'text/javascript; charset=utf-8', SCRIPT, `public, max-age=${SCRIPT_MAX_AGE_S}`);
      finish(st);
    },
  };
}

/** `scheme://host[:port]` of a URL, '' when it is not one. */
function originOf(url: string): string {
  if (url === '') return '';
  try {
    const o = new URL(url).origin;
    return o === 'null' ? '' : o;
  } catch {
    return '';
  }
}

/** A body-less answer (the preflight's 204). No-op when aborted or already answered. */
function sendEmpty(st: ReqState, status: number, headers: Record<string, string>): void {
  if (st.done || st.aborted) return;
  st.done = true;
  st.status = status;
  st.res.cork(() => {
    st.res.writeStatus(statusLine(status));
    for (const k in headers) st.res.writeHeader(k, headers[k]!);
    st.res.end();
  });
}

/** A fixed body (the GIF, the script). No-op when aborted or already answered. */
function sendBody(st: ReqState, status: number, contentType: string, body: Buffer, cacheControl: string): void {
  if (st.done || st.aborted) return;
  st.done = true;
  st.status = status;
  st.res.cork(() => {
    st.res
      .writeStatus(statusLine(status))
      .writeHeader('Content-Type', contentType)
      .writeHeader('Cache-Control', cacheControl)
      .writeHeader('X-Content-Type-Options', 'nosniff');
    if (st.head && !FALLBACK) st.res.endWithoutBody(body.length);
    else st.res.end(body);
  });
}
