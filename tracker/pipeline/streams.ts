/**
 * Redis stream plumbing of the pipeline: consumer groups, batch manifests, safe trimming and the
 * "have the click consumers got past this point" check used by attribution.
 */
import { createHash } from 'node:crypto';
import type { Redis, RedisKeys } from '../../infra/index.ts';

/** The consumer group of the pipeline on every click and conversion stream. */
export const GROUP = 'pipeline';

/** One stream entry as ioredis returns it. */
export type RawEntry = [id: string, fields: string[]];

/**
 * Creates the pipeline's consumer group on every click and conversion partition (and the stream
 * itself, MKSTREAM). Idempotent: an existing group is left as it is. New groups start at `0`, so
 * entries written before the pipeline first ran are processed too.
 */
export async function ensureStreamGroups(redis: Redis, keys: RedisKeys, partitions: number): Promise<void> {
  const streams: string[] = [];
  for (let p = 0; p < partitions; p++) streams.push(keys.clicks(p), keys.conversions(p));
  await Promise.all(
    streams.map((s) =>
      redis.xgroup('CREATE', s, GROUP, '0', 'MKSTREAM').catch((err: Error) => {
        if (!/BUSYGROUP/.test(err.message)) throw err;
      }),
    ),
  );
}

/** Compares two stream ids (`ms-seq`) numerically. */
export function compareIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const d = Number(am) - Number(bm);
  if (d !== 0) return d < 0 ? -1 : 1;
  const e = Number(as) - Number(bs);
  return e === 0 ? 0 : e < 0 ? -1 : 1;
}

/**
 * The insert_deduplication_token of a batch: derived only from the stream and the batch's entry
 * ids, so any consumer re-inserting the same batch produces the same token.
 */
export function batchToken(stream: string, ids: readonly string[]): string {
  return createHash('sha256').update(stream).update('\n').update(ids.join(',')).digest('hex').slice(0, 40);
}

/** Key of the hash of in-flight batches of a stream: field = token, value = the entry ids, space-separated. */
export function manifestKey(keys: RedisKeys, stream: string): string {
  return keys.key('manifest', stream);
}

/** Reads the in-flight batch manifests of a stream: token → entry ids. */
export async function readManifests(redis: Redis, keys: RedisKeys, stream: string): Promise<Map<string, string[]>> {
  const h = await redis.hgetall(manifestKey(keys, stream));
  return new Map(Object.entries(h).map(([token, ids]) => [token, ids.split(' ')]));
}

/** Group state as XINFO GROUPS and XPENDING report it. */
export interface GroupState {
  lastDeliveredId: string;
  /** Smallest id delivered but not acknowledged, or null. */
  minPendingId: string | null;
  pending: number;
  /** Entries not yet delivered to the group (Redis 7 `lag`), null when Redis cannot tell. */
  lag: number | null;
}

function pairs(flat: unknown[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[String(flat[i])] = flat[i + 1];
  return o;
}

/** State of every group of a stream (empty when the stream does not exist). */
export async function groupStates(redis: Redis, stream: string): Promise<Map<string, GroupState>> {
  let groups: unknown[][];
  try {
    groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
  } catch (err) {
    if (/no such key/i.test((err as Error).message)) return new Map();
    throw err;
  }
  const out = new Map<string, GroupState>();
  for (const g of groups) {
    const o = pairs(g);
    const name = String(o.name);
    const pending = Number(o.pending ?? 0);
    let minPendingId: string | null = null;
    if (pending > 0) {
      const summary = (await redis.xpending(stream, name)) as [number, string | null, string | null, unknown];
      minPendingId = summary[1] ?? null;
    }
    out.set(name, {
      lastDeliveredId: String(o['last-delivered-id'] ?? '0-0'),
      minPendingId,
      pending,
      lag: o.lag === null || o.lag === undefined ? null : Number(o.lag),
    });
  }
  return out;
}

/**
 * The smallest id any group of the stream still needs: its oldest pending entry, else the entry
 * after its last-delivered id. Null when the stream has no group (then nothing may be trimmed).
 */
export function neededFrom(states: Map<string, GroupState>): string | null {
  let min: string | null = null;
  for (const s of states.values()) {
    const need = s.minPendingId ?? s.lastDeliveredId;
    if (min === null || compareIds(need, min) < 0) min = need;
  }
  return min;
}

/**
 * Trims a stream by MINID to what every group still needs (never MAXLEN, which could drop entries
 * a group has not acknowledged). Returns the number of entries removed.
 * @param keepFrom a click partition's checkpoint id: entries from it on are kept too (a takeover replays
 *   them into the fraud state); null = the partition has no checkpoint yet, so nothing is trimmed;
 *   undefined = no such bound (conversion streams).
 */
export async function trimStream(
  redis: Redis,
  stream: string,
  states?: Map<string, GroupState>,
  keepFrom?: string | null,
): Promise<number> {
  let min = neededFrom(states ?? (await groupStates(redis, stream)));
  if (keepFrom === null) return 0;
  if (keepFrom !== undefined && min !== null && compareIds(keepFrom, min) < 0) min = keepFrom;
  if (min === null || min === '0-0') return 0;
  return (await redis.xtrim(stream, 'MINID', min)) as number;
}

/**
 * Whether the pipeline group has processed every click entry written up to the millisecond of
 * `convId` (a conversion's stream id) on every click partition: nothing pending and nothing
 * undelivered at or before that millisecond. Separate streams number their entries
 * independently, so a click written just before its conversion may carry the very same id; the
 * comparison is therefore on milliseconds, inclusive. Used to decide that a conversion's click is
 * really unknown rather than still in flight.
 */
export async function clicksProcessedBefore(
  redis: Redis,
  keys: RedisKeys,
  partitions: number,
  convId: string,
): Promise<boolean> {
  const ms = convId.split('-')[0]!;
  // An incomplete id as XRANGE's end means "<ms>-<max seq>".
  const upTo = `${ms}-18446744073709551615`;
  for (let p = 0; p < partitions; p++) {
    const stream = keys.clicks(p);
    const state = (await groupStates(redis, stream)).get(GROUP);
    let from = '-';
    if (state) {
      if (state.minPendingId && compareIds(state.minPendingId, upTo) <= 0) return false;
      from = `(${state.lastDeliveredId}`;
    }
    if (compareIds(state?.lastDeliveredId ?? '0-0', upTo) >= 0) continue;
    const next = (await redis.xrange(stream, from, ms, 'COUNT', 1)) as RawEntry[];
    if (next.length > 0) return false;
  }
  return true;
}
