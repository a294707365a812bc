/**
 * The fraud engine as the pipeline uses it: partition p's state lives in worker thread `p % threads` (a
 * single-thread piscina pool each, so the state stays in one worker), one task per batch, records and verdicts
 * packed (./engine-worker.ts). See ./engine.ts for the scoring and learning semantics.
 */
import { Piscina } from 'piscina';
import {
  type EngineClick,
  type EngineLabel,
  type EngineRecord,
  type EngineVerdict,
  FraudStateMismatch,
  type PartitionOptions,
} from './engine-types.ts';
import { type PackedRecords, type ProcessResult, packRecords } from './engine-worker.ts';
import { reasonsOf } from './scoring.ts';
import { TRAFFIC_KINDS } from './traffic.ts';

export type { EngineClick, EngineLabel, EngineRecord, EngineVerdict };
export { FraudStateMismatch };

/** A partition's state at a stream position. */
export interface EngineSnapshot {
  /** Stream position the state is at (after the last processed batch). */
  at: string;
  bytes: Uint8Array;
}

export interface FraudEngine {
  /**
   * Runs a partition's records through its state in stream order; `at.from` must equal the state's position (else
   * FraudStateMismatch, also when the worker lost the state), afterwards the position is `at.to`. Returns one
   * verdict per click record, in order (replay: true → returns [] and skips ua parsing where possible).
   * A partition with no state in its worker starts fresh when `at.from` is '0-0'.
   */
  process(
    partition: number,
    records: EngineRecord[],
    at: { from: string; to: string },
    opts?: { replay?: boolean },
  ): Promise<EngineVerdict[]>;
  /** @throws FraudStateMismatch (expected '', actual '') when the worker holds no state for the partition. */
  snapshot(partition: number): Promise<EngineSnapshot>;
  /** null = fresh empty state at position '0-0'. @throws SnapshotFormatError (from the worker) on bad bytes. */
  restore(partition: number, snap: EngineSnapshot | null): Promise<void>;
  close(): Promise<void>;
}

export interface EngineOptions {
  /** Worker threads (each a single-thread pool). */
  threads: number;
  /** Keys per state table per partition (default 2^17). */
  maxKeys?: number;
  /** Pending negative labels per partition (default 50,000). */
  labelQueueMax?: number;
  /** Event time after which an unconverted click is learned as a negative, ms (default 600,000). */
  labelDelayMs?: number;
}

/**
 * The parent's `execArgv` that a worker thread accepts: module loaders (`--import tsx`, `--require`, `--loader`)
 * and similar. V8 heap flags such as `--max-semi-space-size` are per process and make `new Worker` throw
 * ERR_WORKER_INVALID_EXEC_ARGV, so they are left out.
 */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (/^--(import|require|loader|experimental-loader)$/.test(a) && i + 1 < args.length) out.push(a, args[++i]!);
    else if (/^--(import|require|loader|experimental-loader|conditions|enable-source-maps|no-warnings)/.test(a))
      out.push(a);
  }
  return out;
}

/**
 * Starts the engine's worker threads. Workers inherit the parent's `execArgv`, so under `node --import tsx` they load
 * the TypeScript worker directly; compiled code (dist/) loads `engine-worker.js`.
 * @throws RangeError when threads < 1.
 */
export function createFraudEngine(opts: EngineOptions): FraudEngine {
  if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new RangeError('threads must be ≥ 1');
  const filename = new URL(
    import.meta.url.endsWith('.ts') ? './engine-worker.ts' : './engine-worker.js',
    import.meta.url,
  ).href;
  const pools = Array.from(
    { length: opts.threads },
    () => new Piscina({ filename, minThreads: 1, maxThreads: 1, execArgv: workerExecArgv() }),
  );
  const options: PartitionOptions = {};
  if (opts.maxKeys !== undefined) options.maxKeys = opts.maxKeys;
  if (opts.labelQueueMax !== undefined) options.labelQueueMax = opts.labelQueueMax;
  if (opts.labelDelayMs !== undefined) options.labelDelayMs = opts.labelDelayMs;
  const poolOf = (partition: number) => {
    if (!Number.isInteger(partition) || partition < 0) throw new RangeError(`bad partition ${partition}`);
    return pools[partition % pools.length]!;
  };
  return {
    async process(partition, records, at, o) {
      const replay = o?.replay === true;
      const packed: PackedRecords = packRecords(records);
      const res = (await poolOf(partition).run(
        { partition, from: at.from, to: at.to, replay, options, packed },
        { name: 'processPacked' },
      )) as ProcessResult;
      if ('mismatch' in res) throw new FraudStateMismatch(partition, res.mismatch.expected, res.mismatch.actual);
      const v = res.ok;
      const n = v.fraud_score.length;
      const out = new Array<EngineVerdict>(n);
      for (let i = 0; i < n; i++) {
        const d = v.devices[v.ua[i]!]!;
        out[i] = {
          fraud_score: v.fraud_score[i]!,
          fraud_reasons: reasonsOf(v.reasons[i]!),
          device: d[0],
          os: d[1],
          browser: d[2],
          bot_reason: TRAFFIC_KINDS[v.bot_reason[i]!]!,
          model_version: v.model_version[i]!,
          features: v.features[i]!,
        };
      }
      return out;
    },
    async snapshot(partition) {
      const s = (await poolOf(partition).run({ partition }, { name: 'snapshot' })) as EngineSnapshot | null;
      if (s === null) throw new FraudStateMismatch(partition, '', '');
      return s;
    },
    async restore(partition, snap) {
      await poolOf(partition).run({ partition, bytes: snap ? snap.bytes : null, options }, { name: 'restore' });
    },
    async close() {
      await Promise.all(pools.map((p) => p.destroy()));
    },
  };
}
