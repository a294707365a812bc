import { randomUUID } from 'node:crypto';
import { open, readFile, rm, stat, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** How often an owner refreshes its lock's mtime, ms. */
export const LOCK_HEARTBEAT_MS = 5_000;
/** A lock of another host whose mtime is older than this is stale (its owner is gone), ms. */
export const LOCK_STALE_MS = 30_000;

/** Contents of `<dir>/<instance>.lock`. */
interface LockBody {
  instance: string;
  pid: number;
  hostname: string;
  started_ms: number;
}

/** A fresh instance id: 32 hex digits (a UUID without dashes), never the PID (every container is PID 1). */
export const newInstanceId = (): string => randomUUID().replaceAll('-', '');

/**
 * The exclusive lock of one spool instance: `<dir>/<id>.lock`, created with O_EXCL (`wx`) and holding the instance
 * id, pid, host name and start time; its mtime is refreshed every {@link LOCK_HEARTBEAT_MS} while held.
 */
export class SpoolLock {
  private timer: NodeJS.Timeout | undefined;
  constructor(
    readonly dir: string,
    readonly id: string,
  ) {}

  get file(): string {
    return lockFile(this.dir, this.id);
  }

  /** Creates the lock file. @throws the `EEXIST` error when an instance with this id already holds it. */
  async acquire(): Promise<void> {
    const body: LockBody = { instance: this.id, pid: process.pid, hostname: os.hostname(), started_ms: Date.now() };
    const fh = await open(this.file, 'wx');
    try {
      await fh.writeFile(JSON.stringify(body));
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.timer = setInterval(() => {
      const now = new Date();
      utimes(this.file, now, now).catch(() => {});
    }, LOCK_HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Stops the heartbeat and removes the lock (its files become claimable at once). */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await rm(this.file, { force: true });
  }
}

export const lockFile = (dir: string, id: string): string => path.join(dir, `${id}.lock`);

/**
 * Whether the owner `id` of spool files in `dir` is gone, so a replayer may claim them: no lock file (released, or
 * never taken); or its lock names this host and a pid that no longer runs; or it names another host (another
 * container, where pids mean nothing here) and has not been refreshed for {@link LOCK_STALE_MS}. An unreadable
 * lock counts as live (never claim on doubt), unless its heartbeat is stale.
 */
export async function ownerGone(dir: string, id: string, nowMs = Date.now()): Promise<boolean> {
  const file = lockFile(dir, id);
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(file)).mtimeMs;
  } catch {
    return true;
  }
  const heartbeatStale = nowMs - mtimeMs > LOCK_STALE_MS;
  let body: LockBody;
  try {
    body = JSON.parse(await readFile(file, 'utf8')) as LockBody;
  } catch {
    return heartbeatStale;
  }
  if (body.hostname === os.hostname()) return !alive(body.pid);
  return heartbeatStale;
}

/** Whether a process with this pid runs on this host. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
