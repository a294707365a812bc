/** The tracker's memory over the constant-rate run (the soak): RSS samples and what they say about growth. */
import { memoryMb } from './procs.ts';
import type { MemoryResult } from './results.ts';
import { slope } from './stats.ts';

/**
 * Samples the RSS of process `pid` once a second (calling `everySecond` after each sample) until `stop()`.
 * `result` then reads the process's current and peak RSS and fits the growth over the second half of the
 * `duration_s`-second run.
 */
export function sampleMemory(pid: number, everySecond: () => void) {
  const samples: Array<[number, number]> = [];
  const t0 = performance.now();
  const timer = setInterval(() => {
    samples.push([(performance.now() - t0) / 1000, memoryMb(pid).rss_mb]);
    everySecond();
  }, 1000);
  return {
    stop(): void {
      clearInterval(timer);
    },
    result(idleRss: number, duration_s: number): MemoryResult {
      const secondHalf = samples.filter(([x]) => x >= duration_s / 2);
      const growth = slope(secondHalf) * 60; // MiB per minute from MiB per second
      const mem = memoryMb(pid);
      return {
        idle_rss_mb: idleRss,
        peak_rss_mb: mem.peak_mb,
        start_rss_mb: samples[0]?.[1] ?? mem.rss_mb,
        end_rss_mb: mem.rss_mb,
        growth_mb_per_min: growth,
        duration_s,
        flat: duration_s >= 60 ? growth <= 1 : null,
        samples: samples.map(([x, y]) => [Math.round(x), Math.round(y * 10) / 10]),
      };
    },
  };
}

/** The memory of process `pid` when no soak ran: its current and peak RSS, no growth figure. */
export function memoryAtRest(pid: number, idleRss: number): MemoryResult {
  const mem = memoryMb(pid);
  return {
    idle_rss_mb: idleRss,
    peak_rss_mb: mem.peak_mb,
    start_rss_mb: mem.rss_mb,
    end_rss_mb: mem.rss_mb,
    growth_mb_per_min: 0,
    duration_s: 0,
    flat: null,
    samples: [],
  };
}
