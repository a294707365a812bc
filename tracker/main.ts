/**
 * Process entry of one ingest process: reads the environment, connects, starts
 * the uWS server, and on SIGTERM/SIGINT drains in-flight writes before exiting 0. With an IPC
 * channel it sends `{ type: 'ready', port }` to its parent once listening. Several of these can
 * share one TRACKER_PORT (uWS binds with SO_REUSEPORT on Linux).
 */
import { createLogger, createSql, loadConfig } from '../infra/index.ts';
import { startTracker, type Tracker } from './ingest/server.ts';

const config = loadConfig(process.env);
const logger = createLogger({ level: config.LOG_LEVEL, name: 'tracker' });
if (!config.DATABASE_URL || !config.REDIS_URL) {
  logger.fatal('DATABASE_URL and REDIS_URL are required');
  process.exit(1);
}
const sql = createSql(config.DATABASE_URL, { max: 4 });

// Keeps the event loop alive until we exit explicitly, so the drain in stop() always completes.
const keepAlive = setInterval(() => {}, 60_000);
let tracker: Tracker | undefined;
let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down');
  const force = setTimeout(() => {
    logger.error('shutdown timed out');
    process.exit(1);
  }, 20_000);
  let code = 0;
  try {
    await tracker?.close();
    await sql.end({ timeout: 2 });
  } catch (err) {
    code = 1;
    logger.error({ err: (err as Error).message }, 'error during shutdown');
  }
  clearTimeout(force);
  clearInterval(keepAlive);
  process.exit(code);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
process.on('disconnect', () => void stop('disconnect'));

tracker = await startTracker({ config, logger, sql, redisUrl: config.REDIS_URL }).catch((err: Error) => {
  logger.fatal({ err: err.message }, 'tracker failed to start');
  process.exit(1);
});
process.send?.({ type: 'ready', port: tracker.port });
