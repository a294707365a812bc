import { Piscina } from 'piscina';
import type { ScorableClick } from './rules.ts';
import type { ScoredClick } from './worker.ts';

/** A pool of worker threads scoring click batches. */
export interface FraudPool {
  /** Scores one batch in a worker (one task per batch). Output is in input order. */
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
      return (await pool.run(clicks)) as ScoredClick[];
    },
    async close() {
      await pool.destroy();
    },
  };
}
