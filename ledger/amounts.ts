/**
 * Totals past 2^53: running sums of money (balances, spend, an owner's figures) are exact only up to
 * Number.MAX_SAFE_INTEGER as JS numbers, so the ledger reads them as text and adds them with BigInt, and a total
 * past that bound is an explicit AMOUNT_OUT_OF_RANGE error (infra/contracts.ts §6), never a rounded number and
 * never a driver RangeError thrown on every later read.
 */
import { AppError } from '../infra/index.ts';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** The error of a total past ±Number.MAX_SAFE_INTEGER minor units (infra/contracts.ts §6). */
export function outOfRange(what: string, value: bigint | string): AppError {
  return new AppError('AMOUNT_OUT_OF_RANGE', `${what} would exceed the largest amount the ledger holds`, {
    what,
    value: String(value),
    max: Number.MAX_SAFE_INTEGER,
  });
}

/**
 * An int8 read as text (`::text`) as a number of minor units; `null` stays `null`.
 * @throws AppError AMOUNT_OUT_OF_RANGE when it is past ±Number.MAX_SAFE_INTEGER (it would not be exact).
 */
export function minorFromText(text: string | null, what: string): number | null {
  if (text === null) return null;
  const v = BigInt(text);
  if (v > MAX_SAFE || v < -MAX_SAFE) throw outOfRange(what, v);
  return Number(v);
}

/**
 * The sum of `values` (minor units) computed exactly with BigInt.
 * @throws AppError AMOUNT_OUT_OF_RANGE when it is past ±Number.MAX_SAFE_INTEGER.
 */
export function checkedSum(what: string, ...values: Array<number | bigint>): number {
  let total = 0n;
  for (const v of values) total += BigInt(v);
  if (total > MAX_SAFE || total < -MAX_SAFE) throw outOfRange(what, total);
  return Number(total);
}
