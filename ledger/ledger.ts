/**
 * The ledger as one object: the money flows on top of the posting engine (./postings.ts), each in its own
 * file: deposits, campaign budgets, conversions and reconciliation, CPC click charges, balances and transaction
 * lists, payout wallets and withdrawals, and the maintenance jobs. Every public method that moves money is one
 * Postgres transaction (retried on deadlock / serialization failure); Redis messages (wallet events, link
 * invalidation) are published after it commits.
 */
import type { ClickChargeSink, ConversionRef, ConversionSink } from '../infra/index.ts';
import { balanceFlows } from './balances.ts';
import { budgetFlows } from './budget.ts';
import { createContext, type LedgerDeps } from './context.ts';
import { conversionFlows } from './conversions.ts';
import { cpcFlows } from './cpc.ts';
import { depositFlows } from './deposits.ts';
import { maintenanceFlows } from './maintenance.ts';
import { withdrawalFlows } from './withdrawals.ts';

/** The ledger's public API. Construct with {@link createLedger}. */
export type Ledger = ReturnType<typeof createLedger>;

/**
 * Builds the ledger over a Postgres pool. All amounts are integer minor units (JS numbers, safe integers).
 * Errors are AppError: VALIDATION_ERROR, NOT_FOUND, INSUFFICIENT_FUNDS, BUDGET_EXHAUSTED, INVALID_STATE,
 * IDEMPOTENCY_CONFLICT. Authorization (who may call what on which object) is the caller's job; methods take
 * the owner id explicitly and check the object belongs to it.
 */
export function createLedger(deps: LedgerDeps) {
  const ctx = createContext(deps);
  const ledger = {
    ...depositFlows(ctx),
    ...budgetFlows(ctx),
    ...conversionFlows(ctx),
    ...cpcFlows(ctx),
    ...balanceFlows(ctx),
    ...withdrawalFlows(ctx),
    ...maintenanceFlows(ctx),
    /** The pipeline's conversion sink (contracts.ts §4). */
    sink: undefined as unknown as ConversionSink<ConversionRef>,
    /** CPC sink for the pipeline: charges each (campaign, affiliate) group once per batch. */
    clickSink: undefined as unknown as ClickChargeSink,
  };
  ledger.sink = {
    async conversionRecorded(c) {
      await ledger.conversionRecorded(c);
    },
  };
  ledger.clickSink = {
    async clicksCharged(charges, batchKey) {
      for (const c of charges) {
        await ledger.chargeClicks(c.campaign_id, c.count, `${batchKey}:${c.affiliate_id}`, {
          affiliateId: c.affiliate_id,
        });
      }
    },
  };
  return ledger;
}
