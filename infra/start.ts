/**
 * The composition root: the only file in infra/ that imports the product folders. It wires the ledger, the
 * deliveries, the pipeline, the admin API and the tracker processes into roles, and its CLI is `npm start`.
 *
 * `npm start` (role `all`): the whole system on one machine. Uses DATABASE_URL / REDIS_URL / CLICKHOUSE_URL when
 * given, else starts embedded Postgres and a local redis-server under DATA_DIR and opens chDB there. chDB binds its
 * directory to one process, so this process runs the pipeline and the admin API (which both use ClickHouse), and the
 * tracker runs in TRACKER_PROCESSES child processes of its own (`tracker/main.ts`, ARCHITECTURE.md, "Embedded
 * defaults"). Prints `tracker: <url>`, `api: <url>`, `dashboard: <url>`, `demo link: <url>`, then `ready`.
 * SIGINT/SIGTERM stop everything.
 *
 * `--role migrate|api|pipeline` runs one part only (docker-compose): it needs DATABASE_URL, REDIS_URL and
 * CLICKHOUSE_URL, since embedded services and chDB cannot be shared between containers. `admin-api/main.ts` runs the
 * API role through {@link openServices} and {@link startApiRole} too.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type RunningApi, startApi } from '../admin-api/index.ts';
import { createLedger, type Ledger } from '../ledger/index.ts';
import {
  createAnalytics,
  createDeliveries,
  createReports,
  type Deliveries,
  type PipelineTestHooks,
  settlementSink,
  startPipeline,
} from '../tracker/index.ts';
import { ensureDemoTenant } from './demo-seed.ts';
import {
  type ClickHouseClient,
  type Config,
  createClickHouse,
  createLogger,
  createMetricsRegistry,
  createRedis,
  createSql,
  type LocalService,
  type Logger,
  loadConfig,
  migrateClickHouse,
  migratePostgres,
  nodeEntry,
  type ReadyCheck,
  type Redis,
  type RedisKeys,
  type Registry,
  redisKeys,
  runReadyChecks,
  type Sql,
  serveMetrics,
  startEmbeddedPostgres,
  startLocalRedis,
  stopChildProcess,
  writeRuntime,
} from './index.ts';

/** Longest wait for one stop (a connection close, a child's exit) before the next one runs, ms. */
const STOP_TIMEOUT_MS = 15_000;

/** Longest whole stop: what is left after it is killed (servers asked to stop at once), ms. */
const STOP_BUDGET_MS = 18_000;

/** A signal this long after the first one forces the exit (see main), ms. */
const FORCE_AFTER_MS = 500;

/**
 * What started, to be stopped in reverse order. Each stop is bounded by {@link STOP_TIMEOUT_MS}, so a dependency that
 * is already gone cannot hang the others.
 */
export class Stops {
  private readonly list: Array<{ name: string; stop: () => Promise<unknown>; kill?: () => void }> = [];
  constructor(private readonly log: Logger) {}

  /**
   * Registers a stop; `name` is logged when it fails or times out. `kill`, for a process of ours, asks it to stop
   * without waiting (see {@link killAll}).
   */
  push(name: string, stop: () => Promise<unknown>, kill?: () => void): void {
    this.list.push({ name, stop, kill });
  }

  /** A forced exit: signals every process still registered to stop now, waiting for none. */
  killAll(): void {
    for (const { kill } of this.list.splice(0).reverse()) kill?.();
  }

  /**
   * Runs every stop, newest first, each within {@link STOP_TIMEOUT_MS} and all within {@link STOP_BUDGET_MS} (then
   * the rest is killed); errors are logged, never thrown.
   */
  async stopAll(): Promise<void> {
    const deadline = Date.now() + STOP_BUDGET_MS;
    // Each entry leaves the list only once its stop is over, so a forced exit meanwhile (killAll) still reaches it.
    for (let entry = this.list.at(-1); entry; entry = this.list.at(-1)) {
      const { name, stop } = entry;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), Math.max(1_000, Math.min(STOP_TIMEOUT_MS, deadline - Date.now())));
      });
      const outcome = await Promise.race([stop().then(() => 'done' as const), timeout]).catch((err: unknown) => {
        this.log.error({ err, name }, 'error while stopping');
        return 'failed' as const;
      });
      clearTimeout(timer);
      if (outcome === 'timeout') this.log.error({ name, timeoutMs: STOP_TIMEOUT_MS }, 'stop timed out');
      const i = this.list.indexOf(entry);
      if (i >= 0) this.list.splice(i, 1);
      if (Date.now() > deadline && this.list.length > 0) {
        this.log.error({ left: this.list.map((e) => e.name), budgetMs: STOP_BUDGET_MS }, 'stop over budget; killing');
        return this.killAll();
      }
    }
  }
}

/** The connections every role runs on. `ch` is absent when the role was opened without ClickHouse. */
export interface Services {
  config: Config;
  log: Logger;
  sql: Sql;
  redis: Redis;
  keys: RedisKeys;
  ch?: ClickHouseClient;
  /** The URLs in use (the embedded services' when none was configured), for child processes. */
  databaseUrl: string;
  redisUrl: string;
  /** This process's one metrics registry: the pipeline, the deliveries and the API register on it. */
  registry: Registry;
}

/** The `/readyz` check of ClickHouse: one `SELECT 1`. */
function clickHouseCheck(ch: ClickHouseClient): ReadyCheck {
  return async () => {
    const rs = await ch.query({ query: 'SELECT 1', format: 'JSONEachRow' });
    await rs.json();
  };
}

/**
 * Connects to Postgres, Redis and (with `clickhouse`) ClickHouse, starting embedded Postgres and a local
 * redis-server under DATA_DIR when their URL is not configured, and applies pending migrations. Registers every
 * close in `stops`.
 * @throws Error when REDIS_CLUSTER is set without REDIS_URL; ServiceStartError when a local service cannot start.
 */
export async function openServices(
  config: Config,
  log: Logger,
  stops: Stops,
  o: { clickhouse: boolean },
): Promise<Services> {
  mkdirSync(config.DATA_DIR, { recursive: true });
  let redisUrl = config.REDIS_URL;
  if (!redisUrl && config.REDIS_CLUSTER) {
    // A local cluster's node files name its ports; a restart on new free ports would not find its data again.
    throw new Error('REDIS_CLUSTER=true needs REDIS_URL (a node of a running Redis Cluster)');
  }
  if (!redisUrl) {
    // Own process groups: a terminal's Ctrl-C reaches only the node processes, which drain into Redis and Postgres
    // before stopping them (infra/child-services.ts).
    const local: LocalService = await startLocalRedis({
      dir: path.join(config.DATA_DIR, 'redis'),
      persistent: true,
      ownProcessGroup: true,
      log,
    });
    stops.push('redis-server', () => local.stop(), local.kill);
    redisUrl = local.url;
  }
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    const pg = await startEmbeddedPostgres({
      dir: path.join(config.DATA_DIR, 'postgres'),
      database: 'tracker',
      ownProcessGroup: true,
      log,
    });
    stops.push('postgres', () => pg.stop(), pg.kill);
    databaseUrl = pg.url;
  }
  const sql = createSql(databaseUrl);
  stops.push('postgres connections', () => sql.end({ timeout: 5 }));
  await migratePostgres(sql);
  let ch: ClickHouseClient | undefined;
  if (o.clickhouse) {
    ch = createClickHouse({
      url: config.CLICKHOUSE_URL,
      username: config.CLICKHOUSE_USER,
      password: config.CLICKHOUSE_PASSWORD,
      database: config.CLICKHOUSE_DATABASE,
      chdbPath: path.join(config.DATA_DIR, 'clickhouse'),
    });
    const opened = ch;
    stops.push('clickhouse', () => opened.close());
    await migrateClickHouse(ch);
  }
  const redis = createRedis(redisUrl, { cluster: config.REDIS_CLUSTER });
  // Connection errors are retried by ioredis and surface as command failures; without a listener ioredis prints
  // each one as an "Unhandled error event".
  redis.on('error', (err: Error) => log.debug({ err: err.message }, 'redis error'));
  stops.push('redis connection', async () => redis.disconnect());
  return {
    config,
    log,
    sql,
    redis,
    keys: redisKeys(config.REDIS_PREFIX),
    ch,
    databaseUrl,
    redisUrl,
    registry: createMetricsRegistry(),
  };
}

/** The parts the pipeline and the API share: the ledger (money) and the deliveries (postbacks, webhooks). */
export interface MoneyParts {
  ledger: Ledger;
  deliveries: Deliveries;
}

/** Creates the ledger and the deliveries on `s` (nothing runs until a role starts them). */
export function createMoneyParts(s: Services): MoneyParts {
  const deps = { config: s.config, logger: s.log, sql: s.sql, redis: s.redis, keys: s.keys };
  return { ledger: createLedger(deps), deliveries: createDeliveries({ ...deps, registry: s.registry }) };
}

/**
 * The pipeline role: consumes the click and conversion streams into ClickHouse, pays conversions and CPC clicks
 * through the ledger, queues postbacks, and runs the ledger's maintenance (two-phase expiry, hold releases).
 * `testHooks`: the fault suite's kill points (tracker/faults/pipeline-child.ts); never set by `npm start`.
 * @throws Error when `s` was opened without ClickHouse.
 */
export async function startPipelineRole(
  s: Services,
  parts: MoneyParts,
  stops: Stops,
  testHooks?: PipelineTestHooks,
): Promise<void> {
  if (!s.ch) throw new Error('the pipeline role needs ClickHouse');
  const pipeline = await startPipeline({
    config: s.config,
    logger: s.log,
    redis: s.redis,
    sql: s.sql,
    ch: s.ch,
    conversionSink: settlementSink({ ledger: parts.ledger.sink, postbacks: parts.deliveries.conversionSink }),
    // CPC: valid clicks are charged per batch, keyed by the batch token (a retried batch is a no-op).
    clickChargeSink: parts.ledger.clickSink,
    testHooks,
    registry: s.registry,
  });
  stops.push('pipeline', () => pipeline.close());
  const maintenance = parts.ledger.startMaintenance();
  stops.push('ledger maintenance', () => maintenance.stop());
}

/**
 * The pipeline role's own `/metrics` (and `/readyz`: Redis, Postgres, ClickHouse) on METRICS_PORT, for a process
 * that runs no API (`--role pipeline`); with the API in the process its `/metrics` serves the same registry.
 */
export async function servePipelineMetrics(s: Services, stops: Stops): Promise<number | undefined> {
  if (s.config.METRICS_PORT === undefined) {
    s.log.warn('METRICS_PORT is not set: this pipeline process serves no /metrics');
    return undefined;
  }
  const ch = s.ch;
  const server = await serveMetrics(s.registry, s.config.BIND_HOST, s.config.METRICS_PORT, () =>
    runReadyChecks({
      redis: () => s.redis.ping(),
      postgres: () => s.sql`select 1`,
      ...(ch ? { clickhouse: clickHouseCheck(ch) } : {}),
    }),
  );
  stops.push('metrics listener', () => server.close());
  return server.port;
}

/**
 * The API role: the delivery workers and the admin API (`/api/v1`, reports when `s` has ClickHouse).
 * @param port overrides `config.API_PORT` (0 = any free port).
 */
export async function startApiRole(
  s: Services,
  parts: MoneyParts,
  stops: Stops,
  o: { port?: number } = {},
): Promise<RunningApi> {
  await parts.deliveries.start();
  stops.push('deliveries', () => parts.deliveries.stop());
  const api = await startApi(
    {
      config: s.config,
      logger: s.log,
      sql: s.sql,
      redis: s.redis,
      reports: s.ch
        ? createReports(s.ch, {
            maxExecutionS: s.config.REPORT_MAX_EXECUTION_S,
            maxMemoryBytes: s.config.REPORT_MAX_MEMORY_BYTES,
          })
        : undefined,
      analytics: s.ch
        ? createAnalytics(s.ch, {
            maxExecutionS: s.config.ANALYTICS_MAX_EXECUTION_S,
            maxResultRows: s.config.ANALYTICS_MAX_RESULT_ROWS,
            maxMemoryBytes: s.config.ANALYTICS_MAX_MEMORY_BYTES,
            maxRowsToRead: s.config.ANALYTICS_MAX_ROWS_TO_READ,
          })
        : undefined,
      ledger: parts.ledger,
      deliveries: parts.deliveries,
      registry: s.registry,
      readyChecks: s.ch ? { clickhouse: clickHouseCheck(s.ch) } : undefined,
    },
    { port: o.port },
  );
  stops.push('api', () => api.close());
  return api;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Starts one tracker process (`tracker/main.ts`) and resolves with its port once it reports ready. */
function startTrackerProcess(
  log: Logger,
  env: NodeJS.ProcessEnv,
  index: number,
): Promise<{ child: ChildProcess; port: number }> {
  const entry = nodeEntry('tracker/main.ts');
  if (index === 0 && !entry.compiled)
    log.warn('dist/ is missing or older than the sources: tracker runs through tsx (npm run build)');
  const child = spawn(process.execPath, [...entry.execArgv, entry.script], {
    cwd: root,
    env: {
      ...env,
      TRACKER_INSTANCE_ID: `tracker-${index}`,
      // One metrics port per tracker process (they share TRACKER_PORT): METRICS_PORT + 1 + index.
      ...(env.METRICS_PORT ? { METRICS_PORT: String(Number(env.METRICS_PORT) + 1 + index) } : {}),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // Stopped by this process, first (a Ctrl-C must not reach it directly); it stops itself when the IPC channel
    // closes, so a parent killed with SIGKILL leaves no tracker behind.
    detached: true,
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`tracker process exited with code ${code} before it was ready`)));
    child.on('message', (m: { type?: string; port?: number }) => {
      if (m?.type === 'ready' && typeof m.port === 'number') resolve({ child, port: m.port });
    });
  });
}

const ROLES = ['all', 'migrate', 'api', 'pipeline'] as const;

/** `npm start` and `--role …` (see the file's docstring). */
async function main(): Promise<void> {
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
  const stops = new Stops(log);
  let stopping = false;
  let firstSignalMs = 0;
  const shutdown = async (code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      await stops.stopAll();
    }
    process.exit(code);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    const now = Date.now();
    // A second signal forces the exit. One Ctrl-C can arrive twice within milliseconds (the terminal signals the
    // foreground group, and `npm start`'s npm forwards it to us), so only a signal a while after the first counts.
    if (firstSignalMs > 0 && now - firstSignalMs > FORCE_AFTER_MS) {
      log.warn({ signal }, 'second signal: forcing the exit');
      stops.killAll();
      process.exit(130);
    }
    if (firstSignalMs === 0) firstSignalMs = now;
    void shutdown(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const announce = (line: string) => process.stdout.write(`${line}\n`);

  try {
    const s = await openServices(config, log, stops, { clickhouse: true });
    if (role === 'migrate') {
      log.info('migrations applied');
      await shutdown(0);
    }
    const parts = createMoneyParts(s);
    if (role === 'all' || role === 'pipeline') await startPipelineRole(s, parts, stops);
    let apiUrl = '';
    if (role === 'all' || role === 'api') apiUrl = (await startApiRole(s, parts, stops)).url;
    if (role === 'pipeline') await servePipelineMetrics(s, stops);
    if (role !== 'all') {
      if (apiUrl) announce(`api: ${apiUrl}/api/v1`);
      if (apiUrl) announce(`dashboard: ${apiUrl}/dashboard/`);
      announce('ready');
      await new Promise(() => {}); // serve until a signal arrives
    }
    const { code } = await ensureDemoTenant(s.sql);

    const env = { ...process.env, DATABASE_URL: s.databaseUrl, REDIS_URL: s.redisUrl, DATA_DIR: config.DATA_DIR };
    const trackers = await Promise.all(
      Array.from({ length: config.TRACKER_PROCESSES }, (_, i) => startTrackerProcess(log, env, i)),
    );
    // Stopped first (they drain into Redis), then the API, the pipeline and the rest.
    stops.push(
      'trackers',
      () => Promise.all(trackers.map((t) => stopChildProcess(t.child, 'SIGTERM', 10_000))),
      () => {
        for (const t of trackers) t.child.kill('SIGKILL');
      },
    );
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
    writeRuntime(config, { pid: process.pid, tracker_url: trackerUrl, api_url: apiUrl, database_url: s.databaseUrl });
    announce(`tracker: ${trackerUrl}`);
    announce(`api: ${apiUrl}/api/v1`);
    announce(`dashboard: ${apiUrl}/dashboard/`);
    announce(`demo link: ${trackerUrl}/c/${code}?sub1=hello`);
    announce('ready');
  } catch (err) {
    log.fatal({ err }, 'start-up failed');
    process.stderr.write(`start-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
    await shutdown(1);
  }
}

// Run as a program (`npm start`, compose); imported (admin-api/main.ts) it only provides the role functions. Both
// sides are real paths: Node resolves symlinks in the module's URL but not in argv[1], so a checkout reached through
// a symlink would otherwise start nothing.
if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) await main();
