/**
 * The order in which an accepted conversion reaches the parts that act on it: the ledger first, then the
 * postbacks. The ledger may still reject a conversion (budget exhausted, daily cap reached); the postbacks,
 * which read the stored row, then fire with its final status.
 */
import type { ConversionRef, ConversionSink } from '../../infra/index.ts';

/**
 * One {@link ConversionSink} that hands each conversion to `ledger`, then to `postbacks`. Both must be idempotent by
 * conversion id (infra/contracts.ts §4): when the second fails, the batch is retried and the first sees it again.
 */
export function settlementSink(parts: {
  ledger: ConversionSink<ConversionRef>;
  postbacks: ConversionSink<ConversionRef>;
}): ConversionSink {
  return {
    async conversionRecorded(c) {
      await parts.ledger.conversionRecorded(c);
      await parts.postbacks.conversionRecorded(c);
    },
  };
}
