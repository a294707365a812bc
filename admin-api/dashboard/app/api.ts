/**
 * The dashboard's client of the public API (`/api/v1`, same origin). The access token lives in this module's memory
 * only; the refresh token is the API's HTTP-only cookie (Path=/api/v1/auth, SameSite=Strict), so a reload or an
 * expired access token is recovered with `POST /auth/refresh`, once at a time.
 */

export const API = '/api/v1';

/** An error answer of the API (its envelope's `error`), or a network failure (`code` NETWORK_ERROR). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** The user as `/auth/me` and the login answer describe it. */
export interface User {
  id: number;
  role: 'admin' | 'advertiser' | 'affiliate' | 'analyst';
  name: string;
  email: string;
  two_factor_enabled: boolean;
}

/** Envelope metadata of paged lists. */
export interface Meta {
  page: number;
  per_page: number;
  total: number;
  total_pages: number;
}

let accessToken: string | undefined;
let refreshing: Promise<boolean> | undefined;
const tokenListeners = new Set<(token: string | undefined) => void>();

let signingOut = false;

/** Marks a sign-out by this browser in progress: the force-logout event it causes is then expected, not news. */
export function setSigningOut(v: boolean): void {
  signingOut = v;
}

/** Whether this browser is signing out (see {@link setSigningOut}). */
export function isSigningOut(): boolean {
  return signingOut;
}

/** The current access token (undefined when signed out). */
export function currentToken(): string | undefined {
  return accessToken;
}

/** Sets (or clears) the in-memory access token and tells listeners (the live stream reconnects with it). */
export function setToken(token: string | undefined): void {
  accessToken = token;
  for (const l of tokenListeners) l(token);
}

/** Calls `fn` whenever the access token changes; returns the unsubscribe function. */
export function onToken(fn: (token: string | undefined) => void): () => void {
  tokenListeners.add(fn);
  return () => tokenListeners.delete(fn);
}

/** Trades the refresh cookie for a new access token; false when there is no live session. Single-flight. */
export function refresh(): Promise<boolean> {
  refreshing ??= (async () => {
    try {
      const r = await fetch(`${API}/auth/refresh`, { method: 'POST', credentials: 'same-origin' });
      if (!r.ok) {
        setToken(undefined);
        return false;
      }
      const body = (await r.json()) as { data: { access_token: string } };
      setToken(body.data.access_token);
      return true;
    } catch {
      return false;
    } finally {
      refreshing = undefined;
    }
  })();
  return refreshing;
}

interface Options {
  body?: unknown;
  /** `Accept` header (default JSON). */
  accept?: string;
}

async function send(method: string, path: string, o: Options): Promise<Response> {
  const headers: Record<string, string> = { accept: o.accept ?? 'application/json' };
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  try {
    return await fetch(API + path, {
      method,
      headers,
      body: o.body === undefined ? undefined : JSON.stringify(o.body),
      credentials: 'same-origin',
    });
  } catch (err) {
    throw new ApiError(0, 'NETWORK_ERROR', err instanceof Error ? err.message : 'network error');
  }
}

/** Sends a request; a 401 with a token triggers one refresh and one retry. Returns the raw response when ok. */
export async function raw(method: string, path: string, o: Options = {}): Promise<Response> {
  let r = await send(method, path, o);
  if (r.status === 401 && accessToken && !path.startsWith('/auth/refresh') && (await refresh()))
    r = await send(method, path, o);
  if (!r.ok) {
    let err = { code: 'HTTP_ERROR', message: `${r.status} ${r.statusText}`, details: undefined };
    try {
      const body = (await r.json()) as { error?: typeof err };
      if (body.error) err = body.error;
    } catch {}
    throw new ApiError(r.status, err.code, err.message, err.details);
  }
  return r;
}

/** A JSON call: resolves with the envelope's `data` (and `meta`). @throws ApiError */
export async function call<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ data: T; meta?: Meta }> {
  const r = await raw(method, path, { body });
  return (await r.json()) as { data: T; meta?: Meta };
}

/** `call(...)` returning only `data`. */
export async function get<T = unknown>(path: string): Promise<T> {
  return (await call<T>('GET', path)).data;
}

/** POST returning `data`. */
export async function post<T = unknown>(path: string, body?: unknown): Promise<T> {
  return (await call<T>('POST', path, body)).data;
}

/** Builds a query string from the defined values. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}
