/**
 * Process entry of a stand-alone pipeline consumer (scale-out with a ClickHouse server:
 * `CLICKHOUSE_URL` set, N of these with distinct `PIPELINE_CONSUMER` names or the default
 * `<hostname>-<pid>`). With embedded chDB the pipeline runs inside the process that owns the chDB
 * directory instead (see infra/start.ts). `DATABASE_URL` and `REDIS_URL` are required.
 * SIGINT/SIGTERM stop it gracefully: the batch in progress finishes or stays pending for takeover.
 * With an IPC channel it sends `{ type: 'ready' }` once consuming.
 */
import path from 'node:path';
import {
  createClickHouse,
  createLogger,
  createRedis,
  createSql,
  loadConfig,
  migrateClickHouse,
} from '../../infra/index.ts';
import { startPipeline } from './runner.ts';

const config = loadConfig(process.env);
const logger = createLogger({ level: config.LOG_LEVEL });
if (!config.DATABASE_URL || !config.REDIS_URL) {
  logger.fatal('DATABASE_URL and REDIS_URL are required');
  process.exit(1);
}
const ch = createClickHouse({
  url: config.CLICKHOUSE_URL,
  username: config.CLICKHOUSE_USER,
  password: config.CLICKHOUSE_PASSWORD,
  database: config.CLICKHOUSE_DATABASE,
  chdbPath: path.join(config.DATA_DIR, 'clickhouse'),
});
await migrateClickHouse(ch);
const redis = createRedis(config.REDIS_URL, { cluster: config.REDIS_CLUSTER });
const sql = createSql(config.DATABASE_URL);
const pipeline = await startPipeline({ config, logger, redis, sql, ch });
process.send?.({ type: 'ready' });

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal, stats: pipeline.stats() }, 'stopping pipeline');
  await pipeline.close();
  await Promise.allSettled([ch.close(), sql.end({ timeout: 5 })]);
  redis.disconnect();
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
