/** The services a bench run measures against, and the stream resets between its scenarios. */
import path from 'node:path';
import postgres from 'postgres';
import { loadConfig, type Redis, redisKeys, startEmbeddedPostgres, startLocalRedis } from '../infra/index.ts';
import { measureRedisCpu } from './load.ts';
import { PARTITIONS } from './options.ts';

/**
 * The bench's own Redis and Postgres: a private redis-server and an embedded Postgres, or a fresh database on
 * `DATABASE_URL` and a fresh key prefix on `REDIS_URL` when set. `onCleanup` receives what stops or drops them.
 */
export async function services(
  tmp: string,
  onCleanup: (stop: () => Promise<void>) => void,
): Promise<{ dbUrl: string; redisUrl: string; redisCluster: boolean; prefix: string }> {
  const prefix = `bench${Date.now().toString(36)}:`;
  let redisUrl = process.env.REDIS_URL;
  // REDIS_CLUSTER only describes a given REDIS_URL; the bench's own redis-server is a single node.
  const redisCluster = redisUrl ? loadConfig({ REDIS_CLUSTER: process.env.REDIS_CLUSTER }).REDIS_CLUSTER : false;
  if (!redisUrl) {
    const r = await startLocalRedis({ dir: path.join(tmp, 'redis'), persistent: false });
    onCleanup(() => r.stop());
    measureRedisCpu(r.process.pid);
    redisUrl = r.url;
  }
  let dbUrl: string;
  const dbName = `bench_${Date.now().toString(36)}`;
  if (process.env.DATABASE_URL) {
    const adminUrl = process.env.DATABASE_URL.replace(/\/[^/?]*(\?|$)/, '/postgres$1');
    const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${dbName}`);
    await admin.end();
    dbUrl = process.env.DATABASE_URL.replace(/\/[^/?]*(\?|$)/, `/${dbName}$1`);
    onCleanup(async () => {
      const a = postgres(adminUrl, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${dbName} with (force)`).catch(() => {});
      await a.end();
    });
  } else {
    const pg = await startEmbeddedPostgres({ dir: path.join(tmp, 'pg'), database: dbName });
    onCleanup(() => pg.stop());
    dbUrl = pg.url;
  }
  return { dbUrl, redisUrl, redisCluster, prefix };
}

/**
 * Deletes the click/conversion streams between scenarios (and every second of the constant-rate run) so Redis
 * memory does not grow across the run. UNLINK frees them on Redis's background thread: a synchronous DEL of a
 * second's worth of clicks would stall the XADDs of the run being measured. One UNLINK per key: the partitions
 * hash to different slots, and on a Redis Cluster a multi-key UNLINK across slots is refused with CROSSSLOT.
 */
export async function resetStreams(redis: Redis, prefix: string): Promise<void> {
  const keys = redisKeys(prefix);
  const names: string[] = [];
  for (let p = 0; p < PARTITIONS; p++) names.push(keys.clicks(p), keys.conversions(p));
  names.push(keys.key('bench', 'koa-clicks'));
  await Promise.all(names.map((n) => redis.unlink(n)));
}
