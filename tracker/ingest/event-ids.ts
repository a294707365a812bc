/**
 * The postback's cheap duplicate answer: a Redis key per (advertiser, event_id) holding the conversion_id the first
 * postback was accepted as. It is reserved before that postback's XADD (so a raced second postback never reaches the
 * stream and its answer names the id that is stored), first for {@link RESERVE_S} only, then for the configured TTL
 * once the XADD is acknowledged (a tracker that dies in between leaves a reservation that expires soon, not a
 * `duplicate` answer for an id that never existed). The Postgres unique key (advertiser_id, event_id) stays the
 * dedup of record behind it: when Redis does not answer in time the postback goes on unreserved.
 */
import type { Redis, RedisKeys } from '../../infra/index.ts';

/** Lifetime of a reservation whose XADD is not yet acknowledged, s. */
export const RESERVE_S = 60;

/** Deletes the key only while it still holds this postback's conversion_id (a failed XADD gives it back). */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`;

/** What {@link EventIds.reserve} found. */
export type Reservation =
  | { kind: 'reserved' }
  | { kind: 'duplicate'; conversion_id: string }
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
      this.redis.call('SET', key, conversionId, 'NX', 'GET', 'EX', String(RESERVE_S)) as Promise<string | null>,
    );
    if (held === undefined) return { kind: 'unavailable' };
    return held === null ? { kind: 'reserved' } : { kind: 'duplicate', conversion_id: held };
  }

  /** The XADD was acknowledged: keep the reservation for the configured TTL (fire and forget). */
  confirm(advertiserId: number, eventId: string): void {
    this.redis.expire(this.keys.eventId(advertiserId, eventId), this.o.ttlS).catch(() => {});
  }

  /** The XADD failed (the postback is answered 503 and will be retried): give the event_id back. */
  release(advertiserId: number, eventId: string, conversionId: string): void {
    this.redis.eval(RELEASE, 1, this.keys.eventId(advertiserId, eventId), conversionId).catch(() => {});
  }

  /** The conversion_id `eventId` was accepted as, null when unknown, undefined when Redis did not answer. */
  lookup(advertiserId: number, eventId: string): Promise<string | null | undefined> {
    return this.bounded(this.redis.get(this.keys.eventId(advertiserId, eventId)));
  }

  private bounded<T>(p: Promise<T>): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.o.timeoutMs);
    });
    return Promise.race([p.catch(() => undefined), timeout]).finally(() => clearTimeout(timer));
  }
}
