import { createHash } from 'node:crypto';
import {
  AppError,
  compileAllowlist,
  type IpAllowlist,
  type Logger,
  MAX_MINOR_UNITS,
  type Redis,
  type Sql,
  UUID_RE,
  validationError,
} from '../../infra/index.ts';
import { type ConversionStatus, idTag, partitionOf, RENEWAL_GOAL } from '../events.ts';
import { singleFlight } from './single-flight.ts';

/** Max length of `event_id` and `goal`. */
const MAX_ID_LENGTH = 255;
/** Longest event_id a postback can store (the default `click_id:goal` of two ids), characters. */
export const MAX_EVENT_ID_LENGTH = 2 * MAX_ID_LENGTH;
/** Future skew tolerated on `event_time` and `X-Event-Time`, ms. */
export const FUTURE_SKEW_MS = 5 * 60_000;
/**
 * Earliest `event_time` / `X-Event-Time` accepted (2000-01-01T00:00:00Z), a sanity floor. The attribution window is measured from
 * the click to the conversion, which only the pipeline knows, so an old event time is not refused here: backfills
 * and replays post conversions of old clicks.
 */
export const MIN_EVENT_TIME_MS = Date.UTC(2000, 0, 1);
const AMOUNT_RE = /^(\d{1,18})(?:\.(\d+))?$/;
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})$/;

/** Whether `s` contains a C0 control character or DEL. */
export function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

let currencies: Map<string, number> | undefined;

/** Minor-unit digits of an ISO 4217 code known to Intl, or undefined when unknown. */
export function currencyDigits(code: string): number | undefined {
  if (!currencies) {
    currencies = new Map();
    for (const c of Intl.supportedValuesOf('currency')) {
      const d = new Intl.NumberFormat('en', { style: 'currency', currency: c }).resolvedOptions().maximumFractionDigits;
      currencies.set(c, d ?? 2);
    }
  }
  return currencies.get(code);
}

/**
 * Converts a decimal string to integer minor units of `digits` fraction digits ("12.5", 2 → 1250).
 * @returns null when the string is not a non-negative decimal, has too many decimals, or is more than
 *   MAX_MINOR_UNITS (infra/contracts.ts §6) minor units.
 */
export function toMinorUnits(amount: string, digits: number): number | null {
  const n = minorUnitsOf(amount, digits);
  return n === null || n > BigInt(MAX_MINOR_UNITS) ? null : Number(n);
}

/** The exact minor units of a well-formed decimal string, or null (BigInt: 18 digits would round as a number). */
function minorUnitsOf(amount: string, digits: number): bigint | null {
  const m = AMOUNT_RE.exec(amount);
  if (!m) return null;
  const frac = m[2] ?? '';
  if (frac.length > digits) return null;
  return BigInt(m[1]! + frac.padEnd(digits, '0'));
}

/** The validated fields of a postback (before the ingest adds ids and times). */
export interface PostbackFields {
  /** Lower-cased when it is a UUID; as posted otherwise. */
  click_id: string;
  /** Whether `click_id` can be an id this system issued ({@link isOwnClickId}); false → `rejected unknown_click`. */
  own_click: boolean;
  event_id: string;
  goal: string;
  amount_minor: number;
  currency: string;
  status: ConversionStatus;
  /** undefined when not posted. */
  event_time_ms: number | undefined;
  /** The advertiser's customer reference, trimmed; '' when not posted (README "Leads and recurring commissions"). */
  customer_id: string;
}

/**
 * The conversions-stream partition of a postback: a conversion that carries a customer reference goes to the
 * customer's partition (FNV-1a of advertiser and customer), so the conversion that binds a customer and every later
 * one of that customer are one ordered stream; any other to its click's partition (the click_id's tag).
 */
export function conversionPartition(f: PostbackFields, advertiserId: number, partitions: number): number {
  return f.customer_id !== ''
    ? partitionOf(`${advertiserId}\t${f.customer_id}`, partitions)
    : idTag(f.click_id) % partitions;
}

function str(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

/**
 * Whether `id` is well-formed as a click_id of this system: a UUIDv7 (RFC 9562 §5.7: version 7, variant 10) whose
 * timestamp lies between 2000-01-01 and `nowMs` plus the allowed clock skew. Cheap, no lookup: an id that passes may
 * still be unknown (the pipeline's attribution decides that).
 */
export function isOwnClickId(id: string, nowMs: number): boolean {
  if (!UUID_RE.test(id) || id[14] !== '7' || !'89ab'.includes(id[19]!.toLowerCase())) return false;
  const t = Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
  return t >= MIN_EVENT_TIME_MS && t <= nowMs + FUTURE_SKEW_MS;
}

/**
 * Validates a postback's parameters (query string, form or JSON body). A click_id that is not a UUID is not a
 * validation error: it is answered `rejected unknown_click` (`own_click` false).
 * @throws AppError VALIDATION_ERROR with FieldErrors details (each bad field → its problem).
 */
export function parsePostback(params: Record<string, unknown>, nowMs: number): PostbackFields {
  const bad: Record<string, string> = {};
  const get = (k: string): string | undefined => {
    const v = params[k];
    const s = str(v);
    if (v !== undefined && v !== null && s === undefined) bad[k] = 'must be a string';
    return s === '' ? undefined : s;
  };
  const text = (k: string): string => {
    const v = get(k) ?? '';
    if (v.length > MAX_ID_LENGTH) bad[k] = `must be at most ${MAX_ID_LENGTH} characters`;
    else if (hasControl(v)) bad[k] = 'must not contain control characters';
    return v;
  };

  const customerRaw = get('customer_id')?.trim() ?? '';
  let customer_id = '';
  if (customerRaw.length > MAX_ID_LENGTH) bad.customer_id = `must be at most ${MAX_ID_LENGTH} characters`;
  else if (hasControl(customerRaw)) bad.customer_id = 'must not contain control characters';
  else customer_id = customerRaw;

  const clickRaw = get('click_id');
  let click_id = '';
  if (clickRaw === undefined) {
    if (customerRaw === '') bad.click_id ??= 'is required';
  } else if (clickRaw.length > MAX_ID_LENGTH) bad.click_id = `must be at most ${MAX_ID_LENGTH} characters`;
  else click_id = UUID_RE.test(clickRaw) ? clickRaw.toLowerCase() : clickRaw;

  const goal = text('goal');
  const eventIdRaw = text('event_id');
  if (goal === RENEWAL_GOAL && customerRaw === '') bad.customer_id ??= 'is required for a renewal';
  // The default event_id names the click: without one, every conversion of a customer would share it.
  if (clickRaw === undefined && eventIdRaw === '' && customerRaw !== '')
    bad.event_id ??= 'is required without click_id';

  const statusRaw = get('status') ?? 'pending';
  let status: ConversionStatus = 'pending';
  if (statusRaw === 'pending' || statusRaw === 'approved' || statusRaw === 'rejected') status = statusRaw;
  else if (!bad.status) bad.status = 'must be one of pending, approved, rejected';

  const amountRaw = get('amount');
  const currencyRaw = get('currency');
  let amount_minor = -1;
  let currency = '';
  let digits: number | undefined;
  if (currencyRaw !== undefined) {
    digits = currencyDigits(currencyRaw);
    if (digits === undefined) bad.currency = 'must be an ISO 4217 currency code';
  }
  if (amountRaw !== undefined) {
    if (currencyRaw === undefined) bad.currency ??= 'is required with amount';
    else if (digits !== undefined) {
      const n = toMinorUnits(amountRaw, digits);
      if (n === null && minorUnitsOf(amountRaw, digits) !== null) {
        bad.amount = `must be at most ${MAX_MINOR_UNITS / 10 ** digits} ${currencyRaw}`;
      } else if (n === null) {
        bad.amount = `must be a non-negative decimal with at most ${digits} decimals for ${currencyRaw}`;
      } else {
        amount_minor = n;
        currency = currencyRaw;
      }
    }
  }

  const timeRaw = get('event_time');
  let event_time_ms: number | undefined;
  if (timeRaw !== undefined) {
    const t = /^\d{1,15}$/.test(timeRaw) ? Number(timeRaw) : ISO_RE.test(timeRaw) ? Date.parse(timeRaw) : Number.NaN;
    if (!Number.isSafeInteger(t)) bad.event_time = 'must be epoch milliseconds or an ISO 8601 timestamp';
    else if (t > nowMs + FUTURE_SKEW_MS) bad.event_time = 'must not be in the future';
    else if (t < MIN_EVENT_TIME_MS) bad.event_time = 'must not be before 2000-01-01';
    else event_time_ms = t;
  }

  if (Object.keys(bad).length > 0) throw validationError(bad, 'invalid conversion postback');
  const event_id = eventIdRaw || `${click_id}:${goal}`;
  if (event_id.length > MAX_EVENT_ID_LENGTH) throw new AppError('VALIDATION_ERROR', 'invalid conversion postback');
  return {
    click_id,
    own_click: isOwnClickId(click_id, nowMs),
    event_id,
    goal,
    amount_minor,
    currency,
    status,
    event_time_ms,
    customer_id,
  };
}

/** What a postback token resolves to: its advertiser, and the advertiser's IP allowlist (null: any address). */
export interface TokenAuth {
  advertiser_id: number;
  allowlist: IpAllowlist | null;
  /** The token's first 8 characters (`pbt_xxxx`), what a refusal record names. */
  prefix: string;
}

/**
 * Resolves postback tokens to their advertiser and its IP allowlist: SHA-256 hex of the token looked up in
 * `postback_tokens` (not revoked) with the advertiser's `postback_ip_allowlists` row, compiled once per load into a
 * matcher. Results are cached (hits `hitMs`, misses `missMs`); a message on `keys.postbackInvalidation` (a token
 * revoked, the allowlist changed) drops the advertiser's entries at once, so without Redis pub/sub a change takes
 * at most `hitMs`. An unknown token is a read only (never a write); a known one records `last_used_at` once per
 * cache miss.
 */
export class TokenCache {
  private readonly map = new Map<string, { auth: TokenAuth | null; until_ms: number }>();
  private readonly loading = new Map<string, Promise<TokenAuth | null>>();
  /** Bumped by every invalidation: a load that began before one is answered but not cached (it may be stale). */
  private generation = 0;

  constructor(
    private readonly sql: Sql,
    private readonly hitMs = 30_000,
    private readonly missMs = 5_000,
  ) {}

  /** The advertiser owning `token`, or null. @throws on a Postgres error. */
  async advertiser(token: string): Promise<number | null> {
    return (await this.resolve(token))?.advertiser_id ?? null;
  }

  /** The advertiser and allowlist of `token`, or null for an unknown or revoked token. @throws on a Postgres error. */
  resolve(token: string): Promise<TokenAuth | null> {
    const hash = createHash('sha256').update(token).digest('hex');
    const hit = this.map.get(hash);
    if (hit && hit.until_ms > Date.now()) return Promise.resolve(hit.auth);
    return singleFlight(this.loading, hash, (k) => this.lookup(k));
  }

  /** Drops the cached tokens of one advertiser (or every token), and stops in-flight loads from being cached. */
  invalidate(advertiserId?: number): void {
    this.generation++;
    if (advertiserId === undefined) this.map.clear();
    else for (const [k, e] of this.map) if (e.auth?.advertiser_id === advertiserId) this.map.delete(k);
  }

  /**
   * Listens on `channel` (`keys.postbackInvalidation`) over `sub`, a subscriber connection created with
   * `autoResubscribe: false` (the link cache's): it (re)subscribes on every 'ready' and, after a reconnection,
   * drops every entry (messages published meanwhile are lost). Resolves after the first subscription.
   */
  subscribe(sub: Redis, channel: string, log: Logger): Promise<void> {
    let first = true;
    return new Promise((resolve) => {
      const onReady = () => {
        if (!first) this.invalidate();
        first = false;
        sub.subscribe(channel).then(
          () => resolve(),
          (err: Error) => log.warn({ err: err.message }, 'postback invalidation subscribe failed'),
        );
      };
      sub.on('ready', onReady);
      if (sub.status === 'ready') onReady();
      sub.on('message', (ch: string, raw: string) => {
        if (ch !== channel) return;
        const id = Number(raw);
        if (Number.isSafeInteger(id) && id > 0) this.invalidate(id);
        else log.warn({ raw: raw.slice(0, 200) }, 'ignoring malformed postback invalidation');
      });
    });
  }

  private async lookup(hash: string): Promise<TokenAuth | null> {
    const generation = this.generation;
    // A read first, and a write only for a live token: unknown tokens (guessing, a flood of junk) cost one indexed
    // read per token per missMs and never a write, so they cannot load the primary with UPDATEs.
    const rows = await this.sql<{ id: string; advertiser_id: number; prefix: string; entries: string[] | null }[]>`
      select t.id, t.advertiser_id, t.prefix, a.entries
      from postback_tokens t left join postback_ip_allowlists a on a.advertiser_id = t.advertiser_id
      where t.token_hash = ${hash} and t.revoked_at is null`;
    const row = rows[0];
    const auth = row
      ? { advertiser_id: row.advertiser_id, allowlist: compileAllowlist(row.entries), prefix: row.prefix }
      : null;
    if (row) await this.sql`update postback_tokens set last_used_at = now() where id = ${row.id}`;
    if (generation !== this.generation) return auth;
    if (this.map.size > 100_000) this.map.clear();
    this.map.set(hash, { auth, until_ms: Date.now() + (auth === null ? this.missMs : this.hitMs) });
    return auth;
  }
}
