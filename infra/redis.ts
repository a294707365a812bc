import type { EventEmitter } from 'node:events';
import { Cluster, type ClusterOptions, Redis as RedisClient, type RedisOptions } from 'ioredis';

/** Members of ioredis' single-node client that its Cluster client lacks or types differently. */
type NotShared =
  | Exclude<keyof RedisClient, keyof Cluster>
  // EventEmitter methods return `this`; re-declared below so they return this interface.
  | keyof EventEmitter
  | 'duplicate'
  | 'status'
  | 'options';

/**
 * A Redis connection as the system uses it: either ioredis' single-node `Redis` or its `Cluster`
 * client (config `REDIS_CLUSTER`). It is the command surface both share (every command, `multi`,
 * `pipeline`, pub/sub, `quit`/`disconnect`), so code written against it runs on both. A plain union
 * would not do: TypeScript cannot call a method whose overloads differ between the members
 * (`duplicate`, and commands with rest arguments such as `xclaim`).
 *
 * On a cluster, a command, MULTI, pipeline or script must keep all its keys in one hash slot
 * (Redis Cluster spec, "Keys hash tags"; otherwise the server answers `CROSSSLOT`, and ioredis
 * refuses a pipeline spanning nodes): keys that are used together share a `{tag}` (see {@link redisKeys}).
 */
export interface Redis extends Omit<RedisClient, NotShared>, EventEmitter {
  /** A new connection with the same options (a new Cluster client, with the same seed nodes, on a cluster). */
  duplicate(): Redis;
  /** ioredis connection state; `'ready'` once commands can be sent (on a cluster: once the slot map is loaded). */
  readonly status: string;
}

/** Options of {@link createRedis}: ioredis' single-node options plus the cluster switch. */
export interface CreateRedisOptions extends RedisOptions {
  /**
   * Connect to a Redis Cluster (config `REDIS_CLUSTER`): the URL is then one seed node, the client
   * discovers the others from it (`CLUSTER SLOTS`) and follows MOVED/ASK redirections.
   */
  cluster?: boolean;
}

/** Options that belong to ioredis' Cluster client itself rather than to each node connection. */
const CLUSTER_LEVEL = ['enableOfflineQueue', 'enableAutoPipelining', 'enableReadyCheck', 'lazyConnect'] as const;

/**
 * Opens an ioredis connection: a single-node `Redis`, or a `Cluster` client when `opts.cluster`.
 * @param url `redis://[user:password@]host:port[/db]` (`rediss://` for TLS); on a cluster one seed
 *   node (db must be 0), whose credentials and TLS apply to every node discovered from it.
 * @param opts extra ioredis options; the click path passes `enableOfflineQueue: false`
 *   so an outage fails fast instead of queueing. On a cluster they apply to every node connection,
 *   except those the Cluster client owns (offline queue, auto-pipelining, ready check, lazy connect)
 *   and `retryStrategy`, which becomes the cluster's reconnect strategy.
 * @throws Error when `opts.keyPrefix` is given with `opts.cluster`: the system prefixes keys itself
 *   (REDIS_PREFIX through {@link redisKeys}); a second, client-side prefix would only hide which
 *   key names (and so which slots) commands really use.
 */
export function createRedis(url: string, opts: CreateRedisOptions = {}): Redis {
  const { cluster, ...redisOpts } = opts;
  const merged: RedisOptions = {
    lazyConnect: false,
    maxRetriesPerRequest: 2,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    ...redisOpts,
  };
  if (!cluster) return new RedisClient(url, merged);
  if (merged.keyPrefix) throw new Error('createRedis: keyPrefix is not supported with cluster: true');
  return new Cluster([url], clusterOptions(url, merged));
}

/** Splits single-node options into the Cluster client's options and its per-node `redisOptions`. */
function clusterOptions(url: string, merged: RedisOptions): ClusterOptions {
  const { retryStrategy, ...rest } = merged;
  const nodeOpts: Record<string, unknown> = { ...rest };
  const top: Record<string, unknown> = {};
  for (const k of CLUSTER_LEVEL) {
    if (k in nodeOpts) {
      top[k] = nodeOpts[k];
      delete nodeOpts[k];
    }
  }
  // Credentials and TLS of the seed URL hold for every node: nodes discovered through CLUSTER SLOTS
  // are connected with `redisOptions` only.
  const u = new URL(url);
  if (u.username) nodeOpts.username = decodeURIComponent(u.username);
  if (u.password) nodeOpts.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:' && nodeOpts.tls === undefined) nodeOpts.tls = {};
  return {
    ...top,
    redisOptions: nodeOpts as RedisOptions,
    clusterRetryStrategy: retryStrategy ? (times: number) => retryStrategy(times) : undefined,
  };
}

/** True when `redis` is a Cluster client (config `REDIS_CLUSTER`). */
export function isCluster(redis: Redis): redis is Redis & Cluster {
  return (redis as { isCluster?: boolean }).isCluster === true;
}

/**
 * Names of every Redis key and stream the system uses, under one prefix.
 * Stream partitions carry a hash tag `{p}` so that on Redis Cluster partition p of both
 * streams lives on one shard (Redis Cluster spec: only the part between the first `{` and the
 * next `}` is hashed, so every key with tag `{p}` maps to the slot CRC16("p") mod 16384).
 * The prefix must therefore contain no `{`.
 */
export function redisKeys(prefix = '') {
  return {
    clicks: (p: number) => `${prefix}clicks:{${p}}`,
    conversions: (p: number) => `${prefix}conversions:{${p}}`,
    deadLetter: (stream: string) => `${prefix}dead:${stream}`,
    /** An advertiser's postback event_id → the conversion_id it was accepted as (tracker/ingest/event-ids.ts). */
    eventId: (advertiserId: number, eventId: string) => `${prefix}event:${advertiserId}:${eventId}`,
    /** Pub/sub channel announcing link/campaign changes to every tracker's cache. */
    linkInvalidation: `${prefix}links:invalidate`,
    /** Pub/sub channel telling every tracker that an advertiser's postback tokens or IP allowlist changed. */
    postbackInvalidation: `${prefix}postback:invalidate`,
    /** Capped stream of an advertiser's postbacks refused by its IP allowlist (infra/ip-allowlist.ts). */
    postbackRefusals: (advertiserId: number) => `${prefix}postback:refused:${advertiserId}`,
    /** Pub/sub channel of live events for the admin API's SSE stream. */
    events: `${prefix}events`,
    /** Any other key, under the prefix. */
    key: (...parts: Array<string | number>) => prefix + parts.join(':'),
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;
