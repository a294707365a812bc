/**
 * The shape of one bench run's results (what bench/run.ts gathers and bench/report.ts renders), and the
 * description of the machine it ran on.
 */
import os from 'node:os';
import type { LoadResult } from './load.ts';
import type { SystemResult } from './system.ts';

/** One load scenario's outcome. `load` is absent when the scenario could not run (`skipped` says why). */
export interface ScenarioResult {
  id: string;
  label: string;
  load?: LoadResult;
  skipped?: string;
}

/** Pipeline figures: throughput into ClickHouse, lag, click-to-queryable latency (ms). */
export interface PipelineResult {
  rows_per_s: number;
  /** Rate of clicks offered while it was measured, per second. */
  offered_clicks_per_s: number;
  /** Largest number of clicks acknowledged by the tracker but not yet counted in ClickHouse. */
  max_lag_events: number;
  /** Largest `XINFO GROUPS` lag (entries) seen on the click streams. */
  max_stream_lag_entries: number;
  latency_ms: { p50: number; p95: number; p99: number; max: number };
  latency_rate_per_s: number;
  latency_samples: number;
  method: string;
}

/** Tracker memory over the constant-rate run. */
export interface MemoryResult {
  /** Right after start-up, before any load. */
  idle_rss_mb: number;
  /** VmHWM: the highest RSS over the process's life (covers the max-throughput runs too). */
  peak_rss_mb: number;
  start_rss_mb: number;
  end_rss_mb: number;
  /** Slope of a least-squares fit over the second half of the run, MiB per minute. */
  growth_mb_per_min: number;
  duration_s: number;
  /** Growth ≤ 1 MB/min over the second half; null when the soak was too short (< 60 s) to judge. */
  flat: boolean | null;
  samples: Array<[number, number]>;
}

/** Everything one run produced. */
export interface BenchResults {
  date: string;
  quick: boolean;
  machine: MachineInfo;
  scenarios: ScenarioResult[];
  pipeline?: PipelineResult;
  /** The `system` scenario: the npm start stack with the pipeline consuming (bench/system.ts). */
  system?: SystemResult;
  memory?: MemoryResult;
  /** Click throughput with 1 and 2 tracker processes (SO_REUSEPORT). */
  scale_out?: {
    processes: number;
    /** The load generator (absent in results written before it was recorded). */
    tool?: LoadResult['tool'];
    rps: number;
    server_cpu_cores: number;
    loadgen_cpu_cores: number;
  }[];
  notes: string[];
  /** Hand-written findings (Markdown, from bench/findings.md), appended to latest.md as they are. */
  findings?: string;
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  mem_gb: number;
  os: string;
  node: string;
  load_avg_at_start: number[];
}

/** Describes the machine the bench runs on. */
export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    mem_gb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    load_avg_at_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
