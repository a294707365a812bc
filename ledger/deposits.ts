/**
 * Funding an advertiser's wallet: deposits credited at once (`WALLET_TEST_DEPOSITS`) or held as two-phase
 * transfers an admin confirms (fully or partly) or voids.
 */
import { z } from 'zod';
import { parseWith } from '../infra/index.ts';
import { advertiser, external, postingCurrency, type TransferView, transferView } from './accounts.ts';
import { currency, id, idemKey, type LedgerContext, minor } from './context.ts';
import { post, resolvePending } from './postings.ts';

const fundSchema = z.object({
  advertiserId: id,
  amount: minor,
  currency,
  reference: z.string().min(1).max(200),
  idempotencyKey: idemKey,
});

/** The deposit methods of the ledger (amounts in minor units). */
export function depositFlows({ config, now, depositTtlMs, run }: LedgerContext) {
  return {
    /**
     * Advertiser deposit. With `WALLET_TEST_DEPOSITS` it is credited at once; otherwise it is a pending
     * transfer (two-phase) an admin confirms with `confirmDeposit` or voids; unconfirmed ones expire.
     * Idempotent per (advertiser, idempotencyKey). @throws VALIDATION_ERROR, IDEMPOTENCY_CONFLICT.
     */
    async fund(input: {
      advertiserId: number;
      amount: number;
      currency: string;
      reference: string;
      idempotencyKey: string;
    }): Promise<TransferView> {
      const r = parseWith(fundSchema, input);
      return run(async (tx, fx) => {
        const p = await post(tx, {
          idempotencyKey: `deposit:${r.advertiserId}:${r.idempotencyKey}`,
          type: 'deposit',
          legs: [
            { account: external('deposits', r.currency), amount: -r.amount },
            { account: advertiser(r.advertiserId, 'available', r.currency), amount: r.amount },
          ],
          pending: config.WALLET_TEST_DEPOSITS ? undefined : { expiresAt: new Date(now().getTime() + depositTtlMs) },
          hashBody: { amount: r.amount, currency: r.currency, reference: r.reference },
          advertiserId: r.advertiserId,
          meta: { reference: r.reference },
        });
        if (!p.replayed)
          fx.wallet([r.advertiserId], { reason: 'deposit', status: p.status, amount: r.amount, currency: r.currency });
        return transferView(p, r.amount, r.currency);
      });
    },

    /**
     * Admin confirms a pending deposit, fully or for a smaller `amount` (the rest is released).
     * @throws NOT_FOUND (no such deposit), INVALID_STATE (voided or expired), VALIDATION_ERROR (`amount` not in
     *   1..the deposit, details `{ max }`).
     */
    async confirmDeposit(depositId: string, opts: { amount?: number } = {}): Promise<TransferView> {
      return run(async (tx, fx) => {
        const r = await resolvePending(tx, {
          pendingId: depositId,
          action: 'post',
          amount: opts.amount,
          idempotencyKey: `deposit-resolve:${depositId}`,
          type: 'deposit_confirm',
          expectType: 'deposit',
        });
        if (!r.resolution.replayed)
          fx.wallet([r.pending.advertiser_id], { reason: 'deposit_confirmed', amount: r.amount });
        return transferView(r.resolution, r.amount, await postingCurrency(tx, depositId));
      });
    },

    /** Admin rejects a pending deposit: nothing is credited. @throws NOT_FOUND, INVALID_STATE (resolved). */
    async voidDeposit(depositId: string): Promise<TransferView> {
      return run(async (tx, fx) => {
        const r = await resolvePending(tx, {
          pendingId: depositId,
          action: 'void',
          idempotencyKey: `deposit-resolve:${depositId}`,
          type: 'deposit_void',
          expectType: 'deposit',
        });
        if (!r.resolution.replayed) fx.wallet([r.pending.advertiser_id], { reason: 'deposit_voided' });
        return transferView(r.resolution, 0, await postingCurrency(tx, depositId));
      });
    },
  };
}
