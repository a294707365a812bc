import { Redis, type RedisOptions } from 'ioredis';

export type { Redis };

/**
 * Opens an ioredis connection.
 * @param url `redis://[:password@]host:port[/db]`
 * @param opts extra ioredis options; the click path passes `enableOfflineQueue: false`
 *   so an outage fails fast instead of queueing.
 */
export function createRedis(url: string, opts: RedisOptions = {}): Redis {
  return new Redis(url, {
    lazyConnect: false,
    maxRetriesPerRequest: 2,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    ...opts,
  });
}

/**
 * Names of every Redis key and stream the system uses, under one prefix.
 * Stream partitions carry a hash tag `{p}` so that on Redis Cluster partition p of both
 * streams lives on one shard.
 */
export function redisKeys(prefix = '') {
  return {
    clicks: (p: number) => `${prefix}clicks:{${p}}`,
    conversions: (p: number) => `${prefix}conversions:{${p}}`,
    deadLetter: (stream: string) => `${prefix}dead:${stream}`,
    /** Pub/sub channel announcing link/campaign changes to every tracker's cache. */
    linkInvalidation: `${prefix}links:invalidate`,
    /** Pub/sub channel of live events for the admin API's SSE stream. */
    events: `${prefix}events`,
    /** Any other key, under the prefix. */
    key: (...parts: Array<string | number>) => prefix + parts.join(':'),
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;
