/**
 * A quick, focused pipeline measurement (not part of `npm run bench`): fills the click streams with a
 * backlog of synthetic clicks written exactly as the ingest writes them (group-commit entries of
 * `--per-entry` clicks, Zipf links, 20,000 client addresses), then runs the pipeline in this process
 * until ClickHouse (chDB) holds every row, and prints one JSON line:
 * rows/s, CPU µs per row of this process (all threads: pipeline, fraud pool, chDB; also per thread, `main` being
 * the event loop, `node-<tid>` V8 and libuv threads, where chDB runs its queries) and of
 * redis-server (from /proc), and the wall time; `DRAIN_COMMANDSTATS=1` adds Redis time per command.
 *
 *   flock /tmp/bench.lock node --import tsx bench/pipeline-drain.ts [--clicks=100000] [--per-entry=32]
 *   [--profile=/tmp/drain.cpuprofile]   (the event loop thread during the drain; summarize with bench/profile.ts)
 *
 * It starts its own embedded Postgres and redis-server in a temporary directory.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  createClickHouse,
  createLogger,
  createRedis,
  createSql,
  loadConfig,
  migrateClickHouse,
  migratePostgres,
  redisKeys,
  startEmbeddedPostgres,
  startLocalRedis,
} from '../infra/index.ts';
import { type ClickEvent, encodeClick, entryFields, startPipeline } from '../tracker/index.ts';
import { cpuSeconds } from './procs.ts';
import { seed } from './seed.ts';
import { clickPaths, clientIps, mulberry32 } from './zipf.ts';

const { values: args } = parseArgs({
  options: {
    clicks: { type: 'string', default: '100000' },
    'per-entry': { type: 'string', default: '32' },
    partitions: { type: 'string', default: '2' },
    profile: { type: 'string' },
  },
});
const N = Number(args.clicks);
const PER_ENTRY = Number(args['per-entry']);
const PARTITIONS = Number(args.partitions);

/** CPU seconds of this process's threads so far, summed by thread name (/proc/self/task/<tid>/stat). */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/[0-9]+$/, '');
      const name = Number(tid) === process.pid ? 'main' : comm === 'node' ? `node-${tid}` : comm;
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
    } catch {}
  }
  return out;
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'pipeline-drain-'));
const redisSvc = await startLocalRedis({ dir: path.join(tmp, 'redis'), persistent: false });
const pg = await startEmbeddedPostgres({ dir: path.join(tmp, 'pg'), database: 'drain' });
try {
  const config = loadConfig({
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    DATA_DIR: tmp,
    DATABASE_URL: pg.url,
    REDIS_URL: redisSvc.url,
    REDIS_PREFIX: 'drain:',
    STREAM_PARTITIONS: String(PARTITIONS),
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(PIPELINE_|FRAUD_)/.test(k))),
  });
  const sql = createSql(pg.url, { max: 4 });
  await migratePostgres(sql);
  const seeded = await seed(sql, { links: 10_000, campaigns: 20, affiliates: 200 });
  const [{ id: firstAffiliate } = { id: 0 }] = await sql<{ id: number }[]>`
    select min(id)::int as id from users where role = 'affiliate'`;
  const ch = createClickHouse({ chdbPath: path.join(tmp, 'clickhouse') });
  await migrateClickHouse(ch);
  const redis = createRedis(redisSvc.url);
  const keys = redisKeys(config.REDIS_PREFIX);

  // The backlog, as the ingest would have written it (link i → campaign i % 20, affiliate (i*7) % 200, see seed.ts).
  const paths = clickPaths(seeded.codes);
  const ips = clientIps();
  const rand = mulberry32(3);
  const codeIndex = new Map(seeded.codes.map((c, i) => [c, i]));
  const t0 = Date.now() - 3_600_000;
  const uas = [
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1',
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36',
  ];
  let p = redis.pipeline();
  for (let i = 0; i < N; i += PER_ENTRY) {
    const lines: string[] = [];
    for (let j = i; j < Math.min(N, i + PER_ENTRY); j++) {
      const pth = paths[Math.floor(rand() * paths.length)]!;
      const [route, query = ''] = pth.split('?');
      const code = route!.slice(3);
      const li = codeIndex.get(code)!;
      const ts = t0 + Math.floor((j * 3_600_000) / N);
      const c: ClickEvent = {
        click_id: crypto.randomUUID(),
        ts_ms: ts,
        received_ms: ts,
        link_code: code,
        campaign_id: seeded.campaign_ids[li % seeded.campaign_ids.length]!,
        affiliate_id: firstAffiliate + ((li * 7) % 200),
        advertiser_id: seeded.advertiser_id,
        ip: ips[Math.floor(rand() * ips.length)]!,
        method: 'GET',
        query,
        user_agent: uas[j % uas.length]!,
        referer: '',
        accept_language: 'en-US,en;q=0.9',
        purpose: '',
        invalid_reason: '',
        landing_id: 0,
      };
      lines.push(encodeClick(c));
    }
    p.xadd(keys.clicks((i / PER_ENTRY) % PARTITIONS), '*', ...entryFields(lines));
    if ((i / PER_ENTRY) % 500 === 499) {
      await p.exec();
      p = redis.pipeline();
    }
  }
  await p.exec();

  const logger = createLogger({ level: 'warn' });
  const redisPid = redisSvc.process.pid ?? 0;
  const r0 = cpuSeconds(redisPid);
  const u0 = process.cpuUsage();
  const th0 = threadCpu();
  const w0 = performance.now();
  await redis.config('RESETSTAT');
  // --profile=FILE: a CPU profile of the event loop thread over the drain only (not the set-up).
  const inspector = args.profile ? new Session() : undefined;
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) =>
      inspector!.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))),
    );
  if (inspector) {
    inspector.connect();
    await post('Profiler.enable');
    await post('Profiler.start');
  }
  const pipeline = await startPipeline({ config, logger, ch, sql, redis });
  let count = 0;
  while (count < N) {
    await new Promise((r) => setTimeout(r, 50));
    const rs = await ch.query({ query: 'SELECT count() AS n FROM clicks', format: 'JSONEachRow' });
    count = Number(((await rs.json()) as Array<{ n: string }>)[0]!.n);
    if (performance.now() - w0 > 300_000) throw new Error(`timed out at ${count}/${N}`);
  }
  const wall = (performance.now() - w0) / 1000;
  if (inspector) {
    const { profile } = (await post('Profiler.stop')) as { profile: object };
    writeFileSync(args.profile!, JSON.stringify(profile));
    inspector.disconnect();
  }
  const u = process.cpuUsage(u0);
  const redisCpu = cpuSeconds(redisPid) - r0;
  const th1 = threadCpu();
  const threads: Record<string, number> = {};
  for (const [name, cpu] of th1) threads[name] = Number((((cpu - (th0.get(name) ?? 0)) * 1e6) / N).toFixed(1));
  const steps = pipeline.stats().steps;
  await pipeline.close();
  const line = {
    clicks: N,
    per_entry: PER_ENTRY,
    batch_size: config.PIPELINE_BATCH_SIZE,
    seconds: Number(wall.toFixed(2)),
    rows_per_s: Math.round(N / wall),
    pipeline_cpu_us_per_row: Number(((u.user + u.system) / N).toFixed(1)),
    redis_cpu_us_per_row: Number(((redisCpu * 1e6) / N).toFixed(1)),
    thread_cpu_us_per_row: threads,
    /** Wall time in each pipeline step per row (µs; includes waiting on Redis, the pool and chDB). */
    step_us_per_row: Object.fromEntries(
      Object.entries(steps).map(([name, t]) => [name, Number(((t.total_ms * 1000) / N).toFixed(1))]),
    ),
    redis_used_memory_mb: Math.round(Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0) / 1048576),
  };
  console.log(JSON.stringify(line));
  if (process.env.DRAIN_COMMANDSTATS) {
    for (const l of (await redis.info('commandstats')).split('\n')) {
      const m = /cmdstat_(\w+(?:\|\w+)?):calls=(\d+),usec=(\d+)/.exec(l);
      if (m && Number(m[3]) > 10_000) console.log(`${m[1]}: ${m[2]} calls, ${(Number(m[3]) / N).toFixed(1)} µs/row`);
    }
  }
  redis.disconnect();
  await sql.end({ timeout: 1 });
  await ch.close();
} finally {
  await redisSvc.stop();
  await pg.stop();
  rmSync(tmp, { recursive: true, force: true });
}
