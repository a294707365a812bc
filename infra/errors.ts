import type { z } from 'zod';

/**
 * Stable error codes of the API envelope, each mapped to one HTTP status here and nowhere else
 * (EXAMPLES.md, "stable error codes mapped to HTTP once").
 */
export const ERROR_STATUS = {
  VALIDATION_ERROR: 400,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  TWO_FACTOR_REQUIRED: 401,
  INVALID_TOKEN: 401,
  /** A publishable key (`pk_live_…`/`pk_test_…`) that is malformed, unknown or revoked (browser conversions). */
  INVALID_KEY: 401,
  FORBIDDEN: 403,
  /** An admin without 2FA on while ADMIN_REQUIRE_2FA is set: only 2FA setup/verify and logout are open. */
  TWO_FACTOR_SETUP_REQUIRED: 403,
  /** A test-mode (sandbox) API key on a call that would move ledger money (conversion status changes, reconciliation). */
  LIVE_MODE_REQUIRED: 403,
  /** A browser conversion from an origin its publishable key does not list (or with no Origin at all). */
  ORIGIN_NOT_ALLOWED: 403,
  /** A postback from an address outside its advertiser's IP allowlist (`PUT /postback-allowlist`). */
  IP_NOT_ALLOWED: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  IDEMPOTENCY_CONFLICT: 409,
  MEMBERSHIP_COOLDOWN: 409,
  ENDPOINT_LIMIT_REACHED: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  HEADERS_TOO_LARGE: 431,
  INSUFFICIENT_FUNDS: 422,
  BUDGET_EXHAUSTED: 422,
  AMOUNT_OUT_OF_RANGE: 422,
  INVALID_STATE: 422,
  QUERY_LIMIT_EXCEEDED: 422,
  /** A campaign's destination or fallback host is neither its approved website (or a subdomain) nor admin-approved. */
  DESTINATION_NOT_APPROVED: 422,
  /** A campaign whose live destination host moved awaits an admin: only an admin may activate it. */
  REVIEW_REQUIRED: 422,
  /** Analytics SQL that is not a plain SELECT over the product's tables (DDL/DML, table functions, system tables, SETTINGS). */
  QUERY_NOT_ALLOWED: 422,
  /** Analytics SQL that ClickHouse cannot parse or analyse (syntax, unknown column, missing parameter). */
  QUERY_INVALID: 400,
  ACCOUNT_LOCKED: 423,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** The error half of the response envelope: `{ success: false, error: { code, message, details } }`. */
export interface ErrorBody {
  success: false;
  error: { code: ErrorCode; message: string; details?: unknown };
}

/**
 * An error meant for the client: its code, message and details are shown as they are.
 * Anything else thrown is reported as INTERNAL_ERROR with no internals.
 */
export class AppError extends Error {
  override name = 'AppError';
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    /** Extra response headers, e.g. `Retry-After`. */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.status = ERROR_STATUS[code];
  }

  toBody(): ErrorBody {
    return {
      success: false,
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

/**
 * The one shape of `VALIDATION_ERROR.details`: each bad field's dotted path (`rows.0.amount`; `_` for the input as a
 * whole) mapped to its messages.
 */
export type FieldErrors = Record<string, string[]>;

/** Turns zod issues into {@link FieldErrors}. */
export function zodDetails(err: z.ZodError): FieldErrors {
  const out: FieldErrors = {};
  for (const issue of err.issues) {
    const key = issue.path.length ? issue.path.map(String).join('.') : '_';
    const list = out[key] ?? [];
    list.push(issue.message);
    out[key] = list;
  }
  return out;
}

/**
 * A VALIDATION_ERROR whose details are {@link FieldErrors}; a single message per field may be given as a string.
 * `message` defaults to the API's generic 'request validation failed'.
 */
export function validationError(
  fields: Record<string, string | readonly string[]>,
  message = 'request validation failed',
): AppError {
  const details: FieldErrors = {};
  for (const [k, v] of Object.entries(fields)) details[k] = typeof v === 'string' ? [v] : [...v];
  return new AppError('VALIDATION_ERROR', message, details);
}

/**
 * Validates `input` with a zod schema.
 * @throws AppError VALIDATION_ERROR with {@link FieldErrors} details.
 */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown, message?: string): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) throw validationError(zodDetails(r.error), message);
  return r.data;
}

/** Builds the envelope for any thrown value; unknown errors become a bare INTERNAL_ERROR. */
export function errorBody(err: unknown): { status: number; body: ErrorBody; headers?: Record<string, string> } {
  if (err instanceof AppError) return { status: err.status, body: err.toBody(), headers: err.headers };
  return {
    status: 500,
    body: { success: false, error: { code: 'INTERNAL_ERROR', message: 'internal error' } },
  };
}

/**
 * A failure of a dependency (Redis, Postgres, ClickHouse, network) that is worth retrying:
 * the pipeline does not acknowledge the work and tries again later.
 */
export class RetriableError extends Error {
  override name = 'RetriableError';
  readonly isRetriable = true;
}

const RETRIABLE_NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
]);

/**
 * Whether an error is an outage (retry, do not acknowledge) rather than bad data (dead-letter).
 * Connection errors of node, ioredis, postgres.js and ClickHouse are retriable; so is anything
 * marked `isRetriable`.
 */
export function isRetriable(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { isRetriable?: boolean; code?: unknown; name?: string; message?: string };
  if (e.isRetriable) return true;
  if (typeof e.code === 'string' && RETRIABLE_NET_CODES.has(e.code)) return true;
  if (e.name === 'MaxRetriesPerRequestError') return true;
  const msg = String(e.message ?? '');
  return /Connection is closed|Stream isn't writeable|ECONNREFUSED|socket hang up|Timeout|timed out/i.test(msg);
}
