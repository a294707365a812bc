/**
 * Server processes (redis-server, postgres) that `npm start` runs for itself. They run in process groups of their
 * own, so a terminal's Ctrl-C (SIGINT to the foreground process group) reaches only the node processes, which
 * drain into Redis and Postgres before stopping them. The price: a parent killed with SIGKILL leaves them running,
 * so the next start stops such a leftover first (its pid file names it) instead of running two servers on one data
 * directory.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import type { Logger } from './logger.ts';

/** Whether process `pid` runs (Linux /proc): a zombie, exited but not reaped, holds nothing and does not count. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Resolves once `pid` is gone, or with false after `timeoutMs`. */
async function gone(pid: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/**
 * Stops the server a killed earlier run left on its data directory: the pid on the first line of `pidFile`, when that
 * process is alive, its command line names `binary` and its working directory is `dir`. Sends `signal` (the server's clean stop), then
 * SIGKILL after 10 s. A missing or stale pid file is nothing to do.
 */
export async function stopLeftover(
  o: { pidFile: string; binary: string; dir: string; signal: NodeJS.Signals },
  log?: Logger,
): Promise<void> {
  let pid: number;
  let cmdline: string;
  let cwd: string;
  try {
    pid = Number.parseInt(readFileSync(o.pidFile, 'utf8').split('\n')[0] ?? '', 10);
    if (!Number.isInteger(pid) || pid <= 1) return;
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    cwd = readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return;
  }
  // Both servers chdir into their data directory (redis-server rewrites its command line, so that cannot name it).
  if (!cmdline.includes(o.binary) || cwd !== realpathSync(o.dir)) return;
  log?.warn({ pid, binary: o.binary, dir: o.dir }, 'stopping a server an earlier run left behind');
  process.kill(pid, o.signal);
  if (await gone(pid, 10_000)) return;
  process.kill(pid, 'SIGKILL');
  await gone(pid, 5_000);
}

/**
 * Stops `child` with `signal` (its clean stop), then SIGKILL after `graceMs`; resolves once it has exited, at once
 * when it already has (a server that got the signal from elsewhere must not hang the stop).
 */
export function stopChildProcess(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}
