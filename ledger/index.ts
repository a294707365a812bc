/**
 * The ledger: every movement of money, as balanced, immutable, idempotent postings in Postgres
 * (double-entry accounts, two-phase transfers, campaign budgets, conversions, withdrawals).
 * Other folders import only this file.
 */

export { isValidPayoutAddress, PAYOUT_NETWORKS, type PayoutNetwork, toEip55 } from './addresses.ts';
export { checkInvariants } from './invariants.ts';
export {
  type AdvertiserBalance,
  type AffiliateBalance,
  type ConversionOutcome,
  createLedger,
  type Ledger,
  type LedgerDeps,
  type PayoutWallet,
  POSTING_TYPE_NAMES,
  type ReconcileResult,
  type ReconcileRow,
  type Scope,
  type TransactionRow,
  type TransferView,
} from './ledger.ts';
export type { AccountRef, OwnerType, PostingType, Purpose } from './postings.ts';
