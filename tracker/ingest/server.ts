import uWS, { type HttpRequest, type HttpResponse, type us_listen_socket } from 'uWebSockets.js';
import os from 'node:os';
import path from 'node:path';
import {
  AppError,
  type Config,
  createRedis,
  LINK_CODE_RE,
  type Logger,
  type Redis,
  redisKeys,
  type Sql,
  UUID_RE,
} from '../../infra/index.ts';
import { type ClickEvent, clean, encodeClick, encodeConversion, fnv1a, idTag, partitionOf } from '../events.ts';
import { FUTURE_SKEW_MS, hasControl, MIN_EVENT_TIME_MS, parsePostback, TokenCache } from './conversion.ts';
import {
  FALLBACK,
  nativeString,
  type ReqState,
  sendAppError,
  sendError,
  sendJson,
  sendRedirect,
  track,
} from './http.ts';
import { type CachedLink, LinkCache } from './link-cache.ts';
import { fillTemplate, type MacroValues } from './macros.ts';
import { normalise, TrustedProxies } from './proxies.ts';
import { Spool } from './spool.ts';
import { UuidV7 } from './uuid7.ts';
import { callStored, GroupWriter, type Stored } from './writer.ts';

/** Explicit input limits of the ingest. */
export const LIMITS = {
  /** Raw query string of a click, characters. */
  queryLength: 4096,
  /** Each sub1..sub5 value, characters (decoded). */
  subLength: 255,
  /** Each recorded header (User-Agent, Referer, Accept-Language, X-Forwarded-For), characters. */
  headerLength: 4096,
  /** Conversion request body, bytes. */
  bodyBytes: 16 * 1024,
  /** Events per XADD. */
  maxGroup: 1000,
} as const;

const SUBS = ['sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const;
const CLOSE_TIMEOUT_MS = 10_000;
/** Header names the click path reads, in uWS's cheapest form (see nativeString). */
const H = {
  userAgent: nativeString('user-agent'),
  referer: nativeString('referer'),
  acceptLanguage: nativeString('accept-language'),
  forwardedFor: nativeString('x-forwarded-for'),
  eventTime: nativeString('x-event-time'),
  secPurpose: nativeString('sec-purpose'),
  purpose: nativeString('purpose'),
};

export interface TrackerOptions {
  config: Config;
  logger: Logger;
  sql: Sql;
  redisUrl: string;
}

/** A running ingest server. */
export interface Tracker {
  port: number;
  /** `http://<host>:<port>` */
  url: string;
  /** Requests received and not yet answered (waiting for their write or lookup). */
  inflight(): number;
  /** Stops listening, answers every in-flight request after its write is stored, closes connections. */
  close(): Promise<void>;
}

const decoder = new TextDecoder();

/**
 * Starts the uWebSockets.js ingest: `GET|HEAD /c/:code` and `/api/v1/track/:code` (click → 302),
 * `GET|POST /api/v1/track/conversion` (postback), `/healthz`, `/readyz`.
 * Listens on `config.BIND_HOST:config.TRACKER_PORT` (0 = any free port). uWS listens with
 * SO_REUSEPORT on Linux, so several processes can share one port.
 * @throws Error when the port cannot be bound.
 */
export async function startTracker(opts: TrackerOptions): Promise<Tracker> {
  const { config, sql } = opts;
  const log = opts.logger.child({ module: 'ingest' });
  const keys = redisKeys(config.REDIS_PREFIX);
  const P = config.STREAM_PARTITIONS;
  const proxies = new TrustedProxies(config.TRUSTED_PROXIES);
  const uuid = new UuidV7();
  const keying = config.STREAM_PARTITION_KEY;
  /** FNV-1a of '\t' after an IP: `ip_user_agent` hashes `${ip}\t${ua}` without building that string. */
  const TAB = '\t';

  // The hot-path connection fails fast: no offline queue, bounded command time, so an outage
  // sends events to the spool instead of stalling redirects. No auto-pipelining: the writers already
  // send one XADD per turn, and the pipelining machinery would cost more than it saves.
  const redis = createRedis(opts.redisUrl, {
    cluster: config.REDIS_CLUSTER,
    enableAutoPipelining: false,
    enableOfflineQueue: false,
    commandTimeout: config.TRACKER_REDIS_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
  });
  redis.on('error', (err: Error) => log.debug({ err: err.message }, 'redis error'));
  const sub = createRedis(opts.redisUrl, {
    cluster: config.REDIS_CLUSTER,
    autoResubscribe: false,
    maxRetriesPerRequest: null,
  });

  const spool = new Spool(
    path.join(config.DATA_DIR, 'spool'),
    (config.TRACKER_INSTANCE_ID ?? os.hostname()).replace(/[^A-Za-z0-9_-]/g, '_'),
    log,
  );
  await spool.init();
  // A click's wait for its XADD is its request state: the writer hands it back to answerStored.
  const clicks = new GroupWriter<ReqState>(
    redis,
    spool,
    keys.clicks,
    P,
    config.TRACKER_GROUP_COMMIT_MS,
    LIMITS.maxGroup,
    log,
    (st) => answerStored(st),
  );
  const conversions = new GroupWriter<Stored>(redis, spool, keys.conversions, P, 0, LIMITS.maxGroup, log, callStored);
  const links = new LinkCache(sql, config.LINK_NEGATIVE_CACHE_MS, log);
  const tokens = new TokenCache(sql);

  // Spool replay: at start-up, whenever Redis (re)connects, and periodically while anything is spooled.
  let spoolDirty = true;
  const replay = () => {
    if (redis.status !== 'ready' || !(spoolDirty || spool.hasUnreplayed)) return;
    spool.replay(redis).then(
      () => {
        spoolDirty = false;
      },
      (err: Error) => {
        spoolDirty = true;
        log.warn({ err: err.message }, 'spool replay failed, will retry');
      },
    );
  };
  redis.on('ready', replay);
  const replayTimer = setInterval(replay, 1_000);
  replayTimer.unref();

  // Warm the link cache; if Postgres is down, keep serving (cached/unknown links) and retry.
  let warmTimer: NodeJS.Timeout | undefined;
  const warm = async (): Promise<void> => {
    try {
      const n = await links.warm();
      log.info({ links: n }, 'link cache warmed');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'link cache warm-up failed, retrying');
      warmTimer = setTimeout(() => void warm(), 2_000);
      warmTimer.unref();
    }
  };
  await Promise.all([
    // Start-up does not wait for a slow/unreachable Postgres: /readyz says 503 until the warm load ends.
    withTimeout(warm(), 5_000),
    withTimeout(links.subscribe(sub, keys.linkInvalidation), 2_000),
    withTimeout(once(redis, 'ready'), 2_000),
  ]);

  let active = 0;
  let closing = false;
  let idle: (() => void) | undefined;
  const ended = () => {
    active--;
    if (active === 0 && idle) idle();
  };
  const begin = (res: HttpResponse, head: boolean): ReqState => {
    active++;
    return track(res, head, ended);
  };
  // Every request state passes here exactly once when it is answered or aborted.
  const finish = (st: ReqState) => {
    if (!st.aborted) ended();
  };

  /**
   * Answers a click once its event is stored (also when Redis and the spool both failed: the visitor
   * still reaches the landing page, and the loss is logged by the writer).
   */
  const answerStored = (st: ReqState) => {
    if (st.location !== '') sendRedirect(st, st.location);
    else if (st.unavailable) {
      sendAppError(st, 'SERVICE_UNAVAILABLE', 'link lookup unavailable, retry later', undefined, {
        'Retry-After': '1',
      });
    } else sendAppError(st, 'NOT_FOUND', 'link not found');
    finish(st);
  };

  const onClick = (res: HttpResponse, req: HttpRequest) => {
    const head = isMethod(req, 'head');
    const st = begin(res, head);
    try {
      const received_ms = Date.now();
      let code = req.getParameter(0) ?? '';
      const query = rawQuery(req);
      if (FALLBACK) {
        // The fallback router leaves the query in the parameter and does not rank static routes first.
        const q = code.indexOf('?');
        if (q >= 0) code = code.slice(0, q);
        if (code === 'conversion' && req.getUrl().startsWith('/api/v1/track/')) {
          active--;
          st.done = true;
          return onConversion(res, req);
        }
      }
      const ua = req.getHeader(H.userAgent);
      const referer = req.getHeader(H.referer);
      const lang = req.getHeader(H.acceptLanguage);
      const xff = req.getHeader(H.forwardedFor);
      const eventTime = req.getHeader(H.eventTime);
      const purpose = req.getHeader(H.secPurpose) || req.getHeader(H.purpose);
      const subs: string[] = ['', '', '', '', ''];
      if (query.includes('sub')) readSubs(query, subs);
      const peer = peerAddress(res);

      if (!LINK_CODE_RE.test(code)) {
        sendAppError(st, 'VALIDATION_ERROR', 'invalid link code', { code: 'must match [A-Za-z0-9_-]{3,64}' });
        return finish(st);
      }
      if (query.length > LIMITS.queryLength) {
        sendAppError(st, 'VALIDATION_ERROR', 'query string too long', {
          query: `must be at most ${LIMITS.queryLength} characters`,
        });
        return finish(st);
      }
      const badSubs: Record<string, string> = {};
      for (let i = 0; i < 5; i++) {
        const s = subs[i]!;
        if (s.length > LIMITS.subLength) badSubs[SUBS[i]!] = `must be at most ${LIMITS.subLength} characters`;
        else if (hasControl(s)) badSubs[SUBS[i]!] = 'must not contain control characters';
      }
      if (Object.keys(badSubs).length > 0) {
        sendAppError(st, 'VALIDATION_ERROR', 'invalid sub-id', badSubs);
        return finish(st);
      }
      const long =
        ua.length > LIMITS.headerLength
          ? 'user-agent'
          : referer.length > LIMITS.headerLength
            ? 'referer'
            : lang.length > LIMITS.headerLength
              ? 'accept-language'
              : xff.length > LIMITS.headerLength
                ? 'x-forwarded-for'
                : purpose.length > LIMITS.headerLength
                  ? 'purpose'
                  : '';
      if (long !== '') {
        sendAppError(st, 'HEADERS_TOO_LARGE', 'header too large', {
          [long]: `must be at most ${LIMITS.headerLength} characters`,
        });
        return finish(st);
      }
      let ts_ms = received_ms;
      const trusted = peer !== '' && proxies.isTrusted(peer);
      if (trusted && eventTime !== '') {
        const t = /^\d{1,15}$/.test(eventTime) ? Number(eventTime) : Number.NaN;
        if (!(t <= received_ms + FUTURE_SKEW_MS && t >= MIN_EVENT_TIME_MS)) {
          sendAppError(st, 'VALIDATION_ERROR', 'invalid X-Event-Time', {
            'x-event-time': 'must be epoch milliseconds, from 2000-01-01 and not in the future',
          });
          return finish(st);
        }
        ts_ms = t;
      }
      const ip = trusted ? proxies.clientIp(peer, xff) : peer;
      const user_agent = clean(ua);
      // The partition is chosen before the click_id, which carries it in its last byte (idTag).
      const p =
        keying === 'ip'
          ? partitionOf(ip, P)
          : keying === 'ip_user_agent'
            ? fnv1a(user_agent, fnv1a(TAB, fnv1a(ip))) % P
            : clicks.roundRobin();
      const ev: ClickEvent = {
        click_id: uuid.next(received_ms, p),
        ts_ms,
        received_ms,
        link_code: code,
        campaign_id: 0,
        affiliate_id: 0,
        advertiser_id: 0,
        ip,
        method: head ? 'HEAD' : 'GET',
        query: clean(query),
        user_agent,
        referer: clean(referer),
        accept_language: clean(lang),
        purpose: clean(purpose),
        invalid_reason: '',
      };
      const link = links.get(code);
      if (link === null || !(link instanceof Promise)) return recordClick(st, ev, subs, link, p);
      link.then(
        (l) => recordClick(st, ev, subs, l, p),
        (err: Error) => {
          // Postgres is down and the link is not cached: record the click, ask the client to retry.
          log.error({ err: err.message, code }, 'link lookup failed');
          ev.invalid_reason = 'unknown_link';
          st.unavailable = true;
          clicks.add(encodeClick(ev), st, p);
        },
      );
    } catch (err) {
      log.error({ err }, 'click handler failed');
      sendError(st, err);
      finish(st);
    }
  };

  const recordClick = (st: ReqState, ev: ClickEvent, subs: string[], link: CachedLink | null, p: number) => {
    if (link) {
      ev.campaign_id = link.campaign_id;
      ev.affiliate_id = link.affiliate_id;
      ev.advertiser_id = link.advertiser_id;
      ev.invalid_reason = link.invalid_reason;
      // Link default sub-ids the click did not carry are appended to the recorded query, so the
      // pipeline (which reads sub1..sub5 from the query) sees the effective values.
      const d = link.subs;
      for (let i = 0; i < 5; i++) {
        if (subs[i] === '' && d[i] !== '') {
          ev.query += (ev.query === '' ? '' : '&') + SUBS[i] + '=' + encodeURIComponent(d[i]!);
        }
      }
      if (link.invalid_reason === '' || link.fallback) {
        const values: MacroValues = [
          ev.click_id,
          link.campaign_id_text,
          link.affiliate_id_text,
          subs[0] || d[0],
          subs[1] || d[1],
          subs[2] || d[2],
          subs[3] || d[3],
          subs[4] || d[4],
        ];
        st.location = fillTemplate(link.invalid_reason === '' ? link.destination : link.fallback!, values);
      }
    } else ev.invalid_reason = 'unknown_link';
    clicks.add(encodeClick(ev), st, p);
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
        sendAppError(st, 'VALIDATION_ERROR', 'query string too long', {
          query: `must be at most ${LIMITS.queryLength} characters`,
        });
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
              const p = UUID_RE.test(f.click_id) ? idTag(f.click_id) % P : conversions.roundRobin();
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

      if (contentLength !== '' && !(Number(contentLength) <= LIMITS.bodyBytes)) {
        sendAppError(
          st,
          'PAYLOAD_TOO_LARGE',
          `body must be at most ${LIMITS.bodyBytes} bytes`,
          undefined,
          undefined,
          true,
        );
        return finish(st);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.onData((chunk, isLast) => {
        if (st.done) return;
        size += chunk.byteLength;
        if (size > LIMITS.bodyBytes) {
          sendAppError(
            st,
            'PAYLOAD_TOO_LARGE',
            `body must be at most ${LIMITS.bodyBytes} bytes`,
            undefined,
            undefined,
            true,
          );
          return finish(st);
        }
        chunks.push(Buffer.from(chunk.slice(0)));
        if (!isLast) return;
        try {
          go(parseBody(contentType, Buffer.concat(chunks)));
        } catch (err) {
          sendError(st, err);
          finish(st);
        }
      });
    } catch (err) {
      log.error({ err }, 'conversion handler failed');
      sendError(st, err);
      finish(st);
    }
  };

  const methodNotAllowed = (allow: string) => (res: HttpResponse, req: HttpRequest) => {
    const st = begin(res, isMethod(req, 'head'));
    sendAppError(st, 'METHOD_NOT_ALLOWED', `method not allowed; use ${allow}`, undefined, { Allow: allow });
    finish(st);
  };

  const app = uWS.App();
  for (const route of ['/c/:code', '/api/v1/track/:code']) {
    app.get(route, onClick).head(route, onClick).any(route, methodNotAllowed('GET, HEAD'));
  }
  app
    .get('/api/v1/track/conversion', onConversion)
    .post('/api/v1/track/conversion', onConversion)
    .any('/api/v1/track/conversion', methodNotAllowed('GET, POST'))
    .get('/healthz', (res) => {
      const st = begin(res, false);
      sendJson(st, 200, { success: true, data: { status: 'ok' } });
      finish(st);
    })
    .any('/healthz', methodNotAllowed('GET'))
    .get('/readyz', (res) => {
      const st = begin(res, false);
      const redisReady = redis.status === 'ready';
      spool.writable().then((spoolOk) => {
        const ready = !closing && links.loaded && (redisReady || spoolOk);
        const data = { ready, links_loaded: links.loaded, redis: redisReady, spool_writable: spoolOk };
        if (ready) sendJson(st, 200, { success: true, data });
        else sendAppError(st, 'SERVICE_UNAVAILABLE', 'not ready', data);
        finish(st);
      });
    })
    .any('/readyz', methodNotAllowed('GET'))
    .any('/*', (res, req) => {
      const st = begin(res, isMethod(req, 'head'));
      sendAppError(st, 'NOT_FOUND', 'not found');
      finish(st);
    });

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(config.BIND_HOST, config.TRACKER_PORT, (ls) => {
      if (ls) resolve(ls);
      else reject(new Error(`tracker cannot listen on ${config.BIND_HOST}:${config.TRACKER_PORT}`));
    });
  }).catch((err: Error) => {
    clearInterval(replayTimer);
    if (warmTimer) clearTimeout(warmTimer);
    links.close();
    redis.disconnect();
    throw err;
  });
  const port = uWS.us_socket_local_port(listenSocket as unknown as uWS.us_socket);
  const host = config.BIND_HOST.includes(':') ? `[${config.BIND_HOST}]` : config.BIND_HOST;
  log.info({ port, partitions: P }, 'tracker listening');

  let closed: Promise<void> | undefined;
  return {
    port,
    url: `http://${host}:${port}`,
    inflight: () => active,
    close() {
      closed ??= (async () => {
        closing = true;
        uWS.us_listen_socket_close(listenSocket);
        clearInterval(replayTimer);
        if (warmTimer) clearTimeout(warmTimer);
        // In-flight requests are answered once their events are stored (or time out).
        const drained = new Promise<void>((r) => {
          idle = r;
          if (active === 0) r();
        });
        clicks.flush();
        conversions.flush();
        await withTimeout(drained, CLOSE_TIMEOUT_MS);
        await clicks.drain();
        await conversions.drain();
        await spool.drain();
        await spool.closeActive();
        links.close();
        await redis.quit().catch(() => redis.disconnect());
        log.info('tracker closed');
      })();
      return closed;
    },
  };
}

/**
 * The raw query string (no '?'). Native uWS returns it from getQuery(); the package's pure-JS
 * fallback (used when no binary matches the Node ABI, e.g. Node 22/24) cannot, but keeps it in getUrl().
 */
function rawQuery(req: HttpRequest): string {
  if (!FALLBACK) return req.getQuery() ?? '';
  const url = req.getUrl();
  const i = url.indexOf('?');
  return i < 0 ? '' : url.slice(i + 1);
}

/** Method test that works with native uWS (lower case) and its fallback (upper case). */
function isMethod(req: HttpRequest, lower: string): boolean {
  const m = req.getMethod();
  return m === lower || (FALLBACK && m.toLowerCase() === lower);
}

/**
 * Reads sub1..sub5 (decoded; the first occurrence wins) from a raw query into `out`. A value that
 * is not valid percent-encoding is kept as sent.
 */
function readSubs(query: string, out: string[]): void {
  let start = 0;
  while (start < query.length) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    if (query.startsWith('sub', start) && query.charCodeAt(start + 4) === 61 /* = */) {
      const n = query.charCodeAt(start + 3) - 49; // '1' → 0
      if (n >= 0 && n < 5 && out[n] === '') {
        const raw = query.slice(start + 5, end);
        out[n] = needsDecoding(raw) ? decodeQueryValue(raw) : raw;
      }
    }
    start = end + 1;
  }
}

/** Whether a raw query value holds '%' or '+' (most sub-ids are plain words and are used as they are). */
function needsDecoding(raw: string): boolean {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 /* % */ || c === 43 /* + */) return true;
  }
  return false;
}

/** application/x-www-form-urlencoded value decoding; a malformed escape keeps the value as sent. */
function decodeQueryValue(raw: string): string {
  const v = raw.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

const peers = new Map<string, string>();
const peersV4 = new Map<number, string>();
/**
 * The peer's address in normalised text form ('' when uWS reports none), memoised. IPv4 peers (also
 * IPv4-mapped on a dual-stack socket) are looked up by their 32-bit value from the binary address,
 * which skips creating and decoding the text form on every request.
 */
function peerAddress(res: HttpResponse): string {
  if (FALLBACK) return memoPeer(res.response?.socket?.remoteAddress ?? '');
  const b = new Uint8Array(res.getRemoteAddress());
  const v4 = b.length === 4 ? 0 : b.length === 16 && isV4Mapped(b) ? 12 : -1;
  if (v4 < 0) return memoPeer(decoder.decode(res.getRemoteAddressAsText()));
  const key = ((b[v4]! << 24) | (b[v4 + 1]! << 16) | (b[v4 + 2]! << 8) | b[v4 + 3]!) >>> 0;
  let ip = peersV4.get(key);
  if (ip === undefined) {
    ip = `${b[v4]}.${b[v4 + 1]}.${b[v4 + 2]}.${b[v4 + 3]}`;
    if (peersV4.size > 10_000) peersV4.clear();
    peersV4.set(key, ip);
  }
  return ip;
}

/** ::ffff:a.b.c.d (RFC 4291 §2.5.5.2). */
function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

function memoPeer(raw: string): string {
  let ip = peers.get(raw);
  if (ip === undefined) {
    ip = normalise(raw);
    if (peers.size > 10_000) peers.clear();
    peers.set(raw, ip);
  }
  return ip;
}

/**
 * Parses a postback body: JSON object or x-www-form-urlencoded (an empty body is fine).
 * @throws AppError UNSUPPORTED_MEDIA_TYPE or VALIDATION_ERROR.
 */
function parseBody(contentType: string, body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  if (contentType === 'application/json') {
    let v: unknown;
    try {
      v = JSON.parse(body.toString('utf8'));
    } catch {
      throw new AppError('VALIDATION_ERROR', 'body is not valid JSON', { body: 'must be a JSON object' });
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) {
      throw new AppError('VALIDATION_ERROR', 'body must be a JSON object', { body: 'must be a JSON object' });
    }
    return v as Record<string, unknown>;
  }
  if (contentType === 'application/x-www-form-urlencoded') {
    return Object.fromEntries(new URLSearchParams(body.toString('utf8')));
  }
  throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'use application/json or application/x-www-form-urlencoded');
}

function once(r: Redis, event: string): Promise<void> {
  if (r.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => r.once(event, () => resolve()));
}

function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      () => {
        clearTimeout(t);
        resolve();
      },
    );
  });
}
