import { AppError } from '../../../infra/index.ts';
import type { Ledger, ReconcileResult, ReconcileRow } from '../../../ledger/index.ts';
import { type HandlerArgs, notFound } from '../../http.ts';
import type { Principal } from '../../types.ts';
import { needLedger } from '../wallet/need-ledger.ts';

/** What the conversion status changes read of a handler's arguments. */
type Caller = Pick<HandlerArgs<unknown, unknown>, 'deps' | 'user' | 'uuids'>;

/** The answer of a status change: the conversion, its status now and whether this call changed it. */
interface Changed {
  data: { id: string; status: string | undefined; changed: boolean };
}

/**
 * Refuses a test-mode principal: conversion status changes go through the ledger, which moves money.
 * @throws AppError LIVE_MODE_REQUIRED (403) for a test-mode API key.
 */
export function requireLiveMode(user: Principal, what: string): void {
  if (user.mode === 'test')
    throw new AppError('LIVE_MODE_REQUIRED', `test-mode API keys cannot ${what}: it moves ledger money`);
}

/**
 * The conversion `uuids.id` as the caller may change it: advertisers their own (others → NOT_FOUND), admins any;
 * a conversion of a test-mode campaign does not exist for live principals (NOT_FOUND), and test-mode API keys
 * change none (LIVE_MODE_REQUIRED). @returns its status.
 */
async function changeable(a: Caller): Promise<{ id: string; status: string }> {
  requireLiveMode(a.user, 'change conversions');
  const [c] = await a.deps.sql<{ id: string; status: string; advertiser_id: number }[]>`
    select v.id, v.status, v.advertiser_id from conversions v
    where v.id = ${a.uuids.id!}
      and not exists (select 1 from campaigns c where c.id = v.campaign_id and c.mode = 'test')`;
  if (!c || (a.user.role !== 'admin' && c.advertiser_id !== a.user.user_id)) return notFound('conversion');
  return c;
}

/** Scope the ledger checks again inside its transaction (advertisers: their own conversions). */
const scopeOf = (a: Caller) => (a.user.role === 'admin' ? {} : { advertiserId: a.user.user_id });

async function changed(a: Caller, id: string, r: { changed: boolean }): Promise<Changed> {
  const [c] = await a.deps.sql<{ status: string }[]>`select status from conversions where id = ${id}`;
  return { data: { id, status: c?.status, changed: r.changed } };
}

/**
 * Approves the conversion `uuids.id` through the ledger (the affiliate's payout becomes withdrawable).
 * @throws AppError SERVICE_UNAVAILABLE without a ledger, FORBIDDEN for test-mode keys, NOT_FOUND for others'.
 */
export async function approveConversion(a: Caller): Promise<Changed> {
  const ledger = needLedger(a);
  const c = await changeable(a);
  return changed(a, c.id, await ledger.approveConversion(c.id, { ...scopeOf(a), by: `user:${a.user.user_id}` }));
}

/**
 * Rejects (before approval) or reverses (also after it) the conversion `uuids.id` through the ledger: its money
 * goes back. @throws AppError INVALID_STATE when rejecting an approved conversion, and as {@link approveConversion}.
 */
export async function reverseConversion(a: Caller, status: 'rejected' | 'reversed', reason: string): Promise<Changed> {
  const ledger = needLedger(a);
  const c = await changeable(a);
  if (status === 'rejected' && c.status === 'approved')
    throw new AppError('INVALID_STATE', 'conversion is approved; reverse it instead', { status: c.status });
  return changed(a, c.id, await ledger.reverseConversion(c.id, status, reason, scopeOf(a)));
}

/**
 * `ledger.reconcile` for a live principal (test-mode keys: LIVE_MODE_REQUIRED), keeping conversions of test-mode
 * campaigns out of the ledger: a row whose event_id (or, without one, click_id) matches any of them answers
 * NOT_FOUND, as to every live caller, and never reaches the ledger (which would post money for it). `advertiserId`
 * null: any advertiser's (admins). @returns one result per row, `index` into `rows`.
 */
export async function reconcileLive(
  a: Pick<Caller, 'deps' | 'user'>,
  ledger: Ledger,
  advertiserId: number | null,
  rows: ReconcileRow[],
  opts: Parameters<Ledger['reconcile']>[2],
): Promise<ReconcileResult[]> {
  requireLiveMode(a.user, 'reconcile conversions');
  const key = (r: ReconcileRow) => (r.event_id !== undefined ? `e:${r.event_id.trim()}` : `c:${r.click_id}`);
  const events = rows.flatMap((r) => (r.event_id !== undefined ? [r.event_id.trim()] : []));
  const clicks = rows.flatMap((r) => (r.event_id === undefined && r.click_id ? [r.click_id] : []));
  const sandboxed = await a.deps.sql<{ event_id: string; click_id: string | null }[]>`
    select v.event_id, v.click_id from conversions v join campaigns c on c.id = v.campaign_id
    where c.mode = 'test' and (v.event_id = any(${events}) or v.click_id = any(${clicks}::uuid[]))
      ${advertiserId === null ? a.deps.sql`` : a.deps.sql`and v.advertiser_id = ${advertiserId}`}`;
  if (sandboxed.length === 0) return ledger.reconcile(advertiserId, rows, opts);
  const hidden = new Set(sandboxed.flatMap((s) => [`e:${s.event_id}`, ...(s.click_id ? [`c:${s.click_id}`] : [])]));
  const live: number[] = [];
  rows.forEach((r, i) => {
    if (!hidden.has(key(r))) live.push(i);
  });
  const done = await ledger.reconcile(
    advertiserId,
    live.map((i) => rows[i]!),
    opts,
  );
  const out: ReconcileResult[] = rows.map((_, index) => ({
    index,
    ok: false,
    error: { code: 'NOT_FOUND', message: 'conversion not found' },
  }));
  for (const r of done) out[live[r.index]!] = { ...r, index: live[r.index]! };
  return out;
}
