import type { Logger, Redis } from '../../infra/index.ts';
import { entryFields } from '../events.ts';
import type { Spool } from './spool.ts';

/** Called once an event is stored: in Redis, or in the spool; `ok` false only when both failed. */
export type Stored = (ok: boolean) => void;

/** Runs a {@link Stored} callback: the `onStored` of a writer whose items are callbacks. */
export const callStored = (stored: Stored, ok: boolean): void => stored(ok);

/**
 * Group commit of encoded event lines into one stream (CONTRACTS.md §1): every line added within
 * one event-loop turn (or within `groupMs`) goes into ONE `XADD <stream(p)> * v 1 n N d …`,
 * partitions taken round-robin per flush. `onStored(item, ok)` runs for each line's item after that
 * XADD is acknowledged — or, when Redis is not ready or the XADD fails, after the group is appended
 * to the spool. No MAXLEN: trimming is the pipeline's job.
 *
 * Items are plain values handed back to one `onStored` (not a closure per line), so the click path
 * allocates nothing per click for the wait.
 */
export class GroupWriter<T> {
  private lines: string[] = [];
  private waiters: T[] = [];
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
  ) {}

  /** Queues one encoded line; `item` comes back through `onStored` once the line is stored. */
  add(line: string, item: T): void {
    this.lines.push(line);
    this.waiters.push(item);
    if (this.lines.length >= this.maxGroup) this.flush();
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

  /** Writes the pending group now. */
  flush(): void {
    if (this.lines.length === 0) return;
    const lines = this.lines;
    const waiters = this.waiters;
    this.lines = [];
    this.waiters = [];
    const key = this.stream(this.rr++ % this.partitions);
    const fields = entryFields(lines);
    this.inflight++;
    const finish = (ok: boolean) => {
      for (let i = 0; i < waiters.length; i++) this.onStored(waiters[i]!, ok);
      if (--this.inflight === 0) for (const f of this.idle.splice(0)) f();
    };
    const toSpool = () =>
      this.spool.append(key, fields, (err) => {
        if (err) this.log.error({ err: err.message, events: lines.length }, 'event lost: Redis and spool both failed');
        finish(!err);
      });
    // Not ready: do not even try (enableOfflineQueue is off), so an outage costs no latency.
    if (this.redis.status !== 'ready') {
      toSpool();
      return;
    }
    this.redis.xadd(key, '*', ...fields).then(
      () => finish(true),
      (err: Error) => {
        this.log.warn({ err: err.message, stream: key }, 'XADD failed, spooling');
        toSpool();
      },
    );
  }

  /** Flushes the pending group and resolves when every write so far is stored. */
  async drain(): Promise<void> {
    this.flush();
    if (this.inflight > 0) await new Promise<void>((r) => this.idle.push(r));
  }
}
