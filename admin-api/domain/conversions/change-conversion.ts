import { AppError } from '../../../infra/index.ts';
import { type HandlerArgs, notFound } from '../../http.ts';
import { needLedger } from '../wallet/need-ledger.ts';

/** What the conversion status changes read of a handler's arguments. */
type Caller = Pick<HandlerArgs<unknown, unknown>, 'deps' | 'user' | 'uuids'>;

/** The answer of a status change: the conversion, its status now and whether this call changed it. */
interface Changed {
  data: { id: string; status: string | undefined; changed: boolean };
}

/**
 * The conversion `uuids.id` as the caller may change it: advertisers their own (others → NOT_FOUND), admins any.
 * Test-mode API keys never change live conversions. @returns its status.
 */
async function changeable(a: Caller): Promise<{ id: string; status: string }> {
  if (a.user.mode === 'test') throw new AppError('FORBIDDEN', 'test-mode API keys cannot change conversions');
  const [c] = await a.deps.sql<{ id: string; status: string; advertiser_id: number }[]>`
    select id, status, advertiser_id from conversions where id = ${a.uuids.id!}`;
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
