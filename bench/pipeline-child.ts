/**
 * The pipeline under test, as a child process of the bench with its own chDB directory
 * (`node --import tsx bench/pipeline-child.ts`; env as tracker/main.ts plus `BENCH_CHDB_DIR` and
 * `BENCH_POLL_MS`). It runs `startPipeline` from tracker/index.ts and, because chDB belongs to one
 * process, also does the bench's counting: every `BENCH_POLL_MS` it asks ClickHouse how many clicks the
 * `clicks` table holds (`count()` on a MergeTree is answered from part metadata, so polling is cheap and
 * barely disturbs the pipeline) and sends `{ type: 'count', t_ms, count, query_ms }` over IPC; every 2 s it
 * also sends what a report counts (`{ type: 'report', count }`, via createReports) so the bench can check
 * the two agree. Sends `{ type: 'ready' }` once the pipeline runs.
 */
import path from 'node:path';
import {
  createClickHouse,
  createLogger,
  createRedis,
  createSql,
  loadConfig,
  migrateClickHouse,
  migratePostgres,
} from '../infra/index.ts';
import { createReports, startPipeline } from '../tracker/index.ts';

const config = loadConfig(process.env);
const chdbDir = process.env.BENCH_CHDB_DIR ?? path.join(config.DATA_DIR, 'clickhouse');
const pollMs = Number(process.env.BENCH_POLL_MS ?? 50);
if (!config.DATABASE_URL || !config.REDIS_URL) throw new Error('DATABASE_URL and REDIS_URL are required');
const logger = createLogger({ level: config.LOG_LEVEL });

const ch = createClickHouse({ chdbPath: chdbDir });
await migrateClickHouse(ch);
const sql = createSql(config.DATABASE_URL, { max: 4 });
await migratePostgres(sql);
const redis = createRedis(config.REDIS_URL, { cluster: config.REDIS_CLUSTER });
const pipeline = await startPipeline({ config, logger, ch, sql, redis });

const reports = createReports(ch);
const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

/** Clicks stored in ClickHouse now. */
async function countClicks(): Promise<number> {
  const rs = await ch.query({ query: 'SELECT count() AS n FROM clicks', format: 'JSONEachRow' });
  const [row] = (await rs.json()) as Array<{ n: string | number }>;
  return Number(row?.n ?? 0);
}

/** Clicks a report counts now (the definition of "queryable" for a user). */
async function reportClicks(): Promise<number | null> {
  const q = { group_by: 'day' as const, from: day(-1), to: day(1), tz: 'UTC', page: 1, per_page: 10 };
  const { rows } = await reports.report(q);
  // Valid or not: a fraud-flagged click is queryable too (in invalid_clicks).
  return rows.reduce((s, r) => s + r.clicks + r.invalid_clicks, 0);
}

let stopping = false;
let lastReport = 0;
process.send?.({ type: 'ready', port: 0 });
void (async () => {
  while (!stopping) {
    const t0 = performance.now();
    try {
      const count = await countClicks();
      process.send?.({
        type: 'count',
        t_ms: performance.timeOrigin + performance.now(),
        count,
        query_ms: performance.now() - t0,
      });
    } catch (err) {
      logger.warn({ err: String(err) }, 'bench count query failed');
    }
    if (performance.now() - lastReport >= 2_000) {
      lastReport = performance.now();
      const count = await reportClicks().catch(() => null);
      if (count !== null) process.send?.({ type: 'report', count });
    }
    const wait = pollMs - (performance.now() - t0);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
})();

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await pipeline.close();
  await sql.end({ timeout: 2 });
  redis.disconnect();
  await ch.close();
  if (process.connected) process.disconnect();
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.on('disconnect', () => void stop());
