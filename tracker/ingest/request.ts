/**
 * Reading a request on the ingest's uWS path: headers, raw query, sub-ids, peer address, postback body. Every
 * reader here runs synchronously on `req`/`res` before the handler's first await (uWS invalidates `req` after).
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { AppError, validationError } from '../../infra/index.ts';
import { FALLBACK, nativeString, type ReqState, sendAppError, sendError } from './http.ts';
import { normalise } from './proxies.ts';

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

export const SUBS = ['sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const;
/** Header names the click path reads, in uWS's cheapest form (see nativeString). */
export const H = {
  userAgent: nativeString('user-agent'),
  referer: nativeString('referer'),
  acceptLanguage: nativeString('accept-language'),
  forwardedFor: nativeString('x-forwarded-for'),
  eventTime: nativeString('x-event-time'),
  secPurpose: nativeString('sec-purpose'),
  purpose: nativeString('purpose'),
};

const decoder = new TextDecoder();

/**
 * The raw query string (no '?'). Native uWS returns it from getQuery(); the package's pure-JS
 * fallback (used when no binary matches the Node ABI, e.g. Node 22/24) cannot, but keeps it in getUrl().
 */
export function rawQuery(req: HttpRequest): string {
  if (!FALLBACK) return req.getQuery() ?? '';
  const url = req.getUrl();
  const i = url.indexOf('?');
  return i < 0 ? '' : url.slice(i + 1);
}

/** Method test that works with native uWS (lower case) and its fallback (upper case). */
export function isMethod(req: HttpRequest, lower: string): boolean {
  const m = req.getMethod();
  return m === lower || (FALLBACK && m.toLowerCase() === lower);
}

/**
 * Reads sub1..sub5 (decoded; the first occurrence wins) from a raw query into `out`. A value that
 * is not valid percent-encoding is kept as sent.
 */
export function readSubs(query: string, out: string[]): void {
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
export function peerAddress(res: HttpResponse): string {
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
      throw validationError({ body: 'must be a JSON object' }, 'body is not valid JSON');
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) {
      throw validationError({ body: 'must be a JSON object' }, 'body must be a JSON object');
    }
    return v as Record<string, unknown>;
  }
  if (contentType === 'application/x-www-form-urlencoded') {
    return Object.fromEntries(new URLSearchParams(body.toString('utf8')));
  }
  throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'use application/json or application/x-www-form-urlencoded');
}

/**
 * Collects a POST body of at most `LIMITS.bodyBytes` (checked against Content-Length first, then as it arrives) and
 * hands it parsed to `onBody`. A body too large is answered PAYLOAD_TOO_LARGE (closing the connection), an unparsable
 * one with its error; either way `finish(st)` is called.
 */
export function readBody(
  res: HttpResponse,
  st: ReqState,
  contentType: string,
  contentLength: string,
  finish: (st: ReqState) => void,
  onBody: (body: Record<string, unknown>) => void,
): void {
  if (contentLength !== '' && !(Number(contentLength) <= LIMITS.bodyBytes)) {
    sendAppError(st, 'PAYLOAD_TOO_LARGE', `body must be at most ${LIMITS.bodyBytes} bytes`, undefined, undefined, true);
    finish(st);
    return;
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
      onBody(parseBody(contentType, Buffer.concat(chunks)));
    } catch (err) {
      sendError(st, err);
      finish(st);
    }
  });
}

/** The VALIDATION_ERROR of a query string over `LIMITS.queryLength` (click and postback alike). */
export function queryTooLong(): AppError {
  return validationError({ query: `must be at most ${LIMITS.queryLength} characters` }, 'query string too long');
}
