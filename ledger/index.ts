/**
 * The ledger: every movement of money, as balanced, immutable, idempotent postings in Postgres
 * (double-entry accounts, two-phase transfers, campaign budgets, conversions, withdrawals).
 * Other folders import only this file.
 */

export type { Scope, TransferView } from './accounts.ts';
export { isValidPayoutAddress, PAYOUT_NETWORKS, type PayoutNetwork, toEip55 } from './addresses.ts';
export { type AdvertiserBalance, type AffiliateBalance, POSTING_TYPE_NAMES, type TransactionRow } from './balances.ts';
export type { LedgerDeps } from './context.ts';
export {
  type ConversionOutcome,
  type ReconcileResult,
  type ReconcileRow,
  reconcileRowSchema,
} from './conversions.ts';
export { checkInvariants } from './invariants.ts';
export { createLedger, type Ledger } from './ledger.ts';
export type { AccountRef, OwnerType, PostingType, Purpose } from './postings.ts';
export type { PayoutWallet } from './withdrawals.ts';
