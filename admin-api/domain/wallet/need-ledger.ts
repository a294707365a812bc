import { AppError } from '../../../infra/index.ts';
import type { Ledger } from '../../../ledger/index.ts';

/** The ledger, or 503 SERVICE_UNAVAILABLE when the API runs without one. */
export function needLedger(a: { deps: { ledger?: Ledger } }): Ledger {
  if (!a.deps.ledger) throw new AppError('SERVICE_UNAVAILABLE', 'the wallet is not available');
  return a.deps.ledger;
}
