/** The click route (`GET|HEAD /c/:code`, `/api/v1/track/:code`): validate, resolve the link, record, 302. */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { type Config, LINK_CODE_RE, type Logger, validationError } from '../../infra/index.ts';
import { type ClickEvent, clean, encodeClick, fnv1a, partitionOf } from '../events.ts';
import type { CapCounters } from './caps.ts';
import { FUTURE_SKEW_MS, hasControl, MIN_EVENT_TIME_MS } from './conversion.ts';
import { FALLBACK, type ReqState, sendAppError, sendError, sendRedirect } from './http.ts';
import { pickLander } from './landers.ts';
import type { CachedLink, LinkCache } from './link-cache.ts';
import { fillTemplate, type MacroValues, type Template } from './macros.ts';
import type { TrackerMetrics } from './metrics.ts';
import type { TrustedProxies } from './proxies.ts';
import { H, isMethod, LIMITS, peerAddress, queryTooLong, rawQuery, readSubs, SUBS } from './request.ts';
import type { TargetingCheck } from './targeting.ts';
import type { UuidV7 } from './uuid7.ts';
import type { GroupWriter } from './writer.ts';

/** FNV-1a of '\t' after an IP: `ip_user_agent` hashes `${ip}\t${ua}` without building that string. */
const TAB = '\t';

/** What the click handler shares with the server (built once at start-up). */
export interface ClickDeps {
  log: Logger;
  proxies: TrustedProxies;
  uuid: UuidV7;
  keying: Config['STREAM_PARTITION_KEY'];
  partitions: number;
  links: LinkCache;
  /** Decides whether a click of a targeting campaign is inside its targeting. */
  targeting: TargetingCheck;
  /** Where a click outside its campaign's targeting goes when the campaign has no fallback (DEFAULT_FALLBACK_URL). */
  defaultFallback: Template;
  /** Click caps: a capped click goes to the fallback (or 404 without one), recorded `cap_reached`. */
  caps: CapCounters;
  /** Link cache hits and misses are counted here. */
  metrics: Pick<TrackerMetrics, 'linkHit' | 'linkMiss'>;
  /** Its writer answers each click through {@link answerStored} once the event is stored. */
  clicks: GroupWriter<ReqState>;
  begin(res: HttpResponse, head: boolean): ReqState;
  finish(st: ReqState): void;
  /** Under the fallback router: passes a conversion request the click route caught (its state `st`) to the postback handler. */
  handOver(st: ReqState, res: HttpResponse, req: HttpRequest): void;
}

/**
 * Answers a click once its event is stored (also when Redis and the spool both failed: the visitor
 * still reaches the landing page, and the loss is logged by the writer). The caller then finishes `st`. A location
 * sendRedirect refuses is logged to `log`.
 */
export function answerStored(st: ReqState, log?: Logger): void {
  if (st.location !== '') sendRedirect(st, st.location, log);
  else if (st.unavailable) {
    sendAppError(st, 'SERVICE_UNAVAILABLE', 'link lookup unavailable, retry later', undefined, {
      'Retry-After': '1',
    });
  } else sendAppError(st, 'NOT_FOUND', 'link not found');
}

/** The uWS handler of the click routes. */
export function clickHandler(deps: ClickDeps): (res: HttpResponse, req: HttpRequest) => void {
  // Closure slots, as when the handler lived inside startTracker: no property loads per request.
  const {
    log,
    proxies,
    uuid,
    keying,
    partitions,
    links,
    targeting,
    defaultFallback,
    caps,
    clicks,
    begin,
    finish,
    handOver,
  } = deps;
  const { linkHit, linkMiss } = deps.metrics;

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
        if (code === 'conversion' && req.getUrl().startsWith('/api/v1/track/')) return handOver(st, res, req);
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
        sendError(st, validationError({ code: 'must match [A-Za-z0-9_-]{3,64}' }, 'invalid link code'));
        return finish(st);
      }
      if (query.length > LIMITS.queryLength) {
        sendError(st, queryTooLong());
        return finish(st);
      }
      const badSubs: Record<string, string> = {};
      for (let i = 0; i < 5; i++) {
        const s = subs[i]!;
        if (s.length > LIMITS.subLength) badSubs[SUBS[i]!] = `must be at most ${LIMITS.subLength} characters`;
        else if (hasControl(s)) badSubs[SUBS[i]!] = 'must not contain control characters';
      }
      if (Object.keys(badSubs).length > 0) {
        sendError(st, validationError(badSubs, 'invalid sub-id'));
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
          sendError(
            st,
            validationError(
              { 'x-event-time': 'must be epoch milliseconds, from 2000-01-01 and not in the future' },
              'invalid X-Event-Time',
            ),
          );
          return finish(st);
        }
        ts_ms = t;
      }
      const ip = trusted ? proxies.clientIp(peer, xff) : peer;
      const user_agent = clean(ua);
      // The partition is chosen before the click_id, which carries it in its last byte (idTag).
      const p =
        keying === 'ip'
          ? partitionOf(ip, partitions)
          : keying === 'ip_user_agent'
            ? fnv1a(user_agent, fnv1a(TAB, fnv1a(ip))) % partitions
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
        landing_id: 0,
      };
      const link = links.get(code);
      if (link === null || !(link instanceof Promise)) {
        linkHit.inc();
        return recordClick(st, ev, subs, link, p);
      }
      linkMiss.inc();
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
      let target: Template | null = link.invalid_reason === '' ? link.destination : link.fallback;
      if (link.invalid_reason === '') {
        if (link.targeting !== null) {
          // Only campaigns that target anything get here: the others pay one null check per click.
          const miss = targeting.check(link.targeting, ev.ip, ev.user_agent);
          if (miss !== '') {
            ev.invalid_reason = miss;
            target = link.fallback ?? defaultFallback;
          }
        }
        // Only clicks inside the targeting count towards a cap.
        if (
          link.caps !== null &&
          ev.invalid_reason === '' &&
          !caps.admit(link.campaign_id, link.affiliate_id, link.caps, ev.received_ms)
        ) {
          ev.invalid_reason = 'cap_reached';
          target = link.fallback ?? defaultFallback;
        }
        // Split tests: a click that reaches the campaign goes to the link's pin or a weighted landing page.
        if (link.landers !== null && ev.invalid_reason === '') {
          const lander = pickLander(link.landers);
          target = lander.destination;
          ev.landing_id = lander.id;
        }
      }
      if (target !== null) {
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
        st.location = fillTemplate(target, values);
      }
    } else ev.invalid_reason = 'unknown_link';
    clicks.add(encodeClick(ev), st, p);
  };

  return onClick;
}
