/**
 * The postback's cheap duplicate answer: a Redis key per (advertiser, event_id) holding the conversion_id the first
 * postback was accepted as. It is reserved before that postback's XADD as `?<conversion_id>` (pending) for
 * {@link RESERVE_S}, so a raced second postback never reaches the stream; once the XADD is acknowledged it becomes
 * `<conversion_id>` for the configured TTL. Only a confirmed key answers `duplicate`: a postback that finds a pending
 * one is told to retry (the first may still fail, or its tracker may have died between reserve and confirm), so no
 * answer ever names a conversion_id that is not stored. The Postgres unique key (advertiser_id, event_id) stays the
 * dedup of record behind it: when Redis does not answer in time the postback goes on unreserved.
 */
import type { Redis, RedisKeys } from '../../infra/index.ts';

/**
 * Lifetime of a reservation whose XADD is not yet acknowledged, s: far above the XADD's own bound
 * (TRACKER_REDIS_TIMEOUT_MS), and what a retry waits at most after its tracker died between reserve and confirm.
 */
export const RESERVE_S = 10;

/** Prefix of a pending reservation's value. */
const PENDING = '?';

/** Deletes the key only while it still holds this postback's pending reservation (a failed XADD gives it back). */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`;

/** Turns this postback's pending reservation (ARGV[1]) into the confirmed id (ARGV[2]) for ARGV[3] s, if still its. */
const CONFIRM = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) end return 0`;

/** What {@link EventIds.reserve} found. */
export type Reservation =
  | { kind: 'reserved' }
  | { kind: 'duplicate'; conversion_id: string }
  /** Another postback of this event_id is being stored (or its tracker died doing so): retry shortly. */
  | { kind: 'in_progress' }
  /** Redis did not answer within the timeout: go on without a reservation. */
  | { kind: 'unavailable' };

/** See the file's docstring. Every call is bounded by `timeoutMs`; none throws. */
export class EventIds {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly o: { ttlS: number; timeoutMs: number },
  ) {}

  /** Reserves `eventId` of `advertiserId` for `conversionId` unless another conversion holds it. */
  async reserve(advertiserId: number, eventId: string, conversionId: string): Promise<Reservation> {
    const key = this.keys.eventId(advertiserId, eventId);
    // SET … NX GET (Redis ≥ 7.0): one round trip answers both "was it free" and "whose is it".
    const held = await this.bounded(
      this.redis.call('SET', key, PENDING + conversionId, 'NX', 'GET', 'EX', String(RESERVE_S)) as Promise<
        string | null
      >,
    );
    if (held === undefined) return { kind: 'unavailable' };
    if (held === null) return { kind: 'reserved' };
    return held.startsWith(PENDING) ? { kind: 'in_progress' } : { kind: 'duplicate', conversion_id: held };
  }

  /** The XADD was acknowledged: the reservation names `conversionId` for the configured TTL (fire and forget). */
  confirm(advertiserId: number, eventId: string, conversionId: string): void {
    const key = this.keys.eventId(advertiserId, eventId);
    this.redis.eval(CONFIRM, 1, key, PENDING + conversionId, conversionId, this.o.ttlS).catch(() => {});
  }

  /** The XADD failed (the postback is answered 503 and will be retried): give the event_id back. */
  release(advertiserId: number, eventId: string, conversionId: string): void {
    this.redis.eval(RELEASE, 1, this.keys.eventId(advertiserId, eventId), PENDING + conversionId).catch(() => {});
  }

  /**
   * The conversion_id `eventId` was accepted as; null when unknown or still pending (not known to be stored),
   * undefined when Redis did not answer.
   */
  async lookup(advertiserId: number, eventId: string): Promise<string | null | undefined> {
    const held = await this.bounded(this.redis.get(this.keys.eventId(advertiserId, eventId)));
    return typeof held === 'string' && held.startsWith(PENDING) ? null : held;
  }

  private bounded<T>(p: Promise<T>): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.o.timeoutMs);
    });
    return Promise.race([p.catch(() => undefined), timeout]).finally(() => clearTimeout(timer));
  }
}
