/**
 * Paying affiliates out: their payout wallets (crypto addresses, usable a cool-down after they are added) and
 * withdrawals, two-phase transfers from `approved` to `paid` that an admin approves or rejects.
 */
import { z } from 'zod';
import { AppError, parseWith, validationError } from '../infra/index.ts';
import { affiliate, postingCurrency, type TransferView, transferView } from './accounts.ts';
import { isValidPayoutAddress, PAYOUT_NETWORKS, type PayoutNetwork } from './addresses.ts';
import { currency, id, idemKey, type LedgerContext, minor } from './context.ts';
import { post, postingByKey, resolvePending } from './postings.ts';

export interface PayoutWallet {
  id: number;
  affiliate_id: number;
  network: PayoutNetwork;
  address: string;
  label: string | null;
  created_at: Date;
  usable_at: Date;
}

/** How long a new payout wallet waits before a withdrawal may use it. */
const WALLET_COOLDOWN_MS = 24 * 3600_000;

const walletSchema = z.object({
  affiliateId: id,
  network: z.enum(PAYOUT_NETWORKS as [PayoutNetwork, ...PayoutNetwork[]]),
  address: z.string().trim().min(1).max(128),
  label: z.string().max(100).optional(),
});

const withdrawalSchema = z.object({ affiliateId: id, amount: minor, currency, walletId: id, idempotencyKey: idemKey });

/** The payout-wallet and withdrawal methods of the ledger (amounts in minor units). */
export function withdrawalFlows({ sql, config, now, run }: LedgerContext) {
  return {
    /**
     * Adds a payout address (validated per network); usable for withdrawals 24 hours later. Emits wallet.updated.
     * @throws VALIDATION_ERROR (details `{ address: [...] }` for an address the network refuses), CONFLICT (known).
     */
    async addPayoutWallet(input: {
      affiliateId: number;
      network: PayoutNetwork;
      address: string;
      label?: string;
    }): Promise<PayoutWallet> {
      const r = parseWith(walletSchema, input);
      if (!isValidPayoutAddress(r.network, r.address)) {
        const message = `not a valid ${r.network} address`;
        throw validationError({ address: message }, message);
      }
      return run(async (tx, fx) => {
        const created = now();
        const [w] = await tx<PayoutWallet[]>`
          insert into payout_wallets (affiliate_id, network, address, label, created_at, usable_at)
          values (${r.affiliateId}, ${r.network}, ${r.address}, ${r.label ?? null}, ${created},
                  ${new Date(created.getTime() + WALLET_COOLDOWN_MS)})
          on conflict do nothing
          returning id, affiliate_id, network, address, label, created_at, usable_at`;
        if (!w) throw new AppError('CONFLICT', 'this address is already registered');
        fx.wallet([r.affiliateId], {
          reason: 'payout_wallet_added',
          wallet_id: w.id,
          network: w.network,
          usable_at: w.usable_at,
        });
        return w;
      });
    },

    /** The affiliate's payout wallets (not deleted). */
    async listPayoutWallets(affiliateId: number): Promise<PayoutWallet[]> {
      return [
        ...(await sql<PayoutWallet[]>`
        select id, affiliate_id, network, address, label, created_at, usable_at from payout_wallets
        where affiliate_id = ${affiliateId} and deleted_at is null order by id`),
      ];
    },

    /** Removes a payout wallet (soft delete). @throws NOT_FOUND (not this affiliate's, or already removed). */
    async removePayoutWallet(affiliateId: number, walletId: number): Promise<void> {
      const r = await sql`update payout_wallets set deleted_at = now()
        where id = ${walletId} and affiliate_id = ${affiliateId} and deleted_at is null`;
      if (r.count === 0) throw new AppError('NOT_FOUND', 'payout wallet not found');
    },

    /**
     * Withdrawal request: holds `amount` of the affiliate's `approved` in a pending transfer to `paid`.
     * @throws VALIDATION_ERROR (below WITHDRAWAL_MIN_AMOUNT), NOT_FOUND (wallet), INVALID_STATE (wallet younger
     *   than 24 h), INSUFFICIENT_FUNDS, IDEMPOTENCY_CONFLICT.
     */
    async requestWithdrawal(input: {
      affiliateId: number;
      amount: number;
      currency: string;
      walletId: number;
      idempotencyKey: string;
    }): Promise<TransferView> {
      const r = parseWith(withdrawalSchema, input);
      if (r.amount < config.WITHDRAWAL_MIN_AMOUNT) {
        throw new AppError('VALIDATION_ERROR', `the minimum withdrawal is ${config.WITHDRAWAL_MIN_AMOUNT}`, {
          min_amount: config.WITHDRAWAL_MIN_AMOUNT,
        });
      }
      const key = `withdrawal:${r.affiliateId}:${r.idempotencyKey}`;
      const hashBody = { amount: r.amount, currency: r.currency, walletId: r.walletId };
      return run(async (tx, fx) => {
        // The wallet is checked for a new request only; a replay returns the first result.
        if (!(await postingByKey(tx, key))) {
          const [w] = await tx<{ usable_at: Date }[]>`
            select usable_at from payout_wallets
            where id = ${r.walletId} and affiliate_id = ${r.affiliateId} and deleted_at is null`;
          if (!w) throw new AppError('NOT_FOUND', 'payout wallet not found');
          if (w.usable_at > now()) {
            throw new AppError('INVALID_STATE', 'this payout wallet can be used 24 hours after it was added', {
              usable_at: w.usable_at.toISOString(),
            });
          }
        }
        const approved = affiliate(r.affiliateId, 'approved', r.currency);
        const p = await post(tx, {
          idempotencyKey: key,
          type: 'withdrawal',
          legs: [
            { account: approved, amount: -r.amount },
            { account: affiliate(r.affiliateId, 'paid', r.currency), amount: r.amount },
          ],
          pending: { expiresAt: null },
          mustCover: [approved],
          hashBody,
          affiliateId: r.affiliateId,
          meta: { wallet_id: r.walletId },
        });
        if (!p.replayed)
          fx.wallet([r.affiliateId], { reason: 'withdrawal_requested', withdrawal_id: p.id, amount: r.amount });
        return transferView(p, r.amount, r.currency);
      });
    },

    /** Admin approves a withdrawal: the held amount moves to `paid`; emits payout.paid. */
    async approveWithdrawal(withdrawalId: string, opts: { txHash?: string } = {}): Promise<TransferView> {
      return run(async (tx, fx) => {
        const r = await resolvePending(tx, {
          pendingId: withdrawalId,
          action: 'post',
          idempotencyKey: `withdrawal-resolve:${withdrawalId}`,
          type: 'withdrawal_paid',
          expectType: 'withdrawal',
          meta: opts.txHash ? { tx_hash: opts.txHash } : {},
        });
        const cur = await postingCurrency(tx, withdrawalId);
        if (!r.resolution.replayed) {
          fx.events.push({
            type: 'payout.paid',
            user_ids: [r.pending.affiliate_id!],
            data: { withdrawal_id: withdrawalId, amount: r.amount, currency: cur, wallet_id: r.pending.meta.wallet_id },
          });
          fx.wallet([r.pending.affiliate_id], { reason: 'withdrawal_paid', withdrawal_id: withdrawalId });
        }
        return transferView(r.resolution, r.amount, cur);
      });
    },

    /** Admin rejects a withdrawal: the held amount returns to `approved`. */
    async rejectWithdrawal(withdrawalId: string, reason: string | null = null): Promise<TransferView> {
      return run(async (tx, fx) => {
        const r = await resolvePending(tx, {
          pendingId: withdrawalId,
          action: 'void',
          idempotencyKey: `withdrawal-resolve:${withdrawalId}`,
          type: 'withdrawal_rejected',
          expectType: 'withdrawal',
          meta: { reason },
        });
        if (!r.resolution.replayed)
          fx.wallet([r.pending.affiliate_id], { reason: 'withdrawal_rejected', withdrawal_id: withdrawalId });
        return transferView(r.resolution, 0, await postingCurrency(tx, withdrawalId));
      });
    },

    /** Withdrawals (pending and resolved), newest first; `affiliateId` scopes to one affiliate. */
    async listWithdrawals(q: {
      affiliateId?: number;
      status?: 'pending' | 'posted' | 'voided';
      page: number;
      perPage: number;
    }) {
      const perPage = Math.min(200, Math.max(1, Math.floor(q.perPage)));
      const where = sql`p.type = 'withdrawal'
        ${q.affiliateId ? sql`and p.affiliate_id = ${q.affiliateId}` : sql``}
        ${q.status ? sql`and p.status = ${q.status}` : sql``}`;
      const [count] = await sql<{ n: number }[]>`select count(*)::int8 as n from ledger_postings p where ${where}`;
      const rows = await sql<
        Array<{
          id: string;
          affiliate_id: number;
          status: string;
          amount: number;
          currency: string;
          wallet_id: number;
          created_at: Date;
          resolved_at: Date | null;
        }>
      >`
        select p.id, p.affiliate_id, p.status, e.amount, e.currency, (p.meta->>'wallet_id')::int8 as wallet_id,
               p.created_at, p.resolved_at
        from ledger_postings p join ledger_entries e on e.posting_id = p.id and e.amount > 0
        where ${where} order by p.created_at desc, p.id desc
        limit ${perPage} offset ${(Math.max(1, Math.floor(q.page)) - 1) * perPage}`;
      return { rows: [...rows], total: count?.n ?? 0 };
    },
  };
}
