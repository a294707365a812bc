/**
 * Test helpers: each test file gets real services of its own — a fresh Postgres database with all
 * migrations applied, a unique Redis key prefix, and (when asked) a chDB directory of its own.
 * Under `npm test` the services are shared by the run (see ./run-tests.ts); a file run by itself
 * (`node --import tsx --test file.test.ts`) starts its own.
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
import { type LocalService, startEmbeddedPostgres, startLocalRedis } from '../services.ts';

export interface TestEnv {
  config: Config;
  sql: Sql;
  redis: Redis;
  keys: RedisKeys;
  /** Present when `createTestEnv({ clickhouse: true })`. */
  ch?: ClickHouseClient;
  /** A private temporary directory, removed by close(). */
  dir: string;
  close(): Promise<void>;
}

let shared: Promise<{ redisUrl: string; pgAdminUrl: string; tmp: string }> | undefined;
const owned: LocalService[] = [];

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
    owned.push(redis, pg);
    process.once('beforeExit', () => {
      for (const s of owned.splice(0)) void s.stop();
    });
    return { redisUrl: redis.url, pgAdminUrl: pg.adminUrl, tmp };
  })();
  return shared;
}

/**
 * Creates an isolated environment on the real services.
 * @param opts.env extra environment for the config (e.g. `{ STREAM_PARTITIONS: '1' }`).
 * @param opts.clickhouse also open a private chDB with the ClickHouse migrations applied.
 */
export async function createTestEnv(
  opts: { env?: Record<string, string>; clickhouse?: boolean } = {},
): Promise<TestEnv> {
  const svc = await services();
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
    REDIS_URL: svc.redisUrl,
    REDIS_PREFIX: `${id}:`,
    ...opts.env,
  });
  const sql = createSql(dbUrl, { max: 5 });
  await migratePostgres(sql);
  const redis = createRedis(svc.redisUrl);
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
