/**
 * Test-only process entry: runs the pipeline in a child process so a test can kill it with
 * SIGKILL at a precise point (`KILL_AFTER_CLICK_INSERTS`: after that many click-batch inserts,
 * before their XACK). Config from the environment, plus `CHDB_PATH` and `CONSUMER`. Speaks IPC:
 * sends `{ type: 'ready' }`; answers 'stats' with `{ type: 'stats', stats }` and 'scores' with
 * `{ type: 'scores', rows }` (every click's fraud verdict in ClickHouse); 'close' stops it.
 */
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
const killAfter = Number(process.env.KILL_AFTER_CLICK_INSERTS ?? 0);
const ch = createClickHouse({ chdbPath: process.env.CHDB_PATH! });
await migrateClickHouse(ch);
const redis = createRedis(config.REDIS_URL!, { cluster: config.REDIS_CLUSTER });
const sql = createSql(config.DATABASE_URL!, { max: 2 });
let inserts = 0;
const pipeline = await startPipeline({
  config,
  logger: createLogger({ level: config.LOG_LEVEL }),
  redis,
  sql,
  ch,
  consumerName: process.env.CONSUMER,
  maintenanceIntervalMs: 100,
  testHooks: {
    afterInsert({ stream }) {
      if (killAfter > 0 && stream.includes('clicks') && ++inserts >= killAfter) process.kill(process.pid, 'SIGKILL');
    },
  },
});
process.send?.({ type: 'ready' });
process.on('message', async (m) => {
  if (m === 'stats') process.send?.({ type: 'stats', stats: pipeline.stats() });
  if (m === 'scores') {
    const rs = await ch.query({
      query: `SELECT toString(click_id) AS id, fraud_score, fraud_reasons, fraud_model_version FROM clicks ORDER BY id`,
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    });
    process.send?.({ type: 'scores', rows: await rs.json() });
  }
  if (m === 'close') {
    await pipeline.close();
    await ch.close();
    await sql.end({ timeout: 1 });
    redis.disconnect();
    process.exit(0);
  }
});
