/**
 * Retry timing (Svix-like): exponential steps from the configured schedule, then the last step
 * repeated until the retry window closes; each delay jittered by ±10% so failing receivers do not
 * get synchronized bursts.
 */

/**
 * Delay before attempt `attempts + 1`, in ms, or null when the next attempt would fall outside
 * the retry window (the delivery is then marked failed).
 * @param attempts attempts made so far (>= 1)
 * @param scheduleS delays in seconds between attempts (e.g. 30, 120, 600, 3600)
 * @param random in [0, 1); injectable for tests (0.5 = no jitter)
 */
export function nextDelayMs(opts: {
  attempts: number;
  scheduleS: readonly number[];
  windowStartedMs: number;
  nowMs: number;
  windowS: number;
  random: () => number;
  /** A receiver's `Retry-After`, ms: used instead of the schedule's step. */
  retryAfterMs?: number;
}): number | null {
  const step = opts.scheduleS[Math.min(opts.attempts - 1, opts.scheduleS.length - 1)]! * 1000;
  const jitter = 1 + (opts.random() * 2 - 1) * 0.1;
  const delay = opts.retryAfterMs !== undefined ? opts.retryAfterMs : Math.round(step * jitter);
  if (opts.nowMs + delay > opts.windowStartedMs + opts.windowS * 1000) return null;
  return delay;
}

/**
 * Parses `Retry-After` (delta-seconds or an HTTP date) into ms from now, clamped to [1 s, 24 h];
 * undefined when absent or unparseable.
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  let ms: number;
  if (/^\s*\d+\s*$/.test(v)) ms = Number(v) * 1000;
  else {
    const t = Date.parse(v);
    if (Number.isNaN(t)) return undefined;
    ms = t - nowMs;
  }
  return Math.min(Math.max(ms, 1000), 86_400_000);
}
