/**
 * Runs the admin API on its own: `node --import tsx admin-api/main.ts` (env config; `DATABASE_URL` and `REDIS_URL`
 * required). It is the API role of the composition root (`infra/start.ts`: {@link openServices},
 * {@link startApiRole}) without ClickHouse, so `/reports` answers 503 here; the ledger (wallet routes, budgets
 * reserved on activation) and the delivery workers are wired. Pending Postgres migrations are applied first.
 * With an IPC channel it sends `{ type: 'ready', port }` to its parent once listening. SIGINT/SIGTERM stop it.
 */
import { createLogger, loadConfig } from '../infra/index.ts';
import { createMoneyParts, openServices, Stops, startApiRole } from '../infra/start.ts';

const config = loadConfig(process.env);
const logger = createLogger({ level: config.LOG_LEVEL }).child({ module: 'admin-api' });
if (!config.DATABASE_URL || !config.REDIS_URL) {
  logger.fatal('DATABASE_URL and REDIS_URL are required');
  process.exit(2);
}
const stops = new Stops(logger);
const services = await openServices(config, logger, stops, { clickhouse: false });
const api = await startApiRole(services, createMoneyParts(services), stops);
logger.info({ url: `${api.url}/api/v1` }, 'admin API listening');
process.send?.({ type: 'ready', port: api.port });

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping');
  await stops.stopAll();
  process.exit(0);
}
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
