/**
 * Ownership and durable state of one click partition. The consumer that owns partition p keeps p's fraud
 * state in memory (the fraud engine, ../fraud/engine-pool.ts); this module makes that safe:
 * - a **lease** (`lease:clicks:{p}`, SET NX PX, renewed by its owner) says which consumer owns p, so one
 *   IP's clicks are scored by one state, in stream order;
 * - a **checkpoint** (`ckpt:clicks:{p}`: the engine's snapshot, in chunks, and the stream id it covers) is written
 *   every few seconds after an acknowledged batch; trimming never removes entries after it (see ./streams.ts);
 * - **recovery** (after a restart, a kill -9 or a takeover) restores the checkpoint and replays the stream
 *   entries after it into the state (Kafka Streams' changelog restore / Flink's checkpoint + replay), so
 *   the pending batches are scored exactly as they would have been without the interruption.
 * Every key carries the partition's hash tag `{p}` (through the stream name), for Redis Cluster.
 */
import type { Redis, RedisKeys } from '../../infra/index.ts';
import type { EngineSnapshot } from '../fraud/engine-pool.ts';

/** A partition lease held by `owner`. */
export interface Lease {
  readonly key: string;
  /** Takes the lease if it is free or already ours; true when we hold it. */
  acquire(): Promise<boolean>;
  /** Extends our lease; false when it is no longer ours (expired and taken). */
  renew(): Promise<boolean>;
  /** Gives the lease up if it is ours (a clean stop hands the partition over at once). */
  release(): Promise<void>;
}

const ACQUIRE_LUA = `
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`;
const RENEW_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`;
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Key of the lease of a click stream partition. */
export function leaseKey(keys: RedisKeys, stream: string): string {
  return keys.key('lease', stream);
}

/** Key of the checkpoint of a click stream partition: a hash { at: stream id, state: snapshot bytes }. */
export function checkpointKey(keys: RedisKeys, stream: string): string {
  return keys.key('ckpt', stream);
}

/**
 * A lease on `key` for `owner`, valid `ttlMs` after each acquire/renew. A consumer that dies keeps its
 * partition for at most `ttlMs`; the owner renews every third of it.
 */
export function createLease(redis: Redis, key: string, owner: string, ttlMs: number): Lease {
  return {
    key,
    async acquire() {
      return (await redis.eval(ACQUIRE_LUA, 1, key, owner, ttlMs)) === 1;
    },
    async renew() {
      return (await redis.eval(RENEW_LUA, 1, key, owner, ttlMs)) === 1;
    },
    async release() {
      await redis.eval(RELEASE_LUA, 1, key, owner);
    },
  };
}

/**
 * Bytes per checkpoint chunk. A snapshot can be megabytes; written as one command it would hold Redis (and every
 * tracker's XADD behind it) for milliseconds, so it goes in chunks of this size, one command each.
 */
export const CHECKPOINT_CHUNK_BYTES = 512 * 1024;

/**
 * Reads a partition's checkpoint (null when none was written). The hash holds `at` (the stream id covered),
 * `gen` and `n` (the generation and chunk count of the current snapshot) and the chunks `<gen>:<i>`.
 * @throws Error when a chunk of the current generation is missing (a corrupt checkpoint).
 */
export async function loadCheckpoint(redis: Redis, key: string): Promise<EngineSnapshot | null> {
  const [at, gen, n] = (await redis.hmget(key, 'at', 'gen', 'n')) as [string | null, string | null, string | null];
  if (at === null || gen === null || n === null) return null;
  const chunks: Buffer[] = [];
  for (let i = 0; i < Number(n); i++) {
    const c = await redis.hgetBuffer(key, `${gen}:${i}`);
    if (c === null) throw new Error(`checkpoint ${key}: chunk ${gen}:${i} missing`);
    chunks.push(c);
  }
  const all = Buffer.concat(chunks);
  return { at, bytes: new Uint8Array(all.buffer, all.byteOffset, all.byteLength) };
}

/**
 * Writes a partition's checkpoint: the chunks of a new generation first, then `at`/`gen`/`n` in one command
 * (so a reader sees either the old checkpoint or the new one, whole), then the old generation's chunks go.
 */
export async function saveCheckpoint(redis: Redis, key: string, snap: EngineSnapshot): Promise<void> {
  const old = await redis.hmget(key, 'gen', 'n');
  const gen = String((Number(old[0]) || 0) + 1);
  const bytes = Buffer.from(snap.bytes.buffer, snap.bytes.byteOffset, snap.bytes.byteLength);
  const n = Math.max(1, Math.ceil(bytes.length / CHECKPOINT_CHUNK_BYTES));
  for (let i = 0; i < n; i++) {
    await redis.hset(key, `${gen}:${i}`, bytes.subarray(i * CHECKPOINT_CHUNK_BYTES, (i + 1) * CHECKPOINT_CHUNK_BYTES));
  }
  await redis.hset(key, 'at', snap.at, 'gen', gen, 'n', String(n));
  if (old[0] !== null) {
    const stale = Array.from({ length: Number(old[1]) || 0 }, (_, i) => `${old[0]}:${i}`);
    if (stale.length > 0) await redis.hdel(key, ...stale);
  }
}

/** The stream id a partition's checkpoint covers, or null when there is none. */
export async function checkpointAt(redis: Redis, key: string): Promise<string | null> {
  return redis.hget(key, 'at');
}
