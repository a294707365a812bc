import { constants, createReadStream, createWriteStream, fsync, type WriteStream } from 'node:fs';
import { access, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger, Redis } from '../../infra/index.ts';
import { entryMayRepeat } from '../events.ts';
import { alive, newInstanceId, ownerGone, SpoolLock } from './spool-lock.ts';

/** Records XADDed per round trip when replaying. */
const REPLAY_BATCH = 256;

/** Shortest interval between two "spool full" log lines, ms (a flood past the cap must not flood the log too). */
const FULL_LOG_INTERVAL_MS = 10_000;

/** Spool files (not their `.offset`/`.sent` side files): what the cap counts. */
const SPOOL_FILE = /^([^.]+)(?:\.([0-9a-f]{32}))?\.(\d+)\.(spool|replay)$/;

/** What {@link Spool.append} answers when the spool is at its cap: nothing was written. */
export class SpoolFullError extends Error {
  override name = 'SpoolFullError';
}

/** Optional bounds and counters of a {@link Spool}. */
export interface SpoolOptions {
  /** Cap of the spool directory's files, bytes (SPOOL_MAX_BYTES); default unbounded. */
  maxBytes?: number;
  /** Called with the number of events of every group refused at the cap (e.g. a prom-client counter's `inc`). */
  onDropped?: (events: number) => void;
  /**
   * SPOOL_FSYNC_MS: appends are fsynced in groups every this long, ms (their callbacks do not wait); 0 = each
   * append's callback runs only after an fsync that covers it (appends of one turn share it). Default 100.
   */
  fsyncMs?: number;
  /** Called with the number of events of every replayed batch of groups once Redis acknowledged it. */
  onReplayed?: (events: number) => void;
}

/**
 * Local append-only spool for stream entries that could not be written to Redis.
 *
 * Layout (`dir` = `<DATA_DIR>/spool`): each Spool object has a random instance id ({@link id}, never the PID:
 * scaled containers are all PID 1) and holds `<id>.lock` (O_EXCL, heartbeat: ./spool-lock.ts) from {@link init}
 * to {@link close}. It appends to `<instance>-<t>-<seq>.<id>.<pid>.spool`, one record
 * per line (`JSON.stringify([streamKey, ...fields])`, so tabs/newlines inside fields are escaped), so two spools
 * never append to one file, even with one PID on one directory.
 * Replaying first closes the active file (the next append opens a new one), then claims every
 * closed `.spool` file — its own, and those whose owner's lock is gone or stale (`ownerGone`) — by renaming it to
 * `<base>.<id>.<pid>.replay` (rename is atomic, so two replayers never claim one file; the file then belongs to
 * the claimer's lock), XADDs its
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
  /** Bytes of the spool files other than the active one, as of the last {@link measure} (plus closed actives). */
  private closedBytes = 0;
  /** Bytes appended to the active file. */
  private activeBytes = 0;
  /** {@link bytes} when an append was last refused at the cap: until the spool shrinks below it, it is full. */
  private refusedAt = Number.POSITIVE_INFINITY;
  private lastFullLogMs = 0;
  private droppedSinceLog = 0;
  /** Events refused at the cap since start. */
  dropped = 0;
  readonly maxBytes: number;
  /** False after a failed write until the next successful one. */
  healthy = true;
  /** This spool's instance id (32 hex digits): the owner named in its file names and its lock. */
  readonly id = newInstanceId();
  private readonly lock: SpoolLock;
  private readonly fsyncMs: number;
  /** Appended since the last fsync. */
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  /** With fsyncMs 0: callbacks waiting for the next fsync. */
  private syncWaiters: Array<() => void> = [];
  /** fsyncs done (observability and tests). */
  syncs = 0;

  constructor(
    readonly dir: string,
    private readonly instance: string,
    private readonly log: Logger,
    private readonly opts: SpoolOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
    this.lock = new SpoolLock(dir, this.id);
    this.fsyncMs = opts.fsyncMs ?? 100;
  }

  /** fsyncs the active file if anything was appended since the last one; `done` runs after it (or at once). */
  private sync(done?: () => void): void {
    // The fd of an open WriteStream (missing from the typings).
    const fd = (this.ws as unknown as { fd?: number | null } | undefined)?.fd;
    if (!this.dirty || typeof fd !== 'number') {
      done?.();
      return;
    }
    this.dirty = false;
    fsync(fd, (err) => {
      if (err) this.log.warn({ err: err.message, file: this.active }, 'spool fsync failed');
      else this.syncs++;
      done?.();
    });
  }

  private readonly syncNow = () => {
    const waiters = this.syncWaiters.splice(0);
    this.sync(() => {
      for (const f of waiters) f();
    });
  };

  /** Creates the directory and takes this instance's lock. @throws when the directory is not writable. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await this.lock.acquire();
    await this.measure();
  }

  /** Completes the appends, closes the active file and releases the lock (another replayer may then claim it). */
  async close(): Promise<void> {
    await this.drain();
    await this.closeActive();
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.syncTimer = undefined;
    await this.lock.release();
  }

  /**
   * Bytes the spool holds: every spool file of the directory (other processes' too, as of the last
   * {@link measure}) and what this process appended since. Compared with `maxBytes` before every append.
   */
  get bytes(): number {
    return this.closedBytes + this.activeBytes;
  }

  /**
   * Re-reads the size of every spool file of the directory except this process's active one (whose size this
   * process counts itself), so files of other processes and removals are seen. Errors leave the count as it was.
   * @returns {@link bytes}.
   */
  async measure(): Promise<number> {
    try {
      const active = this.ws ? this.active : '';
      let total = 0;
      for (const name of await readdir(this.dir)) {
        if (!SPOOL_FILE.test(name)) continue;
        const file = path.join(this.dir, name);
        if (file === active) continue;
        total += await stat(file).then(
          (st) => st.size,
          () => 0, // replayed and removed meanwhile
        );
      }
      this.closedBytes = total;
      if (this.bytes < this.refusedAt) this.refusedAt = Number.POSITIVE_INFINITY;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'spool size unknown');
    }
    return this.bytes;
  }

  /**
   * Appends one stream entry; `cb` runs once the write is handed to the OS (error when it failed).
   * Records are written in call order. At the cap (`maxBytes`) nothing is written: `cb` gets a
   * {@link SpoolFullError} (on a later tick), the `events` of the group are counted in `dropped` and
   * `onDropped`, and a warning is logged at most every 10 s.
   */
  append(stream: string, fields: string[], cb: (err?: Error | null) => void, events = 1): void {
    const line = JSON.stringify([stream, ...fields]) + '\n';
    const size = Buffer.byteLength(line);
    if (this.bytes + size > this.maxBytes) {
      this.refuse(events);
      process.nextTick(cb, new SpoolFullError(`spool at its cap of ${this.maxBytes} bytes`));
      return;
    }
    this.activeBytes += size;
    if (!this.ws) {
      this.active = path.join(this.dir, `${this.instance}-${Date.now()}-${this.seq++}.${this.id}.${process.pid}.spool`);
      this.ws = createWriteStream(this.active, { flags: 'a' });
      this.ws.on('error', (err) => {
        this.healthy = false;
        this.log.error({ err: err.message, file: this.active }, 'spool write failed');
      });
    }
    this.pending++;
    this.written++;
    if (this.fsyncMs > 0 && !this.syncTimer) {
      this.syncTimer = setInterval(() => this.sync(), this.fsyncMs);
      this.syncTimer.unref();
    }
    const done = (err?: Error | null) => {
      this.pending--;
      cb(err);
      if (this.pending === 0) for (const f of this.idle.splice(0)) f();
    };
    this.ws.write(line, (err) => {
      this.healthy = !err;
      this.dirty = true;
      if (err || this.fsyncMs > 0) done(err);
      else {
        // One fsync for every append completed in this turn: the callbacks (the 302s) wait for it.
        if (this.syncWaiters.length === 0) setImmediate(this.syncNow);
        this.syncWaiters.push(() => done());
      }
    });
  }

  private refuse(events: number): void {
    this.refusedAt = this.bytes;
    this.dropped += events;
    this.droppedSinceLog += events;
    this.opts.onDropped?.(events);
    const now = Date.now();
    if (now - this.lastFullLogMs >= FULL_LOG_INTERVAL_MS) {
      this.log.error(
        { events: this.droppedSinceLog, bytes: this.bytes, max_bytes: this.maxBytes, dir: this.dir },
        'events lost: Redis unavailable and the spool is at its cap (SPOOL_MAX_BYTES)',
      );
      this.lastFullLogMs = now;
      this.droppedSinceLog = 0;
    }
  }

  /** Whether the spool directory is writable and has room: no append was refused at the cap since it last shrank (readiness). */
  async writable(): Promise<boolean> {
    if (!this.healthy || this.bytes >= Math.min(this.maxBytes, this.refusedAt)) return false;
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
    await new Promise<void>((r) => this.sync(r));
    this.ws = undefined;
    this.written = 0;
    // The file is now a closed one, counted with the others until the next measure.
    this.closedBytes += this.activeBytes;
    this.activeBytes = 0;
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
    this.replaying ??= this.replayAll(redis).finally(async () => {
      this.replaying = undefined;
      await this.measure();
    });
    return this.replaying;
  }

  private async replayAll(redis: Redis): Promise<number> {
    await this.drain();
    await this.closeActive();
    let total = 0;
    const names = (await readdir(this.dir)).sort();
    for (const name of names) {
      const m = SPOOL_FILE.exec(name);
      if (!m) continue;
      const [, base, owner, pidText, ext] = m;
      let mine: boolean;
      if (owner) {
        mine = owner === this.id;
        if (!mine && !(await ownerGone(this.dir, owner))) continue; // a live instance's file, maybe being written
      } else {
        // A file from before instance ids: owned by its pid alone.
        mine = Number(pidText) === process.pid;
        if (!mine && alive(Number(pidText))) continue;
      }
      if (mine && ext === 'spool' && path.join(this.dir, name) === this.active && this.ws) continue;
      let file = path.join(this.dir, name);
      if (!mine || ext === 'spool') {
        const claimed = path.join(this.dir, `${base}.${this.id}.${process.pid}.replay`);
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
      if (this.opts.onReplayed) {
        // A record is [stream, 'v', version, 'n', events, 'd', lines…] (entryFields in tracker/events.ts).
        let events = 0;
        for (const rec of batch) events += Number(rec[4]) || 0;
        this.opts.onReplayed(events);
      }
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
    const size = await stat(file).then(
      (st) => st.size,
      () => 0,
    );
    await rm(file, { force: true });
    this.closedBytes = Math.max(0, this.closedBytes - size);
    await rm(offsetFile, { force: true });
    await rm(sentFile, { force: true });
    return done - skip;
  }
}
