/**
 * Runs the admin API on its own: `node --import tsx admin-api/main.ts` (env config;
 * `DATABASE_URL` and `REDIS_URL` required). Applies pending Postgres migrations first. Reports are
 * not wired here (no ClickHouse in this process): `infra/start.ts` calls `startApi` with them. The ledger is
 * (wallet routes, budgets reserved on activation); its maintenance jobs run in the pipeline process.
 * With an IPC channel it sends `{ type: 'ready', port }` to its parent once listening.
 */
import { createLogger, createRedis, createSql, loadConfig, migratePostgres, redisKeys } from '../infra/index.ts';
import { createLedger } from '../ledger/index.ts';
import { createDeliveries } from '../tracker/index.ts';
import { startApi } from './app.ts';

const config = loadConfig(process.env);
const logger = createLogger({ level: config.LOG_LEVEL }).child({ module: 'admin-api' });
if (!config.DATABASE_URL || !config.REDIS_URL) {
  logger.fatal('DATABASE_URL and REDIS_URL are required');
  process.exit(2);
}
const sql = createSql(config.DATABASE_URL);
const redis = createRedis(config.REDIS_URL, { cluster: config.REDIS_CLUSTER });
await migratePostgres(sql);
// Outbound postbacks/webhooks: the engine's workers run in this process.
const keys = redisKeys(config.REDIS_PREFIX);
const deliveries = createDeliveries({ config, logger, sql, redis, keys });
await deliveries.start();
const ledger = createLedger({ config, logger, sql, redis, keys });
const api = await startApi({ config, logger, sql, redis, deliveries, ledger });
logger.info({ url: `${api.url}/api/v1` }, 'admin API listening');
process.send?.({ type: 'ready', port: api.port });

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping');
  await api.close();
  await deliveries.stop();
  await sql.end({ timeout: 5 });
  redis.disconnect();
  process.exit(0);
}
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
