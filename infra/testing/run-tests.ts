/**
 * `npm test` runner: starts one local Redis, one local 3-master Redis Cluster (for
 * `createTestEnv({ redisCluster: true })`; ~2 s, in parallel with Postgres, so it costs the run
 * next to nothing) and one embedded Postgres for the whole run, then runs
 * every `*.test.ts` under the product folders with node:test (each file in its own process, each
 * on its own database and Redis key prefix; see ./index.ts). Extra arguments filter files by path.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type LocalService, startEmbeddedPostgres, startLocalRedis, startLocalRedisCluster } from '../services.ts';

const ROOTS = ['infra', 'tracker', 'admin-api', 'ledger', 'bench'];

function findTests(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) findTests(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const files = ROOTS.filter((r) => existsSync(r))
  .flatMap((r) => findTests(r))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tracker-test-'));
const [redisR, clusterR, pgR] = await Promise.allSettled([
  startLocalRedis({ dir: path.join(tmp, 'redis'), persistent: false }),
  startLocalRedisCluster({ dir: path.join(tmp, 'redis-cluster') }),
  startEmbeddedPostgres({ dir: path.join(tmp, 'pg'), database: 'postgres' }),
]);
if (redisR.status === 'rejected' || clusterR.status === 'rejected' || pgR.status === 'rejected') {
  const all: PromiseSettledResult<LocalService>[] = [redisR, clusterR, pgR];
  for (const r of all) if (r.status === 'fulfilled') await r.value.stop().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
  throw all.find((r) => r.status === 'rejected')?.reason;
}
const [redis, cluster, pg] = [redisR.value, clusterR.value, pgR.value];

const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=tap', `--test-concurrency=${os.availableParallelism()}`, ...files],
  {
    stdio: 'inherit',
    env: {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
      TEST_REDIS_URL: redis.url,
      TEST_REDIS_CLUSTER_URL: cluster.url,
      TEST_PG_ADMIN_URL: pg.adminUrl,
      TEST_TMP_DIR: tmp,
    },
  },
);
const stopAll = async () => {
  await redis.stop().catch(() => {});
  await cluster.stop().catch(() => {});
  await pg.stop().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
child.on('exit', async (code, signal) => {
  await stopAll();
  process.exit(code ?? (signal ? 1 : 0));
});
