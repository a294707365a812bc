import { Piscina } from 'piscina';
import type { ScorableClick } from './rules.ts';
import { type PackedVerdicts, packClicks, type ScoredClick, unpackVerdicts } from './worker.ts';

/** A pool of worker threads scoring click batches. */
export interface FraudPool {
  /** Scores one batch in a worker (one task per batch). Output is in input order; clicks with the same reasons may share one `fraud_reasons` array. */
  scoreBatch(clicks: ScorableClick[]): Promise<ScoredClick[]>;
  close(): Promise<void>;
}

/**
 * Starts the scoring pool. Workers inherit the parent's `execArgv`, so under `node --import tsx`
 * they load the TypeScript worker directly; compiled code (dist/) loads `worker.js`.
 * @param threads worker threads (config FRAUD_WORKERS).
 */
export function createFraudPool(threads: number): FraudPool {
  const pool = new Piscina({
    filename: new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
    execArgv: process.execArgv,
  });
  return {
    async scoreBatch(clicks) {
      if (clicks.length === 0) return [];
      // Packed, so the batch crosses the thread boundary as a few arrays instead of thousands of objects.
      const packed = packClicks(clicks);
      return unpackVerdicts(packed, (await pool.run(packed, { name: 'scorePacked' })) as PackedVerdicts);
    },
    async close() {
      await pool.destroy();
    },
  };
}
