/**
 * Child processes of the bench (servers under test) and what /proc says about them: CPU time and RSS.
 * Linux only (reads /proc); on other systems the figures come back as 0.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeEntry } from '../infra/index.ts';

/** Repository root (the parent of bench/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A server process the bench started. */
export interface ServerProc {
  name: string;
  child: ChildProcess;
  pid: number;
  port: number;
  /** Last lines of its stderr, for error messages. */
  stderrTail(): string;
  stop(): Promise<void>;
}

/**
 * Forks `<entry>` with `env` — compiled from dist/ when `npm run build` is current (see `nodeEntry`; the
 * bench builds first, so every server runs as `npm start` runs the tracker), else through tsx — and
 * waits for its IPC `{ type: 'ready', port }`.
 * @param opts.nodeArgs extra node flags (e.g. `--cpu-prof`).
 * @throws Error when the child exits or stays silent for `timeoutMs`.
 */
export async function startServer(opts: {
  name: string;
  entry: string;
  env: Record<string, string>;
  nodeArgs?: string[];
  timeoutMs?: number;
}): Promise<ServerProc> {
  const entry = nodeEntry(opts.entry);
  const child = fork(entry.script, [], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    execArgv: [...entry.execArgv, ...(opts.nodeArgs ?? [])],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let tail = '';
  child.stderr?.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-4000);
  });
  let exited = child.exitCode !== null;
  const exitedP = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exitedP.then(() => {
    exited = true;
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${opts.name}: not ready within ${opts.timeoutMs ?? 30_000} ms\n${tail}`));
    }, opts.timeoutMs ?? 30_000);
    child.on('message', (m: unknown) => {
      const msg = m as { type?: string; port?: number };
      if (msg?.type === 'ready' && typeof msg.port === 'number') {
        clearTimeout(timer);
        resolve(msg.port);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${opts.name}: exited before ready (code ${code}, signal ${signal})\n${tail}`));
    });
  });
  return {
    name: opts.name,
    child,
    pid: child.pid ?? 0,
    port,
    stderrTail: () => tail,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exitedP;
      clearTimeout(t);
    },
  };
}

const CLK_TCK = 100;

/** CPU time (user + system) of a process so far, seconds; 0 when unreadable. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Resident set size now (`VmRSS`) and at peak (`VmHWM`) of a process, MiB; 0 when unreadable. */
export function memoryMb(pid: number): { rss_mb: number; peak_mb: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { rss_mb: kb('VmRSS') / 1024, peak_mb: kb('VmHWM') / 1024 };
  } catch {
    return { rss_mb: 0, peak_mb: 0 };
  }
}

/** Measures the CPU a set of processes uses over a window: call `stop()` for cores used (1.0 = one core busy). */
export function cpuMeter(pids: number[]): { stop(): number } {
  const t0 = performance.now();
  const c0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
  return {
    stop() {
      const c1 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
      const wall = (performance.now() - t0) / 1000;
      return wall > 0 ? (c1 - c0) / wall : 0;
    },
  };
}

/** Same as {@link cpuMeter} for this process (all its threads, so autocannon's workers are included). */
export function selfCpuMeter(): { stop(): number } {
  const t0 = performance.now();
  const u0 = process.cpuUsage();
  return {
    stop() {
      const u = process.cpuUsage(u0);
      const wall = (performance.now() - t0) / 1000;
      return wall > 0 ? (u.user + u.system) / 1e6 / wall : 0;
    },
  };
}
