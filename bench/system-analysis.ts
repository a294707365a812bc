/**
 * Pure analysis behind the `system` scenario (bench/system.ts): reading the pipeline's consumer-group
 * counters out of `XINFO` replies, deciding whether a constant click rate was sustained from a backlog
 * series, the step plan, and CPU per click. No I/O here, so bench/system.test.ts can check it on tables.
 */
import { slope } from './stats.ts';

/** Consumer group the pipeline reads the `clicks:{p}` streams with (tracker/pipeline/streams.ts `GROUP`). */
export const PIPELINE_GROUP = 'pipeline';

/** Flat `[k1, v1, k2, v2, …]` reply of XINFO into a map (ioredis returns Redis maps as flat arrays). */
function pairs(flat: readonly unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(String(flat[i]), flat[i + 1]);
  return m;
}

const num = (v: unknown): number | null =>
  typeof v === 'number' ? v : typeof v === 'string' && v !== '' ? Number(v) : null;

/**
 * Entries of one stream the group has not finished with: not yet delivered (`lag`) plus delivered but not
 * acknowledged (`pending`). Redis 7 reports `lag` as nil when it cannot compute it (e.g. after an XDEL in the
 * unread range); then `entries-added − entries-read` is used, which is what Redis computes when it can.
 * @param groups the `XINFO GROUPS <stream>` reply.
 * @param entriesAdded `entries-added` of `XINFO STREAM <stream>` (only needed for the fallback).
 * @returns entries, or null when the group is missing or neither figure is known (a sample that cannot count).
 */
export function groupBacklog(
  groups: readonly unknown[],
  entriesAdded: number | null,
  group = PIPELINE_GROUP,
): number | null {
  for (const g of groups) {
    const m = pairs(g as unknown[]);
    if (String(m.get('name')) !== group) continue;
    const pending = num(m.get('pending')) ?? 0;
    const lag = num(m.get('lag'));
    if (lag !== null) return lag + pending;
    const read = num(m.get('entries-read'));
    if (read !== null && entriesAdded !== null) return Math.max(0, entriesAdded - read) + pending;
    return null;
  }
  return null;
}

/** `entries-added` (every entry ever added, trimming does not lower it) of an `XINFO STREAM` reply; null if absent. */
export function streamEntriesAdded(info: readonly unknown[]): number | null {
  return num(pairs(info).get('entries-added'));
}

/** One backlog sample of a step: seconds since the step started, clicks the pipeline has not acknowledged yet. */
export interface BacklogSample {
  t_s: number;
  backlog: number;
}

/** Thresholds of {@link judgeStep}; exported so the docs, the report and the tests quote the same numbers. */
export const SUSTAIN = {
  /** Achieved ≥ this share of the target rate (the open-loop generator kept up). */
  minAchieved: 0.97,
  /** End backlog allowed: this many seconds of the offered rate… */
  endSeconds: 2,
  /** …but never less than this many clicks (a batch in flight at a low rate). */
  endFloorClicks: 2_000,
  /** End backlog = mean of the samples in this many final seconds (one sample lands mid-batch). */
  endWindow_s: 3,
  /** Backlog growth over the last third allowed: this share of the offered rate, clicks/s… */
  slopeShare: 0.02,
  /** …or this many clicks over the whole last third, whichever is larger. */
  slopeFloorClicks: 2_000,
  /** Fewer samples than this in the last third cannot show a trend: not sustained. */
  minSamplesLastThird: 3,
} as const;

/** What {@link judgeStep} decided, with the figures it compared (clicks, clicks/s). */
export interface StepVerdict {
  sustained: boolean;
  /** Why not (empty when sustained). */
  reasons: string[];
  /** Mean backlog over the last {@link SUSTAIN.endWindow_s} seconds, clicks. */
  end_backlog: number;
  allowed_end_backlog: number;
  /** Least-squares slope of the backlog over the last third of the step, clicks/s. */
  slope_per_s: number;
  allowed_slope_per_s: number;
}

/**
 * Was a constant click rate sustained by the whole system? A step at target `rate` (clicks/s) lasting
 * `duration_s` is **sustained** when all of these hold:
 *
 * 1. the open-loop generator kept up: `achieved_rps ≥ 0.97 × rate` and `errors = 0` (every click answered 302);
 *    the caller measures achieved over the wall time until the last answer, so requests that queued in the
 *    generator and were only answered after the schedule ended lower it;
 * 2. the backlog is bounded at the end: the mean backlog over the last 3 s (clicks in `clicks:{p}` not yet
 *    acknowledged by group `pipeline`: XINFO GROUPS `lag` + `pending`, summed over partitions) is
 *    ≤ max(2 s × rate, 2,000 clicks);
 * 3. the backlog is not growing: its least-squares slope over the last third of the step (samples with
 *    `t_s ≥ 2/3 × duration_s`, at least 3 of them) is ≤ max(0.02 × rate, 2,000 clicks ÷ the last third's
 *    length in s), i.e. the pipeline falls behind by at most 2 % of the offered rate (or by a batch's worth).
 *
 * A backlog that is large but shrinking passes 3 and fails 2; one that is small but climbing fails 3. Both
 * mean the pipeline cannot keep this rate for long. Samples that could not be read are left out by the caller.
 * @param rate target rate, clicks/s.
 * @param achieved_rps clicks answered with a 302 per second of wall time (until the last answer).
 */
export function judgeStep(o: {
  rate: number;
  duration_s: number;
  achieved_rps: number;
  errors: number;
  samples: readonly BacklogSample[];
}): StepVerdict {
  const reasons: string[] = [];
  if (o.achieved_rps < SUSTAIN.minAchieved * o.rate)
    reasons.push(`generator reached ${Math.round(o.achieved_rps)}/s < ${SUSTAIN.minAchieved * 100} % of ${o.rate}/s`);
  if (o.errors > 0) reasons.push(`${o.errors} errors`);
  const endFrom = o.duration_s - SUSTAIN.endWindow_s;
  const endSamples = o.samples.filter((s) => s.t_s >= endFrom);
  const tail = endSamples.length ? endSamples : o.samples.slice(-1);
  const end = tail.length ? tail.reduce((a, s) => a + s.backlog, 0) / tail.length : Number.NaN;
  const allowedEnd = Math.max(SUSTAIN.endSeconds * o.rate, SUSTAIN.endFloorClicks);
  if (!Number.isFinite(end)) reasons.push('no backlog sample');
  else if (end > allowedEnd) reasons.push(`backlog at the end ${Math.round(end)} > ${Math.round(allowedEnd)} clicks`);
  const third = o.duration_s / 3;
  const last = o.samples.filter((s) => s.t_s >= o.duration_s - third).map((s) => [s.t_s, s.backlog] as const);
  const k = slope(last);
  const allowedSlope = Math.max(SUSTAIN.slopeShare * o.rate, SUSTAIN.slopeFloorClicks / Math.max(third, 1e-9));
  if (last.length < SUSTAIN.minSamplesLastThird) reasons.push(`${last.length} samples in the last third`);
  else if (k > allowedSlope)
    reasons.push(`backlog growing ${Math.round(k)} clicks/s > ${Math.round(allowedSlope)} over the last third`);
  return {
    sustained: reasons.length === 0,
    reasons,
    end_backlog: Number.isFinite(end) ? Math.round(end) : Number.NaN,
    allowed_end_backlog: Math.round(allowedEnd),
    slope_per_s: Math.round(k),
    allowed_slope_per_s: Math.round(allowedSlope),
  };
}

/** Target rates the scenario steps through, clicks/s, lowest first; it stops at the first one not sustained. */
export const SYSTEM_RATES: readonly number[] = [
  2_000, 4_000, 6_000, 8_000, 12_000, 16_000, 24_000, 32_000, 48_000, 64_000,
];

/**
 * The one bisection step between the highest sustained rate `good` (0 when none was) and the first failed
 * rate `bad`: their midpoint rounded to 500 clicks/s, or undefined when that is not strictly between them.
 */
export function bisectRate(good: number, bad: number): number | undefined {
  const mid = Math.round((good + bad) / 2 / 500) * 500;
  return mid > good && mid < bad ? mid : undefined;
}

/** CPU per click, µs: `cpu_s` CPU seconds (user + system) spent on `clicks` clicks; NaN when there were none. */
export function usPerClick(cpu_s: number, clicks: number): number {
  return clicks > 0 ? Math.round(((cpu_s * 1e6) / clicks) * 10) / 10 : Number.NaN;
}
