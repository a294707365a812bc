import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import { z } from 'zod';
import { AppError, MAX_MINOR_UNITS, parseWith, type RedisKeys } from '../infra/index.ts';
import type { ApiMetrics } from './metrics.ts';
import type { Tokens } from './security.ts';
import type { EventHub } from './sse.ts';
import type { ApiDeps, Principal, Role } from './types.ts';

/** Per-app services shared by the handlers. */
export interface ApiServices {
  tokens: Tokens;
  keys: RedisKeys;
  hub: EventHub;
  /** AES-256 key for TOTP secrets at rest (`TOTP_SECRET_KEY` / the development key file). */
  totpKey: Buffer;
  /** The API's metrics (./metrics.ts). */
  metrics: ApiMetrics;
}

/** Largest JSON request body accepted, bytes (bigger → 413 PAYLOAD_TOO_LARGE). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** What a handler returns: the envelope's data (and meta for lists); `undefined` when it wrote ctx itself. */
export interface HandlerResult {
  status?: number;
  data: unknown;
  meta?: Record<string, unknown>;
}

/** Scopes an API key may carry; a route accepts API keys only when it names one. */
export const API_SCOPES = [
  'conversions:write',
  'conversions:read',
  'reports:read',
  'campaigns:read',
  'campaigns:write',
  'links:read',
  'links:write',
  'websites:read',
  'analytics:query',
] as const;
export type ApiScope = (typeof API_SCOPES)[number];

/** Arguments a route handler receives: validated input and the authenticated principal. */
export interface HandlerArgs<B, Q> {
  ctx: Context;
  deps: ApiDeps;
  services: ApiServices;
  body: B;
  query: Q;
  params: Record<string, number>;
  /** Path params named in the route's `uuidParams` (validated UUIDs, lower case). */
  uuids: Record<string, string>;
  /** Present on every route whose `auth` is not `'public'`. */
  user: Principal;
}

/**
 * One route of the API. The same table registers the Koa routes, builds the OpenAPI document and
 * drives the authorization-matrix test.
 */
export interface Route<B = unknown, Q = unknown> {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** Path under `/api/v1`, Koa syntax (`/websites/:id`). Every param is a positive integer id unless named in `uuidParams`. */
  path: string;
  /** Path params that are UUIDs (ledger transfers, conversions), handed to the handler in `uuids`; malformed → 404. */
  uuidParams?: readonly string[];
  summary: string;
  tag: string;
  /** `'public'` (no token) or the roles allowed. */
  auth: 'public' | readonly Role[];
  /** When set, API keys with this scope may call the route; otherwise only session tokens can. */
  scope?: ApiScope;
  body?: z.ZodType<B>;
  query?: z.ZodType<Q>;
  /** A valid request body, used in the OpenAPI document and by the authorization-matrix test. */
  example?: unknown;
  /**
   * When set, the route also accepts a `text/csv` body (same size limit): this turns the CSV text into the
   * JSON body shape before `body` validates it. @throws AppError VALIDATION_ERROR for malformed CSV.
   */
  csv?: (text: string) => unknown;
  /**
   * `false` on a POST that changes nothing (a query in a body): its calls get no audit row (admin-api/audit.ts).
   * Every other POST, PUT, PATCH and DELETE is audited.
   */
  audit?: false;
  /** Alternative response media types besides JSON (for OpenAPI), e.g. `['text/csv']`. */
  produces?: string[];
  handler(args: HandlerArgs<B, Q>): Promise<HandlerResult | undefined>;
}

/** Identity helper that keeps the body/query types inferred from the zod schemas. */
export function route<B = undefined, Q = undefined>(r: Route<B, Q>): Route<B, Q> {
  return r;
}

/**
 * Validates `input` with `schema`.
 * @throws AppError VALIDATION_ERROR with per-field details.
 */
export function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  return parseWith(schema, input);
}

/** Query parameters of paginated lists: `page` ≥ 1, `per_page` 1..100 (default 20). */
export const pageQuery = z.object({
  page: z.coerce.number().int().min(1).max(1_000_000).default(1),
  per_page: z.coerce.number().int().min(1).max(100).default(20),
});
export type PageQuery = z.infer<typeof pageQuery>;

/** Builds a list result with `meta: { page, per_page, total, total_pages }`. */
export function paged(rows: unknown[], total: number, q: { page: number; per_page: number }): HandlerResult {
  return {
    data: rows,
    meta: { page: q.page, per_page: q.per_page, total, total_pages: Math.ceil(total / q.per_page) },
  };
}

/** SQL offset of a page. */
export function offsetOf(q: { page: number; per_page: number }): number {
  return (q.page - 1) * q.per_page;
}

/** Throws NOT_FOUND for a missing (or invisible to the caller) object. */
export function notFound(what: string): never {
  throw new AppError('NOT_FOUND', `${what} not found`);
}

/** A positive safe integer id in a path. */
export const idParam = z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** ISO 4217 code, upper case. */
export const currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as USD');

/** Money in minor units: a non-negative integer up to MAX_MINOR_UNITS (infra/contracts.ts §6). */
export const minorUnits = z.number().int().min(0).max(MAX_MINOR_UNITS);

/**
 * Whether `s` holds a character no URL or host we store may hold: C0 controls, DEL, C1 controls or the Unicode
 * line/paragraph separators.
 */
export function hasUrlControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}
/** The macros the tracker fills in a destination (the names of tracker/ingest/macros.ts MACRO_RE). */
const URL_MACRO_RE = /\{(click_id|campaign_id|affiliate_id|sub[1-5])\}/g;

/**
 * Normalises an absolute http(s) URL that may hold tracker macros (`{click_id}`, `{sub1}`…) in its path, query or
 * fragment: refuses control characters (the WHATWG parser silently drops tab/CR/LF, so validating the parsed URL
 * but storing the raw string let them through to the 302 `Location`), macros or braces in the scheme, user info,
 * host or port (the clicker would pick where the tracker's domain redirects), and any user info. Each macro is
 * parsed as a random lower-case placeholder, so the parser decides what is host and what is path exactly as a
 * browser would, and is put back as `{name}` afterwards (the parser would percent-encode `{`/`}` in a path).
 * @returns `{ href }`, the normalised URL (what is stored and redirected to), or `{ error }`, a message for the field.
 */
export function normaliseHttpUrl(s: string): { href: string } | { error: string } {
  if (hasUrlControl(s)) return { error: 'must not contain control characters' };
  const mark = `m${randomBytes(8).toString('hex')}x`;
  const names: string[] = [];
  const marked = s.replace(URL_MACRO_RE, (_, name: string) => `${mark}${names.push(name) - 1}x`);
  let u: URL;
  try {
    u = new URL(marked);
  } catch {
    return { error: 'must be an absolute http(s) URL' };
  }
  const authority = `${u.protocol}${u.username}:${u.password}@${u.host}`;
  if (authority.includes(mark) || /[{}]|%7b|%7d/i.test(authority))
    return { error: 'macros are allowed only in the path, query and fragment' };
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { error: 'must be an absolute http(s) URL' };
  if (u.username !== '' || u.password !== '') return { error: 'must not carry a user name or password' };
  const href = u.href.replace(new RegExp(`${mark}(\\d+)x`, 'g'), (_, i: string) => `{${names[Number(i)]}}`);
  if (href.length > 2048) return { error: 'must be at most 2048 characters once normalised' };
  return { href };
}

/**
 * An absolute http(s) URL up to 2048 characters, macros allowed only in path, query and fragment; parses to its
 * normalised href (see {@link normaliseHttpUrl}), which is what callers store.
 */
export const httpUrl = z
  .string()
  .max(2048)
  .transform((s, ctx) => {
    const r = normaliseHttpUrl(s);
    if ('href' in r) return r.href;
    ctx.addIssue({ code: 'custom', message: r.error });
    return z.NEVER;
  });
