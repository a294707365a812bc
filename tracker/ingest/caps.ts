/**
 * Click caps at the redirect (issue #16 item 3): every decision comes from in-process counters; each tracker adds its
 * local counts to shared Redis counters every `flushMs` and reads the global value back. Overshoot across N tracker
 * processes is at most the clicks the other processes admit within one flush interval plus one round trip (README "Caps").
 */
import type { Logger, Redis, RedisKeys } from '../../infra/index.ts';

/** A campaign's click caps as the link cache carries them (null caps = unlimited). */
export interface ClickCaps {
  /** IANA time zone the daily cap's day is counted in. */
  time_zone: string;
  daily: number | null;
  total: number | null;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const dayCache = new Map<string, { until_ms: number; day: string }>();

/**
 * The calendar day (`YYYY-MM-DD`) of `now_ms` in time zone `tz`. Cached per zone until the next UTC minute: every
 * zone's offset is a whole number of minutes, so a day boundary never falls inside a UTC minute.
 * @throws RangeError for an unknown time zone.
 */
export function periodDay(now_ms: number, tz: string): string {
  const c = dayCache.get(tz);
  if (c !== undefined && now_ms < c.until_ms && now_ms >= c.until_ms - 60_000) return c.day;
  let f = formatters.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' });
    formatters.set(tz, f);
  }
  const day = f.format(now_ms);
  dayCache.set(tz, { until_ms: now_ms - (now_ms % 60_000) + 60_000, day });
  return day;
}

interface Counter {
  key: string;
  /** The shared value as last read from Redis. */
  global: number;
  /** Sent to Redis, reply pending. */
  inflight: number;
  /** Admitted here since the last flush. */
  local: number;
  /** Seconds the Redis key lives (0 = forever). */
  ttl_s: number;
  /** Last time a click used it, epoch ms (idle counters are dropped). */
  used_ms: number;
}

/** A daily key lives two days past its first use: long enough for any zone's day, then Redis drops it. */
const DAILY_TTL_S = 2 * 86_400;
const IDLE_MS = 10 * 60_000;

/** In-process click counters per (campaign, period), flushed to Redis. */
export class CapCounters {
  private readonly counters = new Map<string, Counter>();
  private readonly timer: NodeJS.Timeout;
  private flushing = false;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly log: Logger,
    flushMs = 100,
  ) {
    this.timer = setInterval(() => void this.flush(), flushMs);
    this.timer.unref();
  }

  private counter(id: string, ttl_s: number, now_ms: number): Counter {
    let c = this.counters.get(id);
    if (c === undefined) {
      c = { key: this.keys.key('cap', 'click', id), global: 0, inflight: 0, local: 0, ttl_s, used_ms: now_ms };
      this.counters.set(id, c);
    }
    c.used_ms = now_ms;
    return c;
  }

  /**
   * Whether one more click of `campaign_id` fits its caps at `now_ms`; when it does, it is counted. Synchronous, so
   * one process never admits past a cap: only other processes' unflushed clicks can overshoot it.
   */
  admit(campaign_id: number, caps: ClickCaps, now_ms: number): boolean {
    const d =
      caps.daily === null
        ? null
        : this.counter(`${campaign_id}:d:${periodDay(now_ms, caps.time_zone)}`, DAILY_TTL_S, now_ms);
    const t = caps.total === null ? null : this.counter(`${campaign_id}:t`, 0, now_ms);
    if (d !== null && d.global + d.inflight + d.local >= caps.daily!) return false;
    if (t !== null && t.global + t.inflight + t.local >= caps.total!) return false;
    if (d !== null) d.local++;
    if (t !== null) t.local++;
    return true;
  }

  /** Adds the local counts to Redis and reads the global values back; failures keep the counts for the next flush. */
  async flush(now_ms = Date.now()): Promise<void> {
    if (this.flushing || this.redis.status !== 'ready') return;
    this.flushing = true;
    try {
      const work: Promise<void>[] = [];
      for (const [id, c] of this.counters) {
        if (c.local === 0 && now_ms - c.used_ms > IDLE_MS) {
          this.counters.delete(id);
          continue;
        }
        const n = c.local;
        c.local = 0;
        c.inflight = n;
        work.push(
          this.add(c, n).then(
            (v) => {
              c.global = v;
              c.inflight = 0;
            },
            (err: Error) => {
              c.local += c.inflight;
              c.inflight = 0;
              this.log.debug({ err: err.message, key: c.key }, 'cap counter flush failed');
            },
          ),
        );
      }
      await Promise.all(work);
    } finally {
      this.flushing = false;
    }
  }

  /**
   * INCRBY, and for a daily key `EXPIRE … NX` in the same MULTI: sent on every flush, so a key whose TTL was not set
   * (a failed or lost reply) gets one on the next flush, and an existing TTL is never pushed back. @returns the new value.
   */
  private async add(c: Counter, n: number): Promise<number> {
    if (c.ttl_s === 0) return this.redis.incrby(c.key, n);
    const res = await this.redis.multi().incrby(c.key, n).expire(c.key, c.ttl_s, 'NX').exec();
    const [err, v] = res?.[0] ?? [new Error('transaction aborted'), null];
    if (err) throw err;
    return Number(v);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
