/**
 * What the parts of one running pipeline share (./runner.ts creates it; the batch runner, the partition
 * loops, recovery and maintenance read it): the dependencies, this consumer's name, the counters, and
 * whether the pipeline is closing.
 */
import type { Config, Logger, Redis, RedisKeys } from '../../infra/index.ts';
import type { FraudEngine } from '../fraud/engine-pool.ts';
import type { StreamStats } from './stats.ts';
import type { StepTimings } from './step-runner.ts';
import type { PipelineDeps } from './steps/context.ts';

/** The shared state of one running pipeline. */
export interface Runtime {
  deps: PipelineDeps;
  config: Config;
  log: Logger;
  /** The normal connection; blocking reads use duplicates of it (`connections`). */
  redis: Redis;
  keys: RedisKeys;
  engine: FraudEngine;
  /** Consumer name in the groups. */
  consumer: string;
  /** Click partition lease time, ms. */
  leaseMs: number;
  /** How often pending entries are checked for takeover and streams trimmed, ms. */
  maintenanceMs: number;
  stats: StreamStats[];
  timings: StepTimings;
  /** Duplicated connections of the loops, disconnected on close. */
  connections: Redis[];
  /** Set by `close()`: every loop stops at its next turn. */
  closing: boolean;
  /** The counters of `stream`. */
  s(stream: string): StreamStats;
  /** Sleeps up to `ms`, waking early when the pipeline closes. */
  nap(ms: number): Promise<void>;
}

/** How a batch ended: acknowledged (or parked), left pending, or its partition must be recovered first. */
export type BatchResult = 'done' | 'abandoned' | 'recover';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
