/**
 * Runs one batch through its steps (./step-runner.ts) until it is acknowledged or parked: retries with
 * backoff (keeping a live consumer's entries claimed through an outage), parks what no retry fixes, and
 * counts the outcome.
 */
import { publishEvent } from '../../infra/index.ts';
import { FraudStateMismatch } from '../fraud/engine-pool.ts';
import type { Batch, DeadLetter } from './batches.ts';
import type { BatchResult, Runtime } from './runtime.ts';
import type { StreamStats } from './stats.ts';
import { runSteps, type StepList, type StepOutcome } from './step-runner.ts';
import { deadLetterAndAck } from './steps/ack.ts';
import { attributeConversions } from './steps/attribute-conversions.ts';
import { buildClickRows } from './steps/build-click-rows.ts';
import { chargeClicks } from './steps/charge-clicks.ts';
import type { ClickCtx, ConversionCtx, PartitionPosition, PipelineDeps } from './steps/context.ts';
import { decodeClicks } from './steps/decode-clicks.ts';
import { decodeConversions } from './steps/decode-conversions.ts';
import { dedupClicksStep } from './steps/dedup-clicks.ts';
import { emitLabels } from './steps/emit-labels.ts';
import { insertClicks, insertConversions } from './steps/insert-rows.ts';
import { lookupTerms } from './steps/lookup-terms.ts';
import { publishConversions } from './steps/publish-conversions.ts';
import { recordConversions } from './steps/record-conversions.ts';
import { scoreClicks } from './steps/score-clicks.ts';
import { settleConversions } from './steps/settle-conversions.ts';
import { storeClicksStep } from './steps/store-clicks.ts';
import { writeManifest } from './steps/write-manifest.ts';
import { GROUP } from './streams.ts';

/** The steps of a click batch, in order. */
export const CLICK_STEPS: StepList<ClickCtx> = [
  decodeClicks,
  dedupClicksStep,
  writeManifest,
  lookupTerms,
  scoreClicks,
  buildClickRows,
  // Independent (each idempotent): the click records only have to exist before the ack, as the rows do.
  [storeClicksStep, insertClicks],
  chargeClicks,
];

/** The steps of a conversion batch, in order. */
export const CONVERSION_STEPS: StepList<ConversionCtx> = [
  decodeConversions,
  writeManifest,
  attributeConversions,
  recordConversions,
  settleConversions,
  insertConversions,
  emitLabels,
  publishConversions,
];

/**
 * Parks a batch no retry can fix: every entry goes to the dead-letter stream with the reason, the batch is
 * acknowledged, and an alert is published (admins see `pipeline.batch_parked`). The partition moves on.
 */
async function park(rt: Runtime, batch: Batch, out: Extract<StepOutcome, { type: 'park' }>, st: StreamStats) {
  const { deps, log, redis, keys } = rt;
  const dead: DeadLetter[] = batch.entries.map(([id, fields]) => ({ id, fields, reason: `parked: ${out.reason}` }));
  await deadLetterAndAck(deps, batch, dead);
  st.processed_entries += batch.ids.length;
  st.dead_lettered += dead.length;
  st.parked_batches++;
  log.error({ stream: batch.stream, step: out.step, reason: out.reason, entries: batch.ids.length }, 'batch parked');
  await publishEvent(redis, keys, {
    id: `parked:${batch.token}`,
    type: 'pipeline.batch_parked',
    created_at: new Date().toISOString(),
    user_ids: [],
    data: {
      stream: batch.stream,
      step: out.step,
      reason: out.reason,
      ...(out.code ? { code: out.code } : {}),
      entries: batch.ids.length,
      token: batch.token,
    },
  }).catch((err) => log.warn({ err: (err as Error).message }, 'park alert not published'));
}

/**
 * Runs one batch's steps until it is acknowledged or parked (`done`), or the pipeline closes or the
 * partition's lease is lost (`abandoned`: it stays pending), or its fraud state was lost (`recover`).
 */
export async function runBatch<C extends ClickCtx | ConversionCtx>(
  rt: Runtime,
  steps: StepList<C>,
  ctx: C,
  st: StreamStats,
  finish: (ctx: C) => void,
  owned: () => boolean = () => true,
): Promise<BatchResult> {
  const { deps, config, log, redis, consumer, timings, nap } = rt;
  let touched = Date.now();
  let unexpected = 0;
  const m = deps.metrics;
  const observe = m ? (step: string, seconds: number) => m.stepSeconds(st.kind, step, seconds) : undefined;
  for (let attempt = 0; !rt.closing && owned(); attempt++) {
    const out = await runSteps(steps, ctx, timings, attempt, unexpected, observe);
    if (out.type === 'ok') {
      try {
        await deadLetterAndAck(deps, ctx.batch, ctx.dead);
        finish(ctx);
        st.processed_entries += ctx.batch.ids.length;
        st.dead_lettered += ctx.dead.length;
        return 'done';
      } catch (err) {
        log.warn({ stream: ctx.batch.stream, err: (err as Error).message }, 'ack failed, retrying');
        await nap(100);
        continue;
      }
    }
    if (out.error instanceof FraudStateMismatch) {
      log.warn({ stream: ctx.batch.stream, reason: out.reason }, 'fraud state lost, recovering the partition');
      return 'recover';
    }
    if (out.type === 'park') {
      try {
        await park(rt, ctx.batch, out, st);
        return 'done';
      } catch (err) {
        log.warn({ stream: ctx.batch.stream, err: (err as Error).message }, 'parking failed, retrying');
        await nap(100);
        continue;
      }
    }
    st.retries++;
    if (out.unexpected) unexpected++;
    if (out.error !== undefined)
      log.warn({ stream: ctx.batch.stream, attempt, reason: out.reason }, 'batch failed, retrying');
    // A live consumer retrying through an outage keeps its entries from looking abandoned: re-claim
    // them (resets their idle time) unless someone else touched them meanwhile.
    const half = Math.floor(config.PIPELINE_CLAIM_IDLE_MS / 2);
    if (Date.now() - touched >= half && ctx.batch.ids.length > 0) {
      touched = Date.now();
      await redis.xclaim(ctx.batch.stream, GROUP, consumer, half, ...ctx.batch.ids, 'JUSTID').catch(() => {});
    }
    await nap(out.delayMs);
  }
  return 'abandoned';
}

/** A fresh context for a click batch. */
export function clickCtx(deps: PipelineDeps, batch: Batch, position: PartitionPosition): ClickCtx {
  return {
    deps,
    batch,
    position,
    dead: [],
    decoded: [],
    labels: [],
    clicks: [],
    clickEntries: [],
    records: [],
    duplicates: 0,
    terms: new Map(),
    defaults: new Map(),
    built: { tsv: '', stored: [], invalid: new Uint8Array(0) },
  };
}

/** A fresh context for a conversion batch. */
export function conversionCtx(deps: PipelineDeps, batch: Batch): ConversionCtx {
  return {
    deps,
    batch,
    dead: [],
    decoded: [],
    clicks: [],
    bindings: new Map(),
    leads: [],
    terms: new Map(),
    rows: [],
    accepted: [],
    created: [],
    labels: [],
    duplicates: 0,
    rejected: 0,
  };
}

/** Runs a click batch of an owned partition at `position`, counting its clicks and duplicates. */
export function runClickBatch(
  rt: Runtime,
  batch: Batch,
  st: StreamStats,
  position: PartitionPosition,
  owned: () => boolean,
) {
  return runBatch(
    rt,
    CLICK_STEPS,
    clickCtx(rt.deps, batch, position),
    st,
    (ctx) => {
      st.processed_events += ctx.clicks.length;
      st.duplicates += ctx.duplicates;
    },
    owned,
  );
}

/** Runs a conversion batch, counting its conversions, duplicates and rejections. */
export function runConversionBatch(rt: Runtime, b: Batch, st: StreamStats) {
  return runBatch(rt, CONVERSION_STEPS, conversionCtx(rt.deps, b), st, (ctx) => {
    st.processed_events += ctx.created.length;
    st.duplicates += ctx.duplicates;
    st.rejected += ctx.rejected;
  });
}
