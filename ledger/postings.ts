/**
 * The posting engine: balanced, immutable, idempotent postings and two-phase (pending → post | void) transfers.
 *
 * CONCURRENCY — row locks, not SERIALIZABLE. Every posting runs in one READ COMMITTED transaction that locks
 * the balance rows of all the accounts it touches with ONE `SELECT … ORDER BY id FOR UPDATE` (LockRows sits
 * above the Sort, so locks are taken in id order: two postings never wait on each other in a cycle). The
 * overdraft check (`balance − pending_debits ≥ 0` for accounts flagged `debits_must_not_exceed_credits`) is made
 * on the locked, latest-committed row, so no concurrent posting can slip between check and write; a CHECK
 * constraint on the table backs it up. Why not SERIALIZABLE + retry: the hot rows here (a campaign's
 * reservation, the platform revenue account) are written by nearly every posting, so optimistic transactions
 * would mostly abort and retry under load; row locks queue them instead, with bounded work per posting.
 * Flows that touch more than one posting per transaction (e.g. a conversion that exhausts a budget and pauses
 * the campaign) can in theory lock out of order; Postgres then reports a deadlock (40P01), which
 * {@link inTransaction} retries like a serialization failure (40001).
 *
 * IDEMPOTENCY — a posting's `idempotency_key` is unique. A repeated key whose request hash matches returns the
 * first posting (`replayed: true`) and moves nothing; another body under the same key is IDEMPOTENCY_CONFLICT.
 * A posting that fails (e.g. INSUFFICIENT_FUNDS) records nothing, so the key may be retried later.
 *
 * MONEY — integer minor units as JS numbers. One leg moves at most MAX_MINOR_UNITS (infra/contracts.ts §6);
 * balances grow without bound, so every balance a posting writes is computed with BigInt and the posting is
 * refused (AMOUNT_OUT_OF_RANGE, nothing written) when one would leave ±Number.MAX_SAFE_INTEGER: past it a JS
 * number is no longer exact, and reading the row back would fail on every later posting of that account.
 * Balances are read as text for the same reason (an out-of-range row, e.g. written before this check, is an
 * AMOUNT_OUT_OF_RANGE refusal, not a RangeError from the driver). Sign: positive = credit (the account holds
 * more), negative = debit.
 */
import { createHash, randomUUID } from 'node:crypto';
import { AppError, MAX_MINOR_UNITS, type Sql, type TransactionSql, UUID_RE } from '../infra/index.ts';
import { minorFromText } from './amounts.ts';

export type OwnerType = 'advertiser' | 'affiliate' | 'platform' | 'external';
export type Purpose =
  | 'available'
  | 'reserved'
  | 'spent'
  | 'pending'
  | 'approved'
  | 'paid'
  | 'revenue'
  | 'spend_offset'
  | 'deposits'
  | 'withdrawals';

/** The natural identity of an account; accounts are created on first use. */
export interface AccountRef {
  owner_type: OwnerType;
  /** users.id, or 0 for platform/external accounts. */
  owner_id: number;
  purpose: Purpose;
  /** ISO 4217. */
  currency: string;
  /** Only for `reserved`. */
  campaign_id?: number | null;
}

/** Purposes whose balance (minus funds held by pending postings) may never be negative. */
const NON_NEGATIVE: ReadonlySet<Purpose> = new Set(['available', 'reserved', 'spent', 'pending', 'paid']);

export type PostingType =
  | 'deposit'
  | 'deposit_confirm'
  | 'deposit_void'
  | 'campaign_reserve'
  | 'campaign_release'
  | 'conversion'
  | 'conversion_approve'
  | 'conversion_adjust'
  | 'conversion_reverse'
  | 'click_charge'
  | 'withdrawal'
  | 'withdrawal_paid'
  | 'withdrawal_rejected'
  | 'pending_expired';

/** One leg of a posting: a signed amount (minor units) on an account. */
export interface Leg {
  account: AccountRef;
  amount: number;
}

/** A stored posting as the library returns it. */
export interface Posting {
  id: string;
  idempotency_key: string;
  type: PostingType;
  status: 'posted' | 'pending' | 'voided';
  pending_id: string | null;
  expires_at: Date | null;
  resolved_at: Date | null;
  advertiser_id: number | null;
  affiliate_id: number | null;
  campaign_id: number | null;
  conversion_id: string | null;
  meta: Record<string, unknown>;
  created_at: Date;
  /** True when this call found the posting already made under its key (nothing moved). */
  replayed: boolean;
}

export interface PostRequest {
  idempotencyKey: string;
  type: PostingType;
  legs: Leg[];
  /** Two-phase: hold the funds instead of moving them; resolve later with {@link resolvePending}. */
  pending?: { expiresAt: Date | null };
  /** What the key's request hash is computed from; defaults to `{ type, legs }`. */
  hashBody?: unknown;
  /** Accounts checked like NON_NEGATIVE ones for this posting only (e.g. a withdrawal from `approved`). */
  mustCover?: AccountRef[];
  advertiserId?: number | null;
  affiliateId?: number | null;
  campaignId?: number | null;
  conversionId?: string | null;
  meta?: Record<string, unknown>;
}

interface AccountRow {
  id: number;
  key: string;
  purpose: Purpose;
  owner_type: OwnerType;
  owner_id: number;
  currency: string;
  campaign_id: number | null;
  debits_must_not_exceed_credits: boolean;
  balance: number;
  pending_debits: number;
  pending_credits: number;
}

/** `owner_type:owner_id:purpose:currency:campaign_id|0`, stored unique in ledger_accounts.key. */
export function accountKey(a: AccountRef): string {
  return `${a.owner_type}:${a.owner_id}:${a.purpose}:${a.currency}:${a.campaign_id ?? 0}`;
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object' && !(v instanceof Date)) {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/** SHA-256 hex of a canonical (key-sorted) JSON rendering. */
export function requestHash(body: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical(body)) ?? 'null')
    .digest('hex');
}

function assertAmount(n: number, what: string): void {
  if (!Number.isSafeInteger(n)) throw new AppError('VALIDATION_ERROR', `${what} must be an integer in minor units`);
}

/** Refuses a leg that moves more than MAX_MINOR_UNITS (infra/contracts.ts §6). */
function assertLegInRange(l: Leg): void {
  if (Math.abs(l.amount) > MAX_MINOR_UNITS) {
    throw new AppError('AMOUNT_OUT_OF_RANGE', `an amount may be at most ${MAX_MINOR_UNITS} minor units`, {
      account: l.account.purpose,
      currency: l.account.currency,
      amount: l.amount,
      max: MAX_MINOR_UNITS,
    });
  }
}

/**
 * Merges legs on the same account, drops zero legs, and refuses unbalanced sets (a bug, not bad input).
 * Sums are BigInt, so an input past the cap is refused as such, never rounded into a balanced-looking set.
 * @throws AppError VALIDATION_ERROR (not an integer), AMOUNT_OUT_OF_RANGE (a leg past MAX_MINOR_UNITS).
 */
function normalizeLegs(legs: Leg[]): Leg[] {
  const byKey = new Map<string, { account: AccountRef; amount: bigint }>();
  for (const l of legs) {
    assertAmount(l.amount, 'amount');
    assertLegInRange(l);
    const k = accountKey(l.account);
    const prev = byKey.get(k);
    byKey.set(k, { account: l.account, amount: (prev?.amount ?? 0n) + BigInt(l.amount) });
  }
  const merged = [...byKey.values()].filter((l) => l.amount !== 0n);
  const sums = new Map<string, bigint>();
  for (const l of merged) sums.set(l.account.currency, (sums.get(l.account.currency) ?? 0n) + l.amount);
  for (const [cur, s] of sums) if (s !== 0n) throw new Error(`unbalanced posting in ${cur}: ${s}`);
  const out = merged.map((l) => ({ account: l.account, amount: Number(l.amount) }));
  for (const l of out) assertLegInRange(l);
  return out.sort((a, b) => (accountKey(a.account) < accountKey(b.account) ? -1 : 1));
}

function toPosting(row: Record<string, unknown>, replayed: boolean): Posting {
  return { ...(row as unknown as Omit<Posting, 'replayed'>), replayed };
}

/** Creates missing accounts, then locks all of them in id order (see the header). */
async function lockAccounts(tx: TransactionSql, refs: AccountRef[]): Promise<Map<string, AccountRow>> {
  const uniq = new Map(refs.map((r) => [accountKey(r), r]));
  if (uniq.size === 0) return new Map();
  // Inserted in key order: two postings creating the same new accounts (a recruit's and its parent's conversions
  // share the parent's) then wait on each other's unique-index entries in one order, never in a cycle.
  const list = [...uniq.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
  await tx`
    insert into ledger_accounts (key, owner_type, owner_id, purpose, currency, campaign_id, debits_must_not_exceed_credits)
    select k, t, o, p, c, nullif(cid, 0), f
    from unnest(${list.map(accountKey)}::text[], ${list.map((a) => a.owner_type)}::text[],
                ${list.map((a) => a.owner_id)}::int8[], ${list.map((a) => a.purpose)}::text[],
                ${list.map((a) => a.currency)}::text[], ${list.map((a) => a.campaign_id ?? 0)}::int8[],
                ${list.map((a) => (NON_NEGATIVE.has(a.purpose) ? 't' : 'f'))}::text[]::bool[]) as u(k, t, o, p, c, cid, f)
    on conflict (key) do nothing`;
  const rows = await tx<Array<Omit<AccountRow, 'balance' | 'pending_debits' | 'pending_credits'> & Totals>>`
    select id, key, purpose, owner_type, owner_id, currency, campaign_id, debits_must_not_exceed_credits,
           balance::text, pending_debits::text, pending_credits::text
    from ledger_accounts where key = any(${[...uniq.keys()]}::text[])
    order by id for update`;
  return new Map(rows.map((r) => [r.key, { ...r, ...totalsOf(r, r.key) }]));
}

/** An account's cached totals as Postgres returns them with `::text` (int8 past 2^53 must not be parsed). */
interface Totals {
  balance: string;
  pending_debits: string;
  pending_credits: string;
}

function totalsOf(t: Totals, key: string): Pick<AccountRow, 'balance' | 'pending_debits' | 'pending_credits'> {
  return {
    balance: minorFromText(t.balance, `balance of ${key}`)!,
    pending_debits: minorFromText(t.pending_debits, `pending debits of ${key}`)!,
    pending_credits: minorFromText(t.pending_credits, `pending credits of ${key}`)!,
  };
}

async function findByKey(tx: TransactionSql, key: string): Promise<Record<string, unknown> | undefined> {
  const [row] = await tx`select * from ledger_postings where idempotency_key = ${key}`;
  return row;
}

function replayOrConflict(row: Record<string, unknown>, hash: string): Posting {
  if (row.request_hash !== hash) {
    throw new AppError('IDEMPOTENCY_CONFLICT', 'this idempotency key was already used with a different request', {
      idempotency_key: row.idempotency_key,
    });
  }
  const { request_hash: _h, ...rest } = row;
  return toPosting(rest, true);
}

/** Looks up a posting by idempotency key (for flows that must know before doing side work). */
export async function postingByKey(tx: TransactionSql | Sql, key: string): Promise<Posting | undefined> {
  const [row] = await tx`select * from ledger_postings where idempotency_key = ${key}`;
  if (!row) return undefined;
  const { request_hash: _h, ...rest } = row;
  return toPosting(rest, true);
}

function insufficient(acc: AccountRow, needed: number): AppError {
  return new AppError(
    'INSUFFICIENT_FUNDS',
    `insufficient funds in ${acc.owner_type} ${acc.purpose} (${acc.currency})`,
    {
      account: acc.purpose,
      currency: acc.currency,
      ...(acc.campaign_id ? { campaign_id: acc.campaign_id } : {}),
      available: acc.balance - acc.pending_debits,
      required: needed,
    },
  );
}

/**
 * Writes one posting inside `tx` (the caller's transaction): idempotency check, account locks, overdraft
 * checks, the posting row, its entries and the cached balances.
 * @throws AppError INSUFFICIENT_FUNDS (nothing written), IDEMPOTENCY_CONFLICT, VALIDATION_ERROR.
 */
export async function post(tx: TransactionSql, req: PostRequest): Promise<Posting> {
  const legs = normalizeLegs(req.legs);
  const hash = requestHash(
    req.hashBody ?? {
      type: req.type,
      legs: legs.map((l) => [accountKey(l.account), l.amount]),
      pending: !!req.pending,
    },
  );
  const existing = await findByKey(tx, req.idempotencyKey);
  if (existing) return replayOrConflict(existing, hash);

  const accounts = await lockAccounts(tx, [...legs.map((l) => l.account), ...(req.mustCover ?? [])]);
  const pending = !!req.pending;
  const cover = new Set((req.mustCover ?? []).map(accountKey));
  for (const l of legs) {
    const a = accounts.get(accountKey(l.account))!;
    if (l.amount >= 0) continue;
    if (!a.debits_must_not_exceed_credits && !cover.has(a.key)) continue;
    if (BigInt(a.balance) - BigInt(a.pending_debits) + BigInt(l.amount) < 0n) throw insufficient(a, -l.amount);
  }

  const id = randomUUID();
  const [row] = await tx`
    insert into ledger_postings (id, idempotency_key, request_hash, type, status, expires_at,
      advertiser_id, affiliate_id, campaign_id, conversion_id, meta)
    values (${id}, ${req.idempotencyKey}, ${hash}, ${req.type}, ${pending ? 'pending' : 'posted'},
      ${req.pending?.expiresAt ?? null}, ${req.advertiserId ?? null}, ${req.affiliateId ?? null},
      ${req.campaignId ?? null}, ${req.conversionId ?? null}, ${tx.json((req.meta ?? {}) as never)})
    on conflict (idempotency_key) do nothing
    returning *`;
  if (!row) {
    // A concurrent transaction committed the same key while we waited for the account locks.
    const again = await findByKey(tx, req.idempotencyKey);
    if (!again) throw new Error('idempotency key vanished');
    return replayOrConflict(again, hash);
  }
  await writeEntries(tx, id, legs, accounts, pending ? 'pending' : 'posted');
  const { request_hash: _h, ...rest } = row;
  return toPosting(rest, false);
}

async function writeEntries(
  tx: TransactionSql,
  postingId: string,
  legs: Leg[],
  accounts: Map<string, AccountRow>,
  phase: 'posted' | 'pending',
): Promise<void> {
  if (legs.length === 0) return;
  const ids = legs.map((l) => accounts.get(accountKey(l.account))!.id);
  const amounts = legs.map((l) => l.amount);
  await tx`
    insert into ledger_entries (posting_id, account_id, amount, currency, phase)
    select ${postingId}::uuid, a, m, c, ${phase}
    from unnest(${ids}::int8[], ${amounts}::int8[], ${legs.map((l) => l.account.currency)}::text[]) as u(a, m, c)`;
  await applyToAccounts(tx, ids, amounts, phase, 1);
}

/**
 * Updates the cached balance (posted) or pending sums (pending, sign = +1 hold / −1 release): the one place a
 * balance is written. The new totals come back as text and are checked with BigInt (see the header).
 * @throws AppError AMOUNT_OUT_OF_RANGE when a total would pass ±Number.MAX_SAFE_INTEGER (the caller's
 *   transaction, and with it the whole posting, is rolled back).
 */
async function applyToAccounts(
  tx: TransactionSql,
  ids: number[],
  amounts: number[],
  phase: 'posted' | 'pending',
  sign: 1 | -1,
): Promise<void> {
  let rows: Array<Totals & { key: string }>;
  if (phase === 'posted') {
    rows = await tx`
      update ledger_accounts a set balance = a.balance + u.m, updated_at = now()
      from unnest(${ids}::int8[], ${amounts}::int8[]) as u(id, m) where a.id = u.id
      returning a.key, a.balance::text, a.pending_debits::text, a.pending_credits::text`;
  } else {
    const debits = amounts.map((m) => (m < 0 ? -m * sign : 0));
    const credits = amounts.map((m) => (m > 0 ? m * sign : 0));
    rows = await tx`
      update ledger_accounts a set pending_debits = a.pending_debits + u.d,
        pending_credits = a.pending_credits + u.c, updated_at = now()
      from unnest(${ids}::int8[], ${debits}::int8[], ${credits}::int8[]) as u(id, d, c) where a.id = u.id
      returning a.key, a.balance::text, a.pending_debits::text, a.pending_credits::text`;
  }
  for (const r of rows) totalsOf(r, r.key);
}

export interface ResolveRequest {
  pendingId: string;
  action: 'post' | 'void';
  /** For 'post': the amount to move (0 < amount ≤ pending amount); the rest is released. Default: all. */
  amount?: number;
  idempotencyKey: string;
  type: PostingType;
  /** Restrict which pending posting types this call may resolve (e.g. only 'withdrawal'). */
  expectType?: PostingType;
  meta?: Record<string, unknown>;
}

/** A pending posting with the result of its resolution. */
export interface Resolution {
  pending: Posting;
  resolution: Posting;
  /** Minor units moved by the post (0 for a void). */
  amount: number;
}

/**
 * Posts (fully or partly) or voids a pending posting, exactly once: the pending row is locked, must still
 * be 'pending', and `ledger_postings.pending_id` is unique. Pending postings have two legs (debit, credit).
 * @throws AppError NOT_FOUND, INVALID_STATE (already resolved, or not the expected type), VALIDATION_ERROR.
 */
export async function resolvePending(tx: TransactionSql, req: ResolveRequest): Promise<Resolution> {
  const hash = requestHash({ pendingId: req.pendingId, action: req.action, amount: req.amount ?? null });
  const existing = await findByKey(tx, req.idempotencyKey);
  if (existing) {
    if (existing.request_hash !== hash) {
      // The other way of resolving it (post vs void, another amount) already happened: exactly once.
      throw new AppError('INVALID_STATE', 'transfer is already resolved', { resolution_id: existing.id });
    }
    const resolution = replayOrConflict(existing, hash);
    const [p] = await tx`select * from ledger_postings where id = ${req.pendingId}`;
    const { request_hash: _h, ...rest } = p!;
    return { pending: toPosting(rest, true), resolution, amount: Number(resolution.meta.amount ?? 0) };
  }
  if (!UUID_RE.test(req.pendingId)) {
    throw new AppError('NOT_FOUND', 'pending transfer not found');
  }
  const [p] = await tx`select * from ledger_postings where id = ${req.pendingId} for update`;
  if (!p || (req.expectType && p.type !== req.expectType))
    throw new AppError('NOT_FOUND', 'pending transfer not found');
  if (p.status !== 'pending') {
    throw new AppError('INVALID_STATE', `transfer is already ${p.status}`, { status: p.status });
  }
  const entries = await tx<{ account_id: number; amount: number; currency: string }[]>`
    select account_id, amount, currency from ledger_entries where posting_id = ${req.pendingId} order by amount`;
  const debit = entries[0];
  const credit = entries[entries.length - 1];
  if (entries.length !== 2 || !debit || !credit) throw new Error('pending postings have exactly two legs');
  const total = credit.amount;
  let amount = 0;
  if (req.action === 'post') {
    amount = req.amount ?? total;
    if (!Number.isSafeInteger(amount) || amount <= 0 || amount > total) {
      throw new AppError('VALIDATION_ERROR', `amount must be between 1 and ${total}`, { max: total });
    }
  }
  const ids = [debit.account_id, credit.account_id].sort((a, b) => a - b);
  await tx`select id from ledger_accounts where id = any(${ids}::int8[]) order by id for update`;
  await applyToAccounts(tx, [debit.account_id, credit.account_id], [debit.amount, credit.amount], 'pending', -1);

  const id = randomUUID();
  const [row] = await tx`
    insert into ledger_postings (id, idempotency_key, request_hash, type, status, pending_id,
      advertiser_id, affiliate_id, campaign_id, conversion_id, meta)
    values (${id}, ${req.idempotencyKey}, ${hash}, ${req.type}, 'posted', ${req.pendingId},
      ${p.advertiser_id}, ${p.affiliate_id}, ${p.campaign_id}, ${p.conversion_id},
      ${tx.json({ ...(req.meta ?? {}), amount, pending_amount: total } as never)})
    returning *`;
  if (amount > 0) {
    await tx`
      insert into ledger_entries (posting_id, account_id, amount, currency, phase)
      values (${id}, ${debit.account_id}, ${-amount}, ${debit.currency}, 'posted'),
             (${id}, ${credit.account_id}, ${amount}, ${credit.currency}, 'posted')`;
    await applyToAccounts(tx, [debit.account_id, credit.account_id], [-amount, amount], 'posted', 1);
  }
  const [updated] = await tx`
    update ledger_postings set status = ${req.action === 'post' ? 'posted' : 'voided'}, resolved_at = now()
    where id = ${req.pendingId} returning *`;
  const { request_hash: _a, ...pend } = updated!;
  const { request_hash: _b, ...res } = row!;
  return { pending: toPosting(pend, false), resolution: toPosting(res, false), amount };
}

const RETRY_CODES = new Set(['40001', '40P01']);

/**
 * Runs `fn` in one transaction, retrying (with jitter) on serialization failures and deadlocks.
 * @param attempts total tries before the error is rethrown.
 */
export async function inTransaction<T>(sql: Sql, fn: (tx: TransactionSql) => Promise<T>, attempts = 6): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return (await sql.begin((tx) => fn(tx as TransactionSql))) as T;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (i >= attempts || !code || !RETRY_CODES.has(code)) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * i));
    }
  }
}
