import { constants, createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { access, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger, Redis } from '../../infra/index.ts';
import { entryMayRepeat } from '../events.ts';

/** Records XADDed per round trip when replaying. */
const REPLAY_BATCH = 256;

/**
 * Local append-only spool for stream entries that could not be written to Redis.
 *
 * Layout (`dir` = `<DATA_DIR>/spool`): a process appends to `<instance>-<t>.<pid>.spool`, one record
 * per line (`JSON.stringify([streamKey, ...fields])`, so tabs/newlines inside fields are escaped).
 * Replaying first closes the active file (the next append opens a new one), then claims every
 * closed `.spool` file — its own, and those of processes that no longer run — by renaming it to
 * `<name>.<pid>.replay` (rename is atomic, so two processes never claim one file), XADDs its
 * records in order, recording the count done in `<file>.offset` after each acknowledged batch, and
 * deletes the file only once every record is acknowledged. A crash therefore loses nothing; it can
 * repeat at most one batch. Before each batch is sent, `<file>.sent` records how many records have ever
 * been handed to Redis; a record below that mark that is sent again (its batch failed or the process died
 * after the write: a stalled Redis runs the buffered XADDs once it resumes) gets the `r 1` marker, like a
 * group whose XADD timed out (see `entryMayRepeat` in tracker/events.ts), so the pipeline can drop the
 * copy it has already counted.
 */
export class Spool {
  private ws: WriteStream | undefined;
  private active = '';
  private written = 0;
  private seq = 0;
  private pending = 0;
  private idle: Array<() => void> = [];
  private replaying: Promise<number> | undefined;
  /** False after a failed write until the next successful one. */
  healthy = true;

  constructor(
    readonly dir: string,
    private readonly instance: string,
    private readonly log: Logger,
  ) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  /**
   * Appends one stream entry; `cb` runs once the write is handed to the OS (error when it failed).
   * Records are written in call order.
   */
  append(stream: string, fields: string[], cb: (err?: Error | null) => void): void {
    if (!this.ws) {
      this.active = path.join(this.dir, `${this.instance}-${Date.now()}-${this.seq++}.${process.pid}.spool`);
      this.ws = createWriteStream(this.active, { flags: 'a' });
      this.ws.on('error', (err) => {
        this.healthy = false;
        this.log.error({ err: err.message, file: this.active }, 'spool write failed');
      });
    }
    this.pending++;
    this.written++;
    this.ws.write(JSON.stringify([stream, ...fields]) + '\n', (err) => {
      if (err) this.healthy = false;
      else this.healthy = true;
      this.pending--;
      cb(err);
      if (this.pending === 0) for (const f of this.idle.splice(0)) f();
    });
  }

  /** Whether the spool directory is writable (readiness). */
  async writable(): Promise<boolean> {
    if (!this.healthy) return false;
    try {
      await access(this.dir, constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  /** Resolves when every append so far has completed. */
  drain(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  async closeActive(): Promise<void> {
    const ws = this.ws;
    if (!ws) return;
    this.ws = undefined;
    this.written = 0;
    await new Promise<void>((resolve) => {
      ws.end(() => resolve());
      ws.once('error', () => resolve());
    });
  }

  /** Whether this process has appended to its active file since the last replay. */
  get hasUnreplayed(): boolean {
    return this.written > 0;
  }

  /**
   * Moves every spooled record into Redis (see the class comment). Concurrent calls share one run.
   * @returns the number of records replayed; throws on a Redis failure (files are kept for later).
   */
  replay(redis: Redis): Promise<number> {
    this.replaying ??= this.replayAll(redis).finally(() => {
      this.replaying = undefined;
    });
    return this.replaying;
  }

  private async replayAll(redis: Redis): Promise<number> {
    await this.drain();
    await this.closeActive();
    let total = 0;
    const names = (await readdir(this.dir)).sort();
    for (const name of names) {
      const m = /^(.*)\.(\d+)\.(spool|replay)$/.exec(name);
      if (!m) continue;
      const pid = Number(m[2]);
      const mine = pid === process.pid;
      if (!mine && alive(pid)) continue;
      if (mine && m[3] === 'spool' && path.join(this.dir, name) === this.active && this.ws) continue;
      let file = path.join(this.dir, name);
      if (!mine || m[3] === 'spool') {
        const claimed = path.join(this.dir, `${m[1]}.${process.pid}.replay`);
        try {
          await rename(file, claimed);
          await rename(`${file}.offset`, `${claimed}.offset`).catch(() => {});
          await rename(`${file}.sent`, `${claimed}.sent`).catch(() => {});
        } catch {
          continue; // another process claimed it first
        }
        file = claimed;
      }
      total += await this.replayFile(redis, file);
    }
    if (total > 0) this.log.info({ records: total }, 'spool replayed into Redis');
    return total;
  }

  private async replayFile(redis: Redis, file: string): Promise<number> {
    const offsetFile = `${file}.offset`;
    const sentFile = `${file}.sent`;
    const skip = Number(await readFile(offsetFile, 'utf8').catch(() => '0')) || 0;
    let sent = Math.max(skip, Number(await readFile(sentFile, 'utf8').catch(() => '0')) || 0);
    let index = 0;
    let done = skip;
    let batch: string[][] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      // Records [done, sent) may already be in Redis from an earlier attempt: mark them before resending.
      for (let i = 0; i < batch.length && done + i < sent; i++) {
        const rec = batch[i]!;
        if (!entryMayRepeat(rec.slice(1))) rec.push('r', '1');
      }
      if (done + batch.length > sent) {
        sent = done + batch.length;
        await writeFile(sentFile, String(sent));
      }
      // One pipeline per stream: on a Redis Cluster the partitions live on different nodes, and ioredis
      // refuses a pipeline whose keys span nodes. Order within a stream is kept; across streams there is none.
      const byStream = new Map<string, string[][]>();
      for (const [stream, ...fields] of batch) {
        const list = byStream.get(stream!) ?? [];
        byStream.set(stream!, list);
        list.push(fields);
      }
      const results = await Promise.all(
        [...byStream].map(([stream, entries]) => {
          const p = redis.pipeline();
          for (const fields of entries) p.xadd(stream, '*', ...fields);
          return p.exec();
        }),
      );
      for (const res of results) for (const r of res ?? []) if (r[0]) throw r[0];
      done += batch.length;
      batch = [];
      await writeFile(offsetFile, String(done));
    };
    const rl = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
    for await (const line of rl) {
      if (index++ < skip || line === '') continue;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch {
        rec = undefined;
      }
      if (!Array.isArray(rec) || rec.length < 3 || !rec.every((x) => typeof x === 'string')) {
        // A torn last line from a crash mid-write: its requests were never answered.
        this.log.warn({ file }, 'skipping malformed spool record');
        continue;
      }
      batch.push(rec as string[]);
      if (batch.length >= REPLAY_BATCH) await flush();
    }
    await flush();
    await rm(file, { force: true });
    await rm(offsetFile, { force: true });
    await rm(sentFile, { force: true });
    return done - skip;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
