/**
 * `npm start`: the whole system on one machine. Uses DATABASE_URL / REDIS_URL / CLICKHOUSE_URL when given, else
 * starts embedded Postgres and a local redis-server under DATA_DIR and opens chDB there. chDB binds its directory to
 * one process, so this process runs the pipeline and the admin API (which both use ClickHouse), and the tracker runs
 * in TRACKER_PROCESSES child processes of its own (ARCHITECTURE.md, "Embedded defaults").
 *
 * Prints `tracker: <url>`, `api: <url>`, `demo link: <url>`, then `ready`. SIGINT/SIGTERM stop everything.
 *
 * `--role migrate|api|pipeline` runs one part only (docker-compose): it needs DATABASE_URL, REDIS_URL and
 * CLICKHOUSE_URL, since embedded services and chDB cannot be shared between containers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startApi } from '../admin-api/index.ts';
import { createLedger } from '../ledger/index.ts';
import { createDeliveries, createReports, startPipeline } from '../tracker/index.ts';
import { ensureDemoTenant } from './demo-seed.ts';
import {
  type ConversionSink,
  createClickHouse,
  createLogger,
  createRedis,
  createSql,
  type LocalService,
  loadConfig,
  migrateClickHouse,
  migratePostgres,
  nodeEntry,
  redisKeys,
  startEmbeddedPostgres,
  startLocalRedis,
  writeRuntime,
} from './index.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROLES = ['all', 'migrate', 'api', 'pipeline'] as const;
const { values: args } = parseArgs({ options: { role: { type: 'string', default: 'all' } } });
const role = args.role as (typeof ROLES)[number];
if (!ROLES.includes(role)) {
  process.stderr.write(`unknown --role ${args.role}; one of ${ROLES.join(', ')}\n`);
  process.exit(2);
}
const config = loadConfig();
if (role !== 'all' && !(config.DATABASE_URL && config.REDIS_URL && config.CLICKHOUSE_URL)) {
  process.stderr.write(`--role ${role} needs DATABASE_URL, REDIS_URL and CLICKHOUSE_URL\n`);
  process.exit(2);
}
const log = createLogger({ level: config.LOG_LEVEL, name: 'start' });
mkdirSync(config.DATA_DIR, { recursive: true });

const stops: Array<() => Promise<unknown>> = [];
let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    for (const stop of stops.reverse()) {
      await stop().catch((err) => log.error({ err }, 'error while stopping'));
    }
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

function announce(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Starts one tracker process and resolves with its port once it reports ready. */
function startTrackerProcess(env: NodeJS.ProcessEnv, index: number): Promise<{ child: ChildProcess; port: number }> {
  const entry = nodeEntry('tracker/main.ts');
  if (index === 0 && !entry.compiled)
    log.warn('dist/ is missing or older than the sources: tracker runs through tsx (npm run build)');
  const child = spawn(process.execPath, [...entry.execArgv, entry.script], {
    cwd: root,
    env: { ...env, TRACKER_INSTANCE_ID: `tracker-${index}` },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`tracker process exited with code ${code} before it was ready`)));
    child.on('message', (m: { type?: string; port?: number }) => {
      if (m?.type === 'ready' && typeof m.port === 'number') resolve({ child, port: m.port });
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

try {
  let redisUrl = config.REDIS_URL;
  if (!redisUrl && config.REDIS_CLUSTER) {
    // A local cluster's node files name its ports; a restart on new free ports would not find its data again.
    throw new Error('REDIS_CLUSTER=true needs REDIS_URL (a node of a running Redis Cluster)');
  }
  if (!redisUrl) {
    const redis: LocalService = await startLocalRedis({
      dir: path.join(config.DATA_DIR, 'redis'),
      persistent: true,
      log,
    });
    stops.push(() => redis.stop());
    redisUrl = redis.url;
  }
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    const pg = await startEmbeddedPostgres({ dir: path.join(config.DATA_DIR, 'postgres'), database: 'tracker', log });
    stops.push(() => pg.stop());
    databaseUrl = pg.url;
  }
  const sql = createSql(databaseUrl);
  stops.push(() => sql.end({ timeout: 5 }));
  await migratePostgres(sql);
  const ch = createClickHouse({
    url: config.CLICKHOUSE_URL,
    username: config.CLICKHOUSE_USER,
    password: config.CLICKHOUSE_PASSWORD,
    database: config.CLICKHOUSE_DATABASE,
    chdbPath: path.join(config.DATA_DIR, 'clickhouse'),
  });
  stops.push(() => ch.close());
  await migrateClickHouse(ch);
  if (role === 'migrate') {
    log.info('migrations applied');
    await shutdown(0);
  }

  const redis = createRedis(redisUrl, { cluster: config.REDIS_CLUSTER });
  stops.push(async () => redis.disconnect());
  const keys = redisKeys(config.REDIS_PREFIX);
  const ledger = createLedger({ config, logger: log, sql, redis, keys });
  const deliveries = createDeliveries({ config, logger: log, sql, redis, keys });
  // Money first: the ledger may still reject a conversion (budget, daily cap); postbacks then see its final status.
  const conversionSink: ConversionSink = {
    async conversionRecorded(c) {
      await ledger.sink.conversionRecorded(c);
      await deliveries.conversionSink.conversionRecorded(c);
    },
  };
  if (role === 'all' || role === 'pipeline') {
    const pipeline = await startPipeline({
      config,
      logger: log,
      redis,
      sql,
      ch,
      conversionSink,
      // CPC: valid clicks are charged per batch, keyed by the batch token (a retried batch is a no-op).
      clickChargeSink: ledger.clickSink,
    });
    stops.push(() => pipeline.close());
    // Expires two-phase transfers and approves conversions whose hold period has passed.
    const maintenance = ledger.startMaintenance();
    stops.push(() => maintenance.stop());
  }
  let apiUrl = '';
  if (role === 'all' || role === 'api') {
    await deliveries.start();
    stops.push(() => deliveries.stop());
    const api = await startApi({
      config,
      logger: log,
      sql,
      redis,
      reports: createReports(ch),
      ledger,
      deliveries,
    });
    stops.push(() => api.close());
    apiUrl = api.url;
  }
  if (role !== 'all') {
    if (apiUrl) announce(`api: ${apiUrl}/api/v1`);
    announce('ready');
    await new Promise(() => {}); // serve until a signal arrives
  }
  const { code } = await ensureDemoTenant(sql);

  const env = { ...process.env, DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, DATA_DIR: config.DATA_DIR };
  const trackers = await Promise.all(
    Array.from({ length: config.TRACKER_PROCESSES }, (_, i) => startTrackerProcess(env, i)),
  );
  // Stop the trackers first (they drain into Redis), then the pipeline and the rest.
  stops.push(async () => {
    await Promise.all(trackers.map((t) => stopChild(t.child)));
  });
  for (const t of trackers) {
    t.child.on('exit', (exitCode) => {
      if (!stopping) {
        log.error({ exitCode }, 'a tracker process exited; stopping');
        void shutdown(1);
      }
    });
  }

  const host = config.BIND_HOST === '0.0.0.0' ? 'localhost' : config.BIND_HOST;
  const trackerUrl = config.PUBLIC_TRACKER_URL ?? `http://${host}:${trackers[0]!.port}`;
  writeRuntime(config, { pid: process.pid, tracker_url: trackerUrl, api_url: apiUrl, database_url: databaseUrl });
  announce(`tracker: ${trackerUrl}`);
  announce(`api: ${apiUrl}/api/v1`);
  announce(`demo link: ${trackerUrl}/c/${code}?sub1=hello`);
  announce('ready');
} catch (err) {
  log.fatal({ err }, 'start-up failed');
  process.stderr.write(`start-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
  await shutdown(1);
}
