/**
 * How the step runner classifies a thrown error (pure): a sink's permanent refusal parks at once, by its type and
 * code (infra/contracts.ts §7), never by what its message says.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError, RetriableError } from '../../infra/index.ts';
import { classify, MAX_UNEXPECTED_ATTEMPTS } from './step-runner.ts';

test('a permanent AppError parks at the first attempt; others are retried; the message does not count', () => {
  for (const code of ['VALIDATION_ERROR', 'AMOUNT_OUT_OF_RANGE', 'IDEMPOTENCY_CONFLICT'] as const) {
    assert.equal(classify(new AppError(code, 'refused'), 1), 'park', code);
  }
  assert.equal(classify(new AppError('SERVICE_UNAVAILABLE', 'later'), 1), 'retry');
  assert.equal(classify(new RetriableError('AMOUNT_OUT_OF_RANGE'), MAX_UNEXPECTED_ATTEMPTS), 'retry');
  assert.equal(classify(new Error('AMOUNT_OUT_OF_RANGE: looks permanent'), 1), 'retry');
  assert.equal(classify(new Error('unexpected'), MAX_UNEXPECTED_ATTEMPTS), 'park');
});
