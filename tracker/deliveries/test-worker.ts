/**
 * A delivery worker process for restart.test.ts: runs the engine from environment configuration
 * and reports `{ type: 'ready' }` over IPC; the test kills it with SIGKILL mid-queue.
 */
import { createLogger, createRedis, createSql, loadConfig, redisKeys } from '../../infra/index.ts';
import { createDeliveries } from './engine.ts';

const config = loadConfig();
const sql = createSql(config.DATABASE_URL!, { max: 4 });
const redis = createRedis(config.REDIS_URL!, { cluster: config.REDIS_CLUSTER });
const deliveries = createDeliveries({
  sql,
  redis,
  keys: redisKeys(config.REDIS_PREFIX),
  config,
  logger: createLogger({ level: config.LOG_LEVEL }),
});
await deliveries.start();
process.send?.({ type: 'ready' });
