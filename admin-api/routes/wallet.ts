import { randomUUID } from 'node:crypto';
import type { Context } from 'koa';
import { z } from 'zod';
import { AppError, MAX_MINOR_UNITS, type Sql, validationError } from '../../infra/index.ts';
import { PAYOUT_NETWORKS, type PayoutNetwork, POSTING_TYPE_NAMES } from '../../ledger/index.ts';
import { needLedger } from '../domain/wallet/need-ledger.ts';
import { currency, paged, pageQuery, type Route, route } from '../http.ts';
import type { Principal, Role } from '../types.ts';

/** Money amount in a request: a positive integer up to MAX_MINOR_UNITS (infra/contracts.ts §6), minor units. */
const amount = z.number().int().min(1).max(MAX_MINOR_UNITS);

/**
 * The `Idempotency-Key` header (1..200 printable characters) or a fresh UUID: a client that retries with the
 * same key gets the first result and no money moves twice.
 */
function idempotencyKey(ctx: Context): string {
  const h = ctx.get('idempotency-key');
  if (!h) return randomUUID();
  if (h.length > 200 || !/^[\x21-\x7e]+$/.test(h))
    throw validationError({ 'Idempotency-Key': 'must be 1..200 printable ASCII characters' });
  return h;
}

/**
 * Whose wallet a call is about: the caller, or for admins the `user_id` they pass. Non-admins passing
 * another user's id → FORBIDDEN. @returns the user id and its role (admins without `user_id`: themselves).
 */
async function subject(sql: Sql, user: Principal, userId: number | undefined): Promise<{ id: number; role: Role }> {
  if (userId === undefined || userId === user.user_id) return { id: user.user_id, role: user.role };
  if (user.role !== 'admin') throw new AppError('FORBIDDEN', "only admins may see another user's wallet");
  const [u] = await sql<{ role: Role }[]>`select role from users where id = ${userId}`;
  if (!u) throw new AppError('NOT_FOUND', 'user not found');
  return { id: userId, role: u.role };
}

const userIdQuery = z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional();

/** `YYYY-MM-DD` (UTC midnight) or an ISO 8601 date-time with offset. */
const isoInstant = z
  .string()
  .max(40)
  .refine((s) => {
    if (/^\d{4}-\d{2}-\d{2}$/.test(s)) return new Date(`${s}T00:00:00Z`).toISOString().startsWith(s);
    return z.iso.datetime({ offset: true }).safeParse(s).success;
  }, 'must be an ISO 8601 date (YYYY-MM-DD) or date-time');

const dateOnly = (s: string) => /^\d{4}-\d{2}-\d{2}$/.test(s);

const TX_TYPES = POSTING_TYPE_NAMES;

/**
 * `/wallet/*`: deposits (fund, admin confirm/void), balances, transactions, payout wallets and withdrawals,
 * all through the ledger (`deps.ledger`; absent → 503 SERVICE_UNAVAILABLE). Session tokens only (no API-key scope).
 */
export function walletRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'post',
      path: '/wallet/fund',
      summary:
        'Fund your wallet (advertiser). In production the deposit is pending until an admin (or a payment integration) ' +
        'confirms it; with test deposits (WALLET_TEST_DEPOSITS, development and test only) it is credited at once. ' +
        'Send an Idempotency-Key header to make retries safe.',
      tag: 'wallet',
      auth: ['advertiser'],
      body: z.object({ amount, currency, reference: z.string().trim().min(1).max(200) }).strict(),
      example: { amount: 500000, currency: 'USD', reference: 'wire 2026-11-22' },
      async handler(a) {
        const t = await needLedger(a).fund({
          advertiserId: a.user.user_id,
          amount: a.body.amount,
          currency: a.body.currency,
          reference: a.body.reference,
          idempotencyKey: idempotencyKey(a.ctx),
        });
        return { status: t.replayed ? 200 : 201, data: t };
      },
    }),
    route({
      method: 'post',
      path: '/wallet/deposits/:id/confirm',
      summary: 'Confirm a pending deposit (admin), fully or for a smaller amount (the rest is released)',
      tag: 'wallet',
      auth: ['admin'],
      uuidParams: ['id'],
      body: z.object({ amount: amount.optional() }).strict(),
      example: { amount: 400000 },
      async handler(a) {
        return { data: await needLedger(a).confirmDeposit(a.uuids.id!, { amount: a.body.amount }) };
      },
    }),
    route({
      method: 'post',
      path: '/wallet/deposits/:id/void',
      summary: 'Reject a pending deposit (admin): nothing is credited',
      tag: 'wallet',
      auth: ['admin'],
      uuidParams: ['id'],
      async handler(a) {
        return { data: await needLedger(a).voidDeposit(a.uuids.id!) };
      },
    }),
    route({
      method: 'get',
      path: '/wallet/balance',
      summary:
        'Balances per currency: advertisers {total, available, reserved, spent, pending_deposits}; affiliates ' +
        '{pending, approved, withdrawal_pending, paid, earnings, current}; admins: the platform margin, or anyone’s with ' +
        '?user_id=',
      tag: 'wallet',
      auth: ['admin', 'advertiser', 'affiliate'],
      query: z.object({ user_id: userIdQuery, currency: currency.optional() }),
      async handler(a) {
        const ledger = needLedger(a);
        const who = await subject(a.deps.sql, a.user, a.query.user_id);
        const pick = <T extends { currency: string }>(rows: T[]) =>
          a.query.currency ? rows.filter((r) => r.currency === a.query.currency) : rows;
        const balances =
          who.role === 'advertiser'
            ? pick(await ledger.advertiserBalances(who.id))
            : who.role === 'affiliate'
              ? pick(await ledger.affiliateBalances(who.id))
              : pick(await ledger.platformBalances());
        return { data: { user_id: who.role === 'admin' ? null : who.id, role: who.role, balances } };
      },
    }),
    route({
      method: 'get',
      path: '/wallet/transactions',
      summary: 'Your ledger postings, newest first, with your entries (admins: ?user_id= required)',
      tag: 'wallet',
      auth: ['admin', 'advertiser', 'affiliate'],
      query: pageQuery.extend({
        user_id: userIdQuery,
        type: z.enum(TX_TYPES).optional(),
        from: isoInstant.optional(),
        to: isoInstant.optional(),
      }),
      async handler(a) {
        const ledger = needLedger(a);
        const who = await subject(a.deps.sql, a.user, a.query.user_id);
        if (who.role === 'admin') throw validationError({ user_id: 'required for admins: whose transactions' });
        if (who.role === 'analyst') throw new AppError('NOT_FOUND', 'analysts have no wallet');
        const q = a.query;
        const from = q.from ? new Date(dateOnly(q.from) ? `${q.from}T00:00:00Z` : q.from) : undefined;
        // A date `to` includes that whole UTC day.
        const to = q.to
          ? dateOnly(q.to)
            ? new Date(Date.parse(`${q.to}T00:00:00Z`) + 86_400_000)
            : new Date(q.to)
          : undefined;
        // `to` is exclusive here, so to = from is a range that ends before it starts.
        if (from && to && to <= from) throw validationError({ to: 'must not be before from' });
        const r = await ledger.listTransactions({
          ownerType: who.role,
          ownerId: who.id,
          type: q.type,
          from,
          to,
          page: q.page,
          perPage: q.per_page,
        });
        return paged(r.rows, r.total, q);
      },
    }),
    route({
      method: 'post',
      path: '/wallet/withdraw',
      summary:
        'Request a withdrawal of approved commissions to one of your payout wallets (affiliate; at least ' +
        'WITHDRAWAL_MIN_AMOUNT; wallet older than 24 h). Held until an admin approves or rejects it.',
      tag: 'wallet',
      auth: ['affiliate'],
      body: z.object({ amount, currency, wallet_id: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER) }).strict(),
      example: { amount: 5000, currency: 'USD', wallet_id: 1 },
      async handler(a) {
        const t = await needLedger(a).requestWithdrawal({
          affiliateId: a.user.user_id,
          amount: a.body.amount,
          currency: a.body.currency,
          walletId: a.body.wallet_id,
          idempotencyKey: idempotencyKey(a.ctx),
        });
        return { status: t.replayed ? 200 : 201, data: t };
      },
    }),
    route({
      method: 'get',
      path: '/wallet/withdrawals',
      summary: 'Withdrawals, newest first (affiliates: own; admins: all, or ?user_id=)',
      tag: 'wallet',
      auth: ['admin', 'affiliate'],
      query: pageQuery.extend({ user_id: userIdQuery, status: z.enum(['pending', 'posted', 'voided']).optional() }),
      async handler(a) {
        const ledger = needLedger(a);
        const affiliateId =
          a.user.role === 'admin' ? a.query.user_id : (await subject(a.deps.sql, a.user, a.query.user_id)).id;
        const r = await ledger.listWithdrawals({
          affiliateId,
          status: a.query.status,
          page: a.query.page,
          perPage: a.query.per_page,
        });
        return paged(r.rows, r.total, a.query);
      },
    }),
    route({
      method: 'post',
      path: '/wallet/withdrawals/:id/approve',
      summary: 'Approve a withdrawal (admin): the held amount is paid out; optional on-chain tx_hash',
      tag: 'wallet',
      auth: ['admin'],
      uuidParams: ['id'],
      body: z.object({ tx_hash: z.string().trim().min(1).max(200).optional() }).strict(),
      example: { tx_hash: '0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060' },
      async handler(a) {
        return { data: await needLedger(a).approveWithdrawal(a.uuids.id!, { txHash: a.body.tx_hash }) };
      },
    }),
    route({
      method: 'post',
      path: '/wallet/withdrawals/:id/reject',
      summary: "Reject a withdrawal (admin): the held amount returns to the affiliate's approved balance",
      tag: 'wallet',
      auth: ['admin'],
      uuidParams: ['id'],
      body: z.object({ reason: z.string().trim().min(1).max(500).optional() }).strict(),
      example: { reason: 'address flagged by compliance' },
      async handler(a) {
        return { data: await needLedger(a).rejectWithdrawal(a.uuids.id!, a.body.reason ?? null) };
      },
    }),
    route({
      method: 'get',
      path: '/wallet/wallets',
      summary: 'Your payout wallets (affiliate; admins: ?user_id=)',
      tag: 'wallet',
      auth: ['admin', 'affiliate'],
      query: z.object({ user_id: userIdQuery }),
      async handler(a) {
        const ledger = needLedger(a);
        const who = await subject(a.deps.sql, a.user, a.query.user_id);
        return { data: who.role === 'affiliate' ? await ledger.listPayoutWallets(who.id) : [] };
      },
    }),
    route({
      method: 'post',
      path: '/wallet/wallets',
      summary: `Add a payout wallet (affiliate; ${PAYOUT_NETWORKS.join('|')}); usable for withdrawals 24 h later (usable_at)`,
      tag: 'wallet',
      auth: ['affiliate'],
      body: z
        .object({
          network: z.enum(PAYOUT_NETWORKS as unknown as [PayoutNetwork, ...PayoutNetwork[]]),
          address: z.string().trim().min(1).max(128),
          label: z.string().trim().min(1).max(100).optional(),
        })
        .strict(),
      example: { network: 'ETH', address: '0x52908400098527886E0F7030069857D2E4169EE7', label: 'main' },
      async handler(a) {
        const w = await needLedger(a).addPayoutWallet({
          affiliateId: a.user.user_id,
          network: a.body.network,
          address: a.body.address,
          label: a.body.label,
        });
        return { status: 201, data: w };
      },
    }),
    route({
      method: 'delete',
      path: '/wallet/wallets/:id',
      summary: 'Remove one of your payout wallets (affiliate)',
      tag: 'wallet',
      auth: ['affiliate'],
      async handler(a) {
        await needLedger(a).removePayoutWallet(a.user.user_id, a.params.id!);
        return { data: { id: a.params.id, deleted: true } };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
