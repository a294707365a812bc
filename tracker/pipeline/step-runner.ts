/**
 * The step runner of the pipeline: runs a batch's named steps in order, times each, and classifies
 * every failure once (PostHog's event-pipeline runner is the model, see ../../../shared/EXAMPLES.md):
 * - an outage (`isRetriable`: Redis, Postgres, ClickHouse or the network down) → retry with backoff,
 *   for as long as it lasts, never acknowledging;
 * - a step that says so (`{ type: 'retry' }`, e.g. a conversion whose click is still in flight) → retry;
 * - bad data or a refusal that cannot change (`PermanentError`, `MalformedEventError`, or a sink's AppError with a
 *   code of PERMANENT_REFUSAL_CODES, infra/contracts.ts §7: e.g. the ledger's AMOUNT_OUT_OF_RANGE) → park the
 *   batch at the first attempt: its entries go to the dead-letter stream with the reason, an alert is raised,
 *   the batch is acknowledged, and the partition moves on. Decided by error type and code, never by message;
 * - anything else (a bug, an unexpected reply) → retried {@link MAX_UNEXPECTED_ATTEMPTS} times, then parked,
 *   so it never wedges the partition.
 */
import { isPermanentRefusal, isRetriable } from '../../infra/index.ts';
import { MalformedEventError } from '../events.ts';

/** What a step (or a whole batch) came to. */
export type StepOutcome =
  | { type: 'ok' }
  | { type: 'retry'; delayMs: number; reason: string; unexpected?: boolean }
  | { type: 'park'; reason: string; step: string; code?: string };

/** One named step over a batch context `C`; it mutates `C` and may ask for a retry. */
export interface Step<C> {
  name: string;
  run(ctx: C): Promise<undefined | { type: 'retry'; delayMs: number; reason: string }>;
}

/** Thrown for a failure no retry can fix (the value or the refusal will be the same next time). */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

/** Unexpected errors of one batch retried this often before the batch is parked. */
export const MAX_UNEXPECTED_ATTEMPTS = 8;

/** Cumulative time and calls per step name, ms. */
export type StepTimings = Record<string, { calls: number; total_ms: number; failures: number }>;

/** Exponential backoff with jitter: 100 ms, 200 ms, … capped at 10 s. */
export function backoffMs(attempt: number): number {
  const base = Math.min(100 * 2 ** Math.min(attempt, 10), 10_000);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/** How a thrown error is handled: retry (outage or not yet known) or park (will never succeed). */
export function classify(err: unknown, unexpectedAttempts: number): 'retry' | 'park' {
  if (err instanceof PermanentError || err instanceof MalformedEventError || isPermanentRefusal(err)) return 'park';
  if (isRetriable(err)) return 'retry';
  return unexpectedAttempts >= MAX_UNEXPECTED_ATTEMPTS ? 'park' : 'retry';
}

/**
 * Steps in order; an inner array is a group of independent steps that run at the same time (each still timed on
 * its own), e.g. the click store write and the ClickHouse insert of one batch.
 */
export type StepList<C> = ReadonlyArray<Step<C> | ReadonlyArray<Step<C>>>;

type Ran = StepOutcome & { error?: unknown };

/** Receives each step run's time, seconds (the pipeline's `pipeline_step_duration_seconds`). */
export type StepObserver = (step: string, seconds: number) => void;

async function runOne<C>(
  step: Step<C>,
  ctx: C,
  timings: StepTimings,
  attempt: number,
  unexpected: number,
  observe?: StepObserver,
): Promise<Ran | undefined> {
  timings[step.name] ??= { calls: 0, total_ms: 0, failures: 0 };
  const t = timings[step.name]!;
  const started = performance.now();
  try {
    const out = await step.run(ctx);
    const ms = performance.now() - started;
    t.calls++;
    t.total_ms += ms;
    observe?.(step.name, ms / 1000);
    return out;
  } catch (error) {
    const ms = performance.now() - started;
    t.calls++;
    t.failures++;
    t.total_ms += ms;
    observe?.(step.name, ms / 1000);
    const surprising = !isRetriable(error);
    const how = classify(error, unexpected + (surprising ? 1 : 0));
    // An AppError's code leads its reason, so the dead letters and the alert say which refusal it was.
    const code = isPermanentRefusal(error) ? error.code : undefined;
    const reason = `${step.name}: ${code ? `${code}: ` : ''}${(error as Error)?.message ?? String(error)}`;
    if (how === 'park') return { type: 'park', reason, step: step.name, error, ...(code ? { code } : {}) };
    return { type: 'retry', delayMs: backoffMs(attempt), reason, error, unexpected: surprising };
  }
}

/**
 * Runs `steps` in order over `ctx`, recording each step's time in `timings`. Returns the first
 * non-ok outcome (within a group: a park before a retry); a thrown error becomes `retry` or `park` by
 * {@link classify}.
 * @param attempt how many times this batch was tried before (for the backoff).
 * @param unexpected how many of those failed unexpectedly (neither an outage nor permanent).
 * @param observe receives each step run's time, seconds.
 */
export async function runSteps<C>(
  steps: StepList<C>,
  ctx: C,
  timings: StepTimings,
  attempt: number,
  unexpected: number,
  observe?: StepObserver,
): Promise<Ran> {
  for (const entry of steps) {
    const group: ReadonlyArray<Step<C>> = Array.isArray(entry) ? entry : [entry as Step<C>];
    const outs = await Promise.all(group.map((step) => runOne(step, ctx, timings, attempt, unexpected, observe)));
    const parked = outs.find((o) => o?.type === 'park');
    const other = parked ?? outs.find((o) => o !== undefined && o.type !== 'ok');
    if (other) return other;
  }
  return { type: 'ok' };
}
