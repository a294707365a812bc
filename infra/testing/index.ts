/**
 * Test helpers: each test file gets real services of its own — a fresh Postgres database with all
 * migrations applied, a unique Redis key prefix, and (when asked) a chDB directory of its own and/or
 * a Redis Cluster client instead of the single-node one.
 * Under `npm test` the services are shared by the run (see ./run-tests.ts); a file run by itself
 * (`node --import tsx --test file.test.ts`) starts its own (the cluster only when a test asks for it).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { type ClickHouseClient, createClickHouse } from '../clickhouse.ts';
import { type Config, loadConfig } from '../config.ts';
import { migrateClickHouse, migratePostgres } from '../migrate.ts';
import { createSql, type Sql } from '../postgres.ts';
import { createRedis, type Redis, type RedisKeys, redisKeys } from '../redis.ts';
import { type LocalService, startEmbeddedPostgres, startLocalRedis, startLocalRedisCluster } from '../services.ts';

export interface TestEnv {
  config: Config;
  sql: Sql;
  /** Single-node client, or a Cluster client (seeded at `config.REDIS_URL`) with `{ redisCluster: true }`. */
  redis: Redis;
  keys: RedisKeys;
  /** Present when `createTestEnv({ clickhouse: true })`. */
  ch?: ClickHouseClient;
  /** A private temporary directory, removed by close(). */
  dir: string;
  close(): Promise<void>;
}

let shared: Promise<{ redisUrl: string; pgAdminUrl: string; tmp: string }> | undefined;
let sharedCluster: Promise<string> | undefined;
const owned: Array<LocalService & { pids?: number[] }> = [];

/**
 * Stops services this process started: politely when the event loop empties, and with SIGKILL
 * on exit for any still running (a test process that calls process.exit must leave no redis-server behind).
 */
function own(...services: Array<LocalService & { pids?: number[] }>): void {
  if (owned.length === 0) {
    process.once('beforeExit', () => {
      for (const s of owned.splice(0)) void s.stop();
    });
    process.once('exit', () => {
      for (const s of owned) {
        for (const pid of s.pids ?? []) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    });
  }
  owned.push(...services);
}

/** Seed URL of the run's Redis Cluster (TEST_REDIS_CLUSTER_URL), or of one this process starts on first use. */
function clusterUrl(): Promise<string> {
  sharedCluster ??= (async () => {
    if (process.env.TEST_REDIS_CLUSTER_URL) return process.env.TEST_REDIS_CLUSTER_URL;
    const { tmp } = await services();
    const cluster = await startLocalRedisCluster({ dir: mkdtempSync(path.join(tmp, 'redis-cluster-')) });
    // The nodes must not keep this process alive by themselves: the exit hook of own() kills them.
    for (const n of cluster.nodes) n.process.unref();
    own({ ...cluster, pids: cluster.nodes.map((n) => n.pid) });
    return cluster.url;
  })();
  return sharedCluster;
}

function services() {
  shared ??= (async () => {
    if (process.env.TEST_REDIS_URL && process.env.TEST_PG_ADMIN_URL) {
      return {
        redisUrl: process.env.TEST_REDIS_URL,
        pgAdminUrl: process.env.TEST_PG_ADMIN_URL,
        tmp: process.env.TEST_TMP_DIR ?? os.tmpdir(),
      };
    }
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'tracker-test-'));
    const redis = await startLocalRedis({ dir: path.join(tmp, 'redis'), persistent: false });
    const pg = await startEmbeddedPostgres({ dir: path.join(tmp, 'pg'), database: 'postgres' });
    own({ ...redis, pids: redis.process.pid ? [redis.process.pid] : [] }, pg);
    return { redisUrl: redis.url, pgAdminUrl: pg.adminUrl, tmp };
  })();
  return shared;
}

/**
 * Creates an isolated environment on the real services.
 * @param opts.env extra environment for the config (e.g. `{ STREAM_PARTITIONS: '1' }`).
 * @param opts.clickhouse also open a private chDB with the ClickHouse migrations applied.
 * @param opts.redisCluster run on the Redis Cluster (3 local masters): config `REDIS_CLUSTER=true`,
 *   `REDIS_URL` = a seed node, and `redis` a Cluster client; the key prefix is still private to this env.
 */
export async function createTestEnv(
  opts: { env?: Record<string, string>; clickhouse?: boolean; redisCluster?: boolean } = {},
): Promise<TestEnv> {
  const svc = await services();
  const redisUrl = opts.redisCluster ? await clusterUrl() : svc.redisUrl;
  const id = `t_${randomBytes(6).toString('hex')}`;
  const admin = postgres(svc.pgAdminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${id}`);
  await admin.end();
  const dbUrl = svc.pgAdminUrl.replace(/\/[^/]*$/, `/${id}`);
  const dir = mkdtempSync(path.join(svc.tmp, `${id}-`));
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    DATA_DIR: dir,
    DATABASE_URL: dbUrl,
    REDIS_URL: redisUrl,
    REDIS_CLUSTER: String(opts.redisCluster ?? false),
    REDIS_PREFIX: `${id}:`,
    ...opts.env,
  });
  const sql = createSql(dbUrl, { max: 5 });
  await migratePostgres(sql);
  const redis = createRedis(redisUrl, { cluster: opts.redisCluster });
  let ch: ClickHouseClient | undefined;
  if (opts.clickhouse) {
    ch = createClickHouse({ chdbPath: path.join(dir, 'clickhouse') });
    await migrateClickHouse(ch);
  }
  return {
    config,
    sql,
    redis,
    keys: redisKeys(config.REDIS_PREFIX),
    ch,
    dir,
    async close() {
      await sql.end({ timeout: 1 });
      redis.disconnect();
      await ch?.close();
      const a = postgres(svc.pgAdminUrl, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${id} with (force)`).catch(() => {});
      await a.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { mulberry32 } from '../random.ts';
export { CHROMIUM_PATH, launchBrowser } from './browser.ts';
export { makeCampaign, makeConversion, makeUser, type Seeded, seedCampaign, waitFor } from './fixtures.ts';
