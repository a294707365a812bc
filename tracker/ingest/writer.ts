import type { Logger, Redis } from '../../infra/index.ts';
import { entryFields } from '../events.ts';
import type { WriterMetrics } from './metrics.ts';
import { type Spool, SpoolFullError } from './spool.ts';

/** Called once an event is stored: in Redis, or in the spool; `ok` false only when both failed. */
export type Stored = (ok: boolean) => void;

/** Runs a {@link Stored} callback: the `onStored` of a writer whose items are callbacks. */
export const callStored = (stored: Stored, ok: boolean): void => stored(ok);

/**
 * Group commit of encoded event lines into partitioned streams (wire format: tracker/events.ts): every line added
 * within one event-loop turn (or within `groupMs`) is grouped by the partition its caller chose, and
 * each partition with lines in that flush gets ONE `XADD <stream(p)> * v 1 n N d …` (so lines of one
 * partition keep their arrival order: one connection, XADDs sent in flush order). Callers that have no
 * key take {@link roundRobin}, which names one partition per flush (the old behaviour: one XADD per
 * flush, partitions in turn). `onStored(item, ok)` runs for each line's item after its XADD is
 * acknowledged — or, when Redis is not ready or the XADD fails, after its group is appended to the
 * spool. A group whose XADD was sent and then failed is spooled with the `r 1` marker (it may have
 * landed anyway: see `entryMayRepeat` in tracker/events.ts). No MAXLEN: trimming is the pipeline's job.
 *
 * Items are plain values handed back to one `onStored` (not a closure per line), so the click path
 * allocates nothing per click for the wait; per flush it allocates two arrays per partition touched.
 */
export class GroupWriter<T> {
  /** Pending lines and items by partition; an entry is replaced (not cleared) when its group is sent. */
  private lines: string[][];
  private waiters: T[][];
  /** Partitions with pending lines, in first-line order. */
  private touched: number[] = [];
  private pending = 0;
  private scheduled = false;
  private rr = 0;
  private inflight = 0;
  private idle: Array<() => void> = [];

  constructor(
    private readonly redis: Redis,
    private readonly spool: Spool,
    private readonly stream: (p: number) => string,
    private readonly partitions: number,
    private readonly groupMs: number,
    private readonly maxGroup: number,
    private readonly log: Logger,
    private readonly onStored: (item: T, ok: boolean) => void,
    private readonly metrics?: WriterMetrics,
  ) {
    this.lines = Array.from({ length: partitions }, () => []);
    this.waiters = Array.from({ length: partitions }, () => []);
  }

  /** The partition for lines without a key in the current flush: advances once per flush, not per line. */
  roundRobin(): number {
    return this.rr % this.partitions;
  }

  /**
   * Queues one encoded line for partition `p`; `item` comes back through `onStored` once the line is stored.
   * @param p 0 ≤ p < partitions (a caller's bug otherwise: throws RangeError, nothing is queued).
   */
  add(line: string, item: T, p: number): void {
    const lines = this.lines[p];
    if (lines === undefined) throw new RangeError(`partition ${p} not in 0..${this.partitions - 1}`);
    if (lines.length === 0) this.touched.push(p);
    lines.push(line);
    this.waiters[p]!.push(item);
    if (++this.pending >= this.maxGroup) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      if (this.groupMs > 0) setTimeout(this.flushCb, this.groupMs);
      else setImmediate(this.flushCb);
    }
  }

  private readonly flushCb = () => {
    this.scheduled = false;
    this.flush();
  };

  /** Writes the pending groups now: one XADD per partition with pending lines. */
  flush(): void {
    if (this.pending === 0) return;
    this.pending = 0;
    this.rr++;
    const touched = this.touched;
    this.touched = [];
    for (let i = 0; i < touched.length; i++) {
      const p = touched[i]!;
      const lines = this.lines[p]!;
      const waiters = this.waiters[p]!;
      this.lines[p] = [];
      this.waiters[p] = [];
      this.write(this.stream(p), lines, waiters);
    }
  }

  private write(key: string, lines: string[], waiters: T[]): void {
    this.inflight++;
    const finish = (ok: boolean) => {
      for (let i = 0; i < waiters.length; i++) this.onStored(waiters[i]!, ok);
      if (--this.inflight === 0) for (const f of this.idle.splice(0)) f();
    };
    const toSpool = (mayRepeat: boolean) =>
      this.spool.append(
        key,
        entryFields(lines, mayRepeat),
        (err) => {
          // A full spool counts and logs its refusals itself (rate-limited): a flood must not log per group.
          if (err && !(err instanceof SpoolFullError)) {
            this.log.error({ err: err.message, events: lines.length }, 'event lost: Redis and spool both failed');
          }
          finish(!err);
        },
        lines.length,
      );
    // Not ready: do not even try (enableOfflineQueue is off), so an outage costs no latency. Nothing was sent,
    // so the spooled group cannot repeat.
    if (this.redis.status !== 'ready') {
      toSpool(false);
      return;
    }
    const m = this.metrics;
    m?.groupSize.observe(lines.length);
    const sent = performance.now();
    this.redis.xadd(key, '*', ...entryFields(lines)).then(
      () => {
        m?.xaddSeconds.observe((performance.now() - sent) / 1000);
        finish(true);
      },
      (err: Error) => {
        m?.xaddSeconds.observe((performance.now() - sent) / 1000);
        // Every failure after the call is treated as "may have landed": a command timeout leaves the XADD in the
        // socket (a stalled Redis runs it once it resumes), and an error after the write cannot tell either way.
        // Marking a group that did not land only costs the pipeline a lookup; not marking one that did counts
        // its clicks twice.
        this.log.warn({ err: err.message, stream: key }, 'XADD failed, spooling (may repeat)');
        toSpool(true);
      },
    );
  }

  /** Flushes the pending groups and resolves when every write so far is stored. */
  async drain(): Promise<void> {
    this.flush();
    if (this.inflight > 0) await new Promise<void>((r) => this.idle.push(r));
  }
}
