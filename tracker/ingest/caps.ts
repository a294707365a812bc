/**
 * Click caps at the redirect (issue #16 item 3): every decision comes from in-process counters; each tracker adds its
 * local counts to shared Redis counters every `flushMs` and reads the global value back. Overshoot across N tracker
 * processes is at most the clicks the other processes admit within one flush interval plus one round trip (README "Caps").
 * The flush is also where a process learns that a cap reached 80 % / 100 %, and raises `cap.threshold_reached` once
 * across all processes (SET NX).
 */
import {
  CAP_THRESHOLDS,
  type CapThresholdData,
  capThreshold,
  type Logger,
  type Redis,
  type RedisKeys,
} from '../../infra/index.ts';

/** A tracking link's caps as the link cache carries them (null caps = unlimited); Postgres `link_caps()` builds it. */
export interface ClickCaps {
  /** IANA time zone the daily caps' day is counted in. */
  time_zone: string;
  /** The campaign's click caps. */
  daily: number | null;
  total: number | null;
  /** The link's affiliate's click caps on this campaign (`campaign_affiliates`). */
  affiliate_daily: number | null;
  affiliate_total: number | null;
  /** A total conversion cap (campaign or affiliate) is full: every click goes to the fallback. */
  conversions_full_total: boolean;
  /** The campaign-local day on which a daily conversion cap was full when the link was loaded; null = none. */
  conversions_full_day: string | null;
}

const capOrNull = (v: unknown): number | null => (typeof v === 'number' && v > 0 ? v : null);

/** The {@link ClickCaps} of a `link_caps()` value (jsonb, null when the link has no caps). */
export function compileCaps(raw: unknown): ClickCaps | null {
  if (raw === null || typeof raw !== 'object') return null;
  const r = raw as Record<string, unknown>;
  return {
    time_zone: knownZone(r.time_zone),
    daily: capOrNull(r.daily),
    total: capOrNull(r.total),
    affiliate_daily: capOrNull(r.affiliate_daily),
    affiliate_total: capOrNull(r.affiliate_total),
    conversions_full_total: r.conversions_full_total === true,
    conversions_full_day: typeof r.conversions_full_day === 'string' ? r.conversions_full_day : null,
  };
}

/**
 * The zone if Intl knows it, else UTC: the admin API checks both Intl and Postgres, but a zone set in SQL that only
 * Postgres knows must not make every click of the link throw.
 */
function knownZone(tz: unknown): string {
  if (typeof tz !== 'string') return 'UTC';
  try {
    periodDay(Date.now(), tz);
    return tz;
  } catch {
    return 'UTC';
  }
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
  /** What a threshold event says about this counter; `cap` is the latest cap a click was checked against. */
  event: CapThresholdData;
  /** Thresholds already raised (or being raised) for `event.cap` by this process: bit i = CAP_THRESHOLDS[i]. */
  raised: number;
  raisedCap: number;
}

/** A daily key lives two days past its first use: long enough for any zone's day, then Redis drops it. */
const DAILY_TTL_S = 2 * 86_400;
const IDLE_MS = 10 * 60_000;

/** In-process click counters per (campaign, affiliate or whole campaign, period), flushed to Redis. */
export class CapCounters {
  private readonly counters = new Map<string, Counter>();
  private readonly timer: NodeJS.Timeout;
  private flushing = false;

  /**
   * @param onThreshold called once across all processes sharing Redis per (cap, period, threshold) a counter
   *   reaches (the caller publishes the event); errors are its own.
   */
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly log: Logger,
    flushMs = 100,
    private readonly onThreshold: (t: CapThresholdData) => void = () => {},
  ) {
    this.timer = setInterval(() => void this.flush(), flushMs);
    this.timer.unref();
  }

  private counter(
    id: string,
    campaign_id: number,
    affiliate_id: number | null,
    day: string | null,
    cap: number,
    now_ms: number,
  ): Counter {
    let c = this.counters.get(id);
    if (c === undefined) {
      c = {
        key: this.keys.key('cap', 'click', id),
        global: 0,
        inflight: 0,
        local: 0,
        ttl_s: day === null ? 0 : DAILY_TTL_S,
        used_ms: now_ms,
        event: {
          campaign_id,
          affiliate_id,
          metric: 'clicks',
          period: day === null ? 'total' : 'daily',
          day,
          threshold_percent: 80,
          cap,
          count: 0,
        },
        raised: 0,
        raisedCap: cap,
      };
      this.counters.set(id, c);
    }
    c.used_ms = now_ms;
    c.event.cap = cap;
    return c;
  }

  /**
   * Whether one more click of the link (`campaign_id`, `affiliate_id`) fits its caps at `now_ms`; when it does, it is
   * counted on each capped counter (campaign and affiliate, daily and total). Synchronous, so one process never admits
   * past a cap: only other processes' unflushed clicks can overshoot it. A full conversion cap admits nothing.
   */
  admit(campaign_id: number, affiliate_id: number, caps: ClickCaps, now_ms: number): boolean {
    if (caps.conversions_full_total) return false;
    const needDay = caps.daily !== null || caps.affiliate_daily !== null || caps.conversions_full_day !== null;
    const day = needDay ? periodDay(now_ms, caps.time_zone) : '';
    if (caps.conversions_full_day === day) return false;
    const d =
      caps.daily === null ? null : this.counter(`${campaign_id}:d:${day}`, campaign_id, null, day, caps.daily, now_ms);
    const t =
      caps.total === null ? null : this.counter(`${campaign_id}:t`, campaign_id, null, null, caps.total, now_ms);
    const ad =
      caps.affiliate_daily === null
        ? null
        : this.counter(
            `${campaign_id}:a${affiliate_id}:d:${day}`,
            campaign_id,
            affiliate_id,
            day,
            caps.affiliate_daily,
            now_ms,
          );
    const at =
      caps.affiliate_total === null
        ? null
        : this.counter(
            `${campaign_id}:a${affiliate_id}:t`,
            campaign_id,
            affiliate_id,
            null,
            caps.affiliate_total,
            now_ms,
          );
    if (full(d) || full(t) || full(ad) || full(at)) return false;
    if (d !== null) d.local++;
    if (t !== null) t.local++;
    if (ad !== null) ad.local++;
    if (at !== null) at.local++;
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
              this.thresholds(id, c);
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

  /**
   * Raises each threshold the global count has reached and this process has not raised yet: the first process whose
   * `SET NX` on the (counter, cap, threshold) key succeeds calls onThreshold; a failed SET is tried again next flush.
   */
  private thresholds(id: string, c: Counter): void {
    const cap = c.event.cap;
    if (c.raisedCap !== cap) {
      c.raised = 0;
      c.raisedCap = cap;
    }
    CAP_THRESHOLDS.forEach((pct, i) => {
      const bit = 1 << i;
      if ((c.raised & bit) !== 0 || c.global < capThreshold(cap, pct)) return;
      c.raised |= bit;
      const key = this.keys.key('cap', 'event', 'click', id, cap, pct);
      const set = c.ttl_s > 0 ? this.redis.set(key, '1', 'EX', c.ttl_s, 'NX') : this.redis.set(key, '1', 'NX');
      set.then(
        (ok) => {
          if (ok === 'OK') this.onThreshold({ ...c.event, threshold_percent: pct, count: c.global });
        },
        (err: Error) => {
          if (c.raisedCap === cap) c.raised &= ~bit;
          this.log.debug({ err: err.message, key }, 'cap threshold not raised, will retry');
        },
      );
    });
  }

  close(): void {
    clearInterval(this.timer);
  }
}

function full(c: Counter | null): boolean {
  return c !== null && c.global + c.inflight + c.local >= c.event.cap;
}
