import uWS, { type HttpResponse } from 'uWebSockets.js';
import { STATUS_CODES } from 'node:http';
import { AppError, type ErrorCode, errorBody, type Logger } from '../../infra/index.ts';

/**
 * Whether uWebSockets.js runs its pure-JS fallback (the package has no native binary for this Node
 * ABI, e.g. Node 22/24). The fallback lacks a few calls (endWithoutBody, remote address, raw
 * query), which the ingest then replaces.
 */
export const FALLBACK = typeof (uWS as unknown as { getParts?: unknown }).getParts !== 'function';

/**
 * A constant header name or value in the form native uWS reads cheapest: a typed array is read in
 * place, while a JS string is converted to UTF-8 into a fresh allocation on every call (the fallback
 * wants strings).
 */
export function nativeString(s: string): uWS.RecognizedString {
  return FALLBACK ? s : new TextEncoder().encode(s);
}

const STATUS_302 = nativeString('302 Found');
const LOCATION = nativeString('Location');
const CACHE_CONTROL = nativeString('Cache-Control');
const NO_STORE = nativeString('no-store');

const STATUS_LINE = new Map<number, string>();
/** "404 Not Found" for 404 (uWS wants the whole status line). */
export function statusLine(status: number): string {
  let s = STATUS_LINE.get(status);
  if (!s) {
    s = `${status} ${STATUS_CODES[status] ?? ''}`;
    STATUS_LINE.set(status, s);
  }
  return s;
}

/**
 * Per-request state shared by the uWS handlers: uWS forbids touching `res` after `onAborted`, and
 * each request must be answered once.
 */
export interface ReqState {
  res: HttpResponse;
  aborted: boolean;
  done: boolean;
  head: boolean;
  /**
   * For a click waiting for its write: the 302 target, or '' to answer NOT_FOUND (or
   * SERVICE_UNAVAILABLE when `unavailable`). Kept on the state so the wait needs no closure.
   */
  location: string;
  unavailable: boolean;
  /** HTTP status it was answered with; 0 until then (an aborted request stays 0). For the metrics. */
  status: number;
  /** `performance.now()` when the request arrived, ms. */
  t0: number;
}

/** Registers the abort handler (mandatory in uWS before returning without answering). */
export function track(res: HttpResponse, head: boolean, onEnd?: () => void): ReqState {
  const st: ReqState = {
    res,
    aborted: false,
    done: false,
    head,
    location: '',
    unavailable: false,
    status: 0,
    t0: performance.now(),
  };
  res.onAborted(() => {
    st.aborted = true;
    if (!st.done) {
      st.done = true;
      onEnd?.();
    }
  });
  return st;
}

/** Writes a JSON response (corked). No-op when the request was aborted or already answered. */
export function sendJson(
  st: ReqState,
  status: number,
  body: unknown,
  headers?: Record<string, string>,
  closeConnection = false,
): void {
  if (st.done || st.aborted) return;
  st.done = true;
  st.status = status;
  const json = JSON.stringify(body);
  st.res.cork(() => {
    st.res.writeStatus(statusLine(status)).writeHeader('Content-Type', 'application/json; charset=utf-8');
    st.res.writeHeader('Cache-Control', 'no-store');
    if (headers) for (const k in headers) st.res.writeHeader(k, headers[k]!);
    if (st.head && !FALLBACK) st.res.endWithoutBody(Buffer.byteLength(json), closeConnection);
    else st.res.end(json, closeConnection);
  });
}

/** Writes a text response (corked), e.g. the Prometheus exposition. No-op when aborted or already answered. */
export function sendText(st: ReqState, status: number, contentType: string, body: string): void {
  if (st.done || st.aborted) return;
  st.done = true;
  st.status = status;
  st.res.cork(() => {
    st.res.writeStatus(statusLine(status)).writeHeader('Content-Type', contentType);
    st.res.writeHeader('Cache-Control', 'no-store');
    st.res.end(body);
  });
}

/** Writes the error envelope for any thrown value (unknown errors: 500 without internals). */
export function sendError(st: ReqState, err: unknown, closeConnection = false): void {
  const { status, body, headers } = errorBody(err);
  sendJson(st, status, body, headers, closeConnection);
}

/** Shorthand for an {@link AppError} response. */
export function sendAppError(
  st: ReqState,
  code: ErrorCode,
  message: string,
  details?: unknown,
  headers?: Record<string, string>,
  closeConnection = false,
): void {
  sendError(st, new AppError(code, message, details, headers), closeConnection);
}

/** Whether `s` holds a C0 control (CR, LF, tab…) or DEL: never valid in a header value; CR/LF would end the header. */
function hasHeaderControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/**
 * 302 to `location`. A location holding a control character (a destination stored before the admin API refused
 * them, or written to Postgres by hand) is not written: uWS copies header values as they are, so a CR/LF would
 * let the destination add headers (or a body) to the tracker's response. Such a click is answered 500
 * INTERNAL_ERROR without a `Location`, and logged (`click.unsafe_location`) when `log` is given.
 * @returns false when it refused the location (and answered the error instead).
 */
export function sendRedirect(st: ReqState, location: string, log?: Logger): boolean {
  if (hasHeaderControl(location)) {
    log?.error({ location: location.slice(0, 256) }, 'click.unsafe_location');
    sendAppError(st, 'INTERNAL_ERROR', 'the destination of this link cannot be redirected to');
    return false;
  }
  if (st.done || st.aborted) return true;
  st.done = true;
  st.status = 302;
  st.res.cork(() => {
    st.res.writeStatus(STATUS_302).writeHeader(LOCATION, location).writeHeader(CACHE_CONTROL, NO_STORE);
    if (FALLBACK) st.res.end();
    else st.res.endWithoutBody(0);
  });
  return true;
}
