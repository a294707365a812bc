/**
 * `npm run bench [-- --quick] [--only=click,koa] [--cpu-prof] [--workers=N] [--connections=N] [--soak=S]
 *   [--rate=R] [--out=DIR]` (see bench/README.md)
 *
 * Starts its own services (private redis-server, embedded Postgres — or a fresh database on
 * `DATABASE_URL` and a prefix on `REDIS_URL` when set), seeds 10,000 links, then measures on this machine,
 * in one run: the ceiling (bare uWS 302, wrk + autocannon), our click path (tracker/main.ts), the usual
 * stack (Koa + ioredis), conversions, the click path at a constant ~70% of its maximum (latency + memory
 * soak) and the bare 302 at the same rate (the latency floor of the machine), the pipeline (rows/s, lag,
 * click-to-queryable latency), scale-out with 1 and 2 tracker processes, and the system: the `npm start` stack
 * (pipeline consuming) under stepped open-loop click rates, for the highest rate it sustains (bench/system.ts).
 * Writes bench/results/<date>.json, latest.json, latest.md and latest.svg (--quick: under <tmp>/tracker-bench-quick).
 * Full run ≈ 20 minutes; --quick ≈ 4 minutes (a smoke test, numbers indicative only).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { createRedis, createSql, freePort, migratePostgres, type Redis } from '../infra/index.ts';
import { writeConversionSetupModule } from './conversions.ts';
import { type LoadResult, measuredRedisPid, runAutocannon, runWrk, withXaddCount } from './load.ts';
import { memoryAtRest, sampleMemory } from './memory.ts';
import { runOpenLoop } from './open-loop.ts';
import { args, CONNECTIONS, D, OUT_DIR, PARTITIONS, planned, QUICK, WORKERS, want } from './options.ts';
import { runPipelineScenario } from './pipeline.ts';
import { memoryMb, ROOT, type ServerProc, startServer } from './procs.ts';
import { profileNotes } from './profile.ts';
import { renderMarkdown, writeResults } from './report.ts';
import { type BenchResults, type MemoryResult, machineInfo } from './results.ts';
import { type Seeded, seed } from './seed.ts';
import { resetStreams, services } from './services.ts';
import { runSystemScenario } from './system.ts';
import { SYSTEM_RATES } from './system-analysis.ts';
import { clickPaths, clientIps, writeSetupRequestModule, writeWrkScript } from './zipf.ts';

if (args.render) {
  const dir = path.resolve(args.out ?? path.join(ROOT, 'bench', 'results'));
  const res = JSON.parse(readFileSync(path.join(dir, 'latest.json'), 'utf8')) as BenchResults;
  const findingsFile = path.join(ROOT, 'bench', 'findings.md');
  res.findings = existsSync(findingsFile) ? readFileSync(findingsFile, 'utf8') : undefined;
  process.stdout.write(`re-rendered: ${writeResults(dir, res).join(', ')}\n`);
  process.exit(0);
}

const multibar = new cliProgress.MultiBar(
  {
    format: ' {bar} {percentage}% | {value}/{total} s | {phase}',
    hideCursor: true,
    clearOnComplete: false,
    stopOnComplete: false,
    etaBuffer: 30,
  },
  cliProgress.Presets.shades_classic,
);
const bar = multibar.create(planned, 0, { phase: 'starting services' });
let progressBase = 0;
const say = (msg: string) => multibar.log(`${msg}\n`);
function phase(name: string): (elapsed: number) => void {
  bar.update(Math.min(planned, progressBase), { phase: name });
  const base = progressBase;
  return (elapsed) => bar.update(Math.min(planned, Math.round(base + elapsed)), { phase: name });
}
function done(seconds: number): void {
  progressBase += seconds;
  bar.update(Math.min(planned, progressBase));
}

const cleanup: Array<() => Promise<void>> = [];
const notes: string[] = [];
const scenarios: BenchResults['scenarios'] = [];

function trackerEnv(base: Record<string, string>, port: number): Record<string, string> {
  return { ...base, TRACKER_PORT: String(port) };
}

async function startTrackers(n: number, env: Record<string, string>, cpuProf: boolean): Promise<ServerProc[]> {
  const port = await freePort();
  const procs: ServerProc[] = [];
  for (let i = 0; i < n; i++) {
    procs.push(
      await startServer({
        name: `tracker#${i}`,
        entry: 'tracker/main.ts',
        env: trackerEnv(env, port),
        nodeArgs: cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${path.join(OUT_DIR, 'profiles')}`] : [],
        timeoutMs: 60_000,
      }),
    );
  }
  return procs;
}

async function stopAll(procs: ServerProc[]): Promise<void> {
  await Promise.all(procs.map((p) => p.stop()));
}

/** Closed-loop max-throughput click run against `port` with the Zipf path table. */
function clickLoad(port: number, pids: number[], setup: string, duration: number, onTick?: (s: number) => void) {
  return runAutocannon({
    url: `http://127.0.0.1:${port}`,
    setupRequest: setup,
    expectStatus: 302,
    connections: CONNECTIONS,
    workers: WORKERS,
    duration_s: duration,
    serverPids: pids,
    onTick,
    headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36' },
  });
}

const WRK = ['/usr/bin/wrk', '/usr/local/bin/wrk'].find((p) => existsSync(p));

/** One wrk run (Zipf Lua script) against `port`; `WRK` must be set. */
function wrkLoad(port: number, pids: number[], wrkScript: string, duration_s: number, threads = Math.max(1, WORKERS)) {
  return runWrk({
    wrkPath: WRK!,
    url: `http://127.0.0.1:${port}`,
    script: wrkScript,
    serverPids: pids,
    threads,
    connections: CONNECTIONS,
    duration_s,
  });
}

/**
 * Maximum throughput of one server with both load generators: wrk (Zipf Lua script) when installed,
 * then autocannon (Zipf setupRequest module); each after a short warm-up. Records `<id>-wrk` and `<id>`.
 */
async function maxBoth(
  id: string,
  label: string,
  procs: ServerProc[],
  setup: string,
  wrkScript: string,
  duration: number,
  countXadds?: Redis,
): Promise<LoadResult> {
  const port = procs[0]!.port;
  const pids = procs.map((p) => p.pid);
  const measured = (run: () => Promise<LoadResult>) => (countXadds ? withXaddCount(countXadds, run) : run());
  let tick = phase(`${label} (wrk)`);
  if (WRK) {
    await wrkLoad(port, pids, wrkScript, D.warm, 1);
    tick(D.warm);
    const l = await measured(() => wrkLoad(port, pids, wrkScript, duration));
    record(`${id}-wrk`, `${label} (wrk)`, l);
  } else record(`${id}-wrk`, `${label} (wrk)`, undefined, 'wrk not installed');
  done(duration + D.warm);
  tick = phase(`${label} (autocannon)`);
  await clickLoad(port, pids, setup, D.warm);
  const l = await measured(() => clickLoad(port, pids, setup, duration, (s) => tick(D.warm + s)));
  record(id, `${label} (autocannon)`, l);
  done(duration + D.warm);
  return l;
}

function record(id: string, label: string, load: LoadResult | undefined, skipped?: string): void {
  scenarios.push(load ? { id, label, load } : { id, label, skipped: skipped ?? 'not run' });
  if (load) {
    say(
      `${label}: ${Math.round(load.rps)} req/s, p99 ${load.latency_ms.p99} ms, server CPU ${load.server_cpu_cores.toFixed(2)}, ` +
        `loadgen CPU ${load.loadgen_cpu_cores.toFixed(2)}, errors ${load.errors}`,
    );
  } else say(`${label}: skipped (${skipped})`);
}

async function main(): Promise<void> {
  const started = new Date();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tracker-bench-'));
  cleanup.push(async () => rmSync(tmp, { recursive: true, force: true }));
  const machine = machineInfo();
  if (args['cpu-prof']) {
    rmSync(path.join(OUT_DIR, 'profiles'), { recursive: true, force: true });
    mkdirSync(path.join(OUT_DIR, 'profiles'), { recursive: true });
  }

  const svc = await services(tmp, (stop) => {
    cleanup.push(stop);
  });
  const sql = createSql(svc.dbUrl, { max: 2 });
  cleanup.push(() => sql.end({ timeout: 1 }));
  await migratePostgres(sql);
  const seeded: Seeded = await seed(sql, { links: 10_000, campaigns: 20, affiliates: 200 });
  const redis = createRedis(svc.redisUrl, { cluster: svc.redisCluster });
  cleanup.push(async () => {
    await resetStreams(redis, svc.prefix).catch(() => {});
    redis.disconnect();
  });
  const paths = clickPaths(seeded.codes);
  const setup = writeSetupRequestModule(tmp, paths);
  const wrkScript = writeWrkScript(tmp, paths);
  const baseEnv: Record<string, string> = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    DATA_DIR: path.join(tmp, 'data'),
    DATABASE_URL: svc.dbUrl,
    REDIS_URL: svc.redisUrl,
    REDIS_CLUSTER: String(svc.redisCluster),
    REDIS_PREFIX: svc.prefix,
    STREAM_PARTITIONS: String(PARTITIONS),
    BIND_HOST: '127.0.0.1',
  };
  say(
    `machine: ${machine.cpu}, ${machine.cores} cores; load generator: autocannon with ${WORKERS} worker thread(s), ` +
      `${CONNECTIONS} connections; ${QUICK ? 'QUICK smoke run' : 'full run'}`,
  );

  // 1. Ceiling: bare uWS 302, measured with wrk (multi-threaded C) and with autocannon.
  if (want('ceiling')) {
    const ceil = await startServer({ name: 'ceiling', entry: 'bench/ceiling-server.ts', env: trackerEnv(baseEnv, 0) });
    try {
      await maxBoth('ceiling', 'ceiling: bare uWS 302', [ceil], setup, wrkScript, D.ceiling);
    } finally {
      await ceil.stop();
    }
  }

  // 2, 4, 6, 7. Our click path, conversions, constant-rate latency + memory soak — one tracker process.
  const trackerAvailable = existsSync(path.join(ROOT, 'tracker', 'main.ts'));
  let clickMax: number | undefined;
  let memory: MemoryResult | undefined;
  if (!trackerAvailable) {
    for (const [id, label] of [
      ['click', 'our click path'],
      ['conversion', 'conversions (POST /api/v1/track/conversion)'],
      ['click-fixed-rate', 'our click path at ~70% of max'],
    ] as const) {
      if (want(id.split('-')[0]!)) record(id, label, undefined, 'tracker/main.ts is not on this branch yet');
    }
  } else if (want('click') || want('conversion') || want('fixed')) {
    const [tracker] = await startTrackers(1, baseEnv, args['cpu-prof'] ?? false);
    const t = tracker!;
    await new Promise((r) => setTimeout(r, 500));
    const idleRss = memoryMb(t.pid).rss_mb;
    try {
      if (want('click')) {
        await resetStreams(redis, svc.prefix);
        const l = await maxBoth('click', 'our click path', [t], setup, wrkScript, D.click, redis);
        clickMax = l.rps;
        await resetStreams(redis, svc.prefix);
      }
      if (want('conversion')) {
        const tick = phase('conversions');
        const l = await runAutocannon({
          url: `http://127.0.0.1:${t.port}/api/v1/track/conversion`,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-postback-token': seeded.postback_token },
          setupRequest: writeConversionSetupModule(tmp),
          expectStatus: 200,
          connections: CONNECTIONS,
          workers: WORKERS,
          duration_s: D.conversion,
          serverPids: [t.pid],
          onTick: tick,
        });
        record('conversion', 'conversions (POST /api/v1/track/conversion)', l);
        if (l.errors > 0 && l.rps === 0) notes.push('Every conversion post was refused: check the token scheme.');
        await resetStreams(redis, svc.prefix);
        done(D.conversion);
      }
      if (want('fixed')) {
        const rate = args.rate ? Number(args.rate) : Math.max(100, Math.round(0.7 * (clickMax ?? 10_000)));
        const tick = phase(`click path at ${rate}/s (constant rate)`);
        const sampler = sampleMemory(t.pid, () => {
          // Redis would otherwise hold every click of the soak; the pipeline is not running here.
          void resetStreams(redis, svc.prefix).catch(() => {});
        });
        const openLoop = (port: number, pid: number, duration_s: number, onTick?: (s: number) => void) =>
          runOpenLoop({
            port,
            rate,
            duration_s,
            threads: WORKERS,
            connections: 64,
            paths,
            ips: clientIps(paths.length),
            expectStatus: 302,
            serverPids: [pid],
            onTick,
          });
        const l = await withXaddCount(redis, () => openLoop(t.port, t.pid, D.fixed, tick));
        sampler.stop();
        record('click-fixed-rate', `our click path at ${rate}/s (~70%)`, l);
        // The same generator at the same rate against the bare uWS 302: the part of the latency that is the
        // machine's and the generator's, not the tracker's (the noise floor of the p99 goal).
        const ceilTick = phase(`ceiling at ${rate}/s (constant rate)`);
        const ceil = await startServer({
          name: 'ceiling',
          entry: 'bench/ceiling-server.ts',
          env: trackerEnv(baseEnv, 0),
        });
        try {
          const c = await openLoop(ceil.port, ceil.pid, D.ceilingFixed, (s) => ceilTick(D.fixed + s));
          record('ceiling-fixed-rate', `ceiling: bare uWS 302 at ${rate}/s (same generator)`, c);
        } finally {
          await ceil.stop();
        }
        notes.push(
          args.rate
            ? `The constant rate (${rate}/s) was set with --rate.`
            : `The constant rate (${rate}/s) is 70% of the maximum autocannon reached on the click path ` +
                `(${clickMax === undefined ? 'not measured in this run: 10,000/s assumed' : 'a JavaScript generator like the open-loop one'}); ` +
                'wrk may have reached more (see the table).',
        );
        memory = sampler.result(idleRss, D.fixed);
        if (QUICK) notes.push('Memory flatness from a --quick run covers only seconds; the full run soaks 5 minutes.');
        done(D.fixed + D.ceilingFixed);
      } else memory = memoryAtRest(t.pid, idleRss);
    } finally {
      await t.stop();
      await resetStreams(redis, svc.prefix);
    }
  }

  // 3. The usual stack: Koa + ioredis.
  if (want('koa')) {
    const koa = await startServer({ name: 'koa', entry: 'bench/koa-stack.ts', env: trackerEnv(baseEnv, 0) });
    try {
      await maxBoth('koa', 'usual stack: Koa + ioredis', [koa], setup, wrkScript, D.koa);
    } finally {
      await koa.stop();
      await resetStreams(redis, svc.prefix);
    }
  }

  // 5. Pipeline: rows/s into ClickHouse with fraud scoring while clicks arrive, lag, click-to-queryable.
  let pipeline: BenchResults['pipeline'];
  if (want('pipeline')) {
    if (!trackerAvailable) notes.push('Pipeline not measured: tracker/main.ts is not on this branch yet.');
    else {
      try {
        pipeline = await runPipelineScenario({
          env: baseEnv,
          tmp,
          redis,
          prefix: svc.prefix,
          partitions: PARTITIONS,
          setup,
          clickMaxRps: clickMax,
          latency_s: D.pipeLatency,
          load_s: D.pipeLoad,
          connections: CONNECTIONS,
          workers: WORKERS,
          startTracker: async () => (await startTrackers(1, baseEnv, false))[0]!,
          nodeArgs: args['cpu-prof']
            ? ['--cpu-prof', `--cpu-prof-dir=${path.join(OUT_DIR, 'profiles', 'pipeline')}`]
            : [],
          phase,
          done,
          say,
        });
      } catch (err) {
        notes.push(`Pipeline scenario failed: ${(err as Error).message.split('\n')[0]}`);
        say(`pipeline: failed: ${(err as Error).message}`);
      }
      await resetStreams(redis, svc.prefix);
    }
  }

  // 8. Scale-out: 1 and 2 tracker processes on one port (SO_REUSEPORT). wrk when installed: the lighter
  // generator leaves the most CPU to the trackers on a small machine.
  let scaleOut: BenchResults['scale_out'];
  if (want('scale') && trackerAvailable) {
    scaleOut = [];
    const scaleLoad = (port: number, pids: number[], duration_s: number, onTick?: (s: number) => void) =>
      WRK ? wrkLoad(port, pids, wrkScript, duration_s) : clickLoad(port, pids, setup, duration_s, onTick);
    for (const n of [1, 2]) {
      const procs = await startTrackers(n, baseEnv, false);
      try {
        const tick = phase(`scale-out: ${n} tracker process(es)`);
        const pids = procs.map((p) => p.pid);
        await scaleLoad(procs[0]!.port, pids, D.warm);
        await resetStreams(redis, svc.prefix);
        const l = await scaleLoad(procs[0]!.port, pids, D.scale, (s) => tick(D.warm + s));
        scaleOut.push({
          processes: n,
          tool: l.tool,
          rps: l.rps,
          server_cpu_cores: l.server_cpu_cores,
          loadgen_cpu_cores: l.loadgen_cpu_cores,
        });
        say(`scale-out ${n}: ${Math.round(l.rps)} req/s, server CPU ${l.server_cpu_cores.toFixed(2)}`);
        done(D.scale + D.warm);
      } finally {
        await stopAll(procs);
        await resetStreams(redis, svc.prefix);
      }
    }
  }

  // 9. The system: the npm start stack with the pipeline consuming, stepped open-loop rates (bench/system.ts).
  let system: BenchResults['system'];
  if (want('system')) {
    if (!trackerAvailable) record('system-fixed-rate', 'system (npm start)', undefined, 'tracker/main.ts missing');
    else {
      try {
        system = await runSystemScenario({
          tmp,
          dbUrl: svc.dbUrl,
          redisUrl: svc.redisUrl,
          prefix: `${svc.prefix}sys:`,
          partitions: PARTITIONS,
          redis,
          redisPid: measuredRedisPid(),
          paths,
          ips: clientIps(paths.length),
          rates: SYSTEM_RATES,
          step_s: D.systemStep,
          warm_s: QUICK ? 5 : 15,
          latency_s: D.systemLatency,
          ceiling_s: D.systemCeiling,
          threads: WORKERS,
          connections: 64,
          startCeiling: () =>
            startServer({ name: 'ceiling', entry: 'bench/ceiling-server.ts', env: trackerEnv(baseEnv, 0) }),
          onCleanup: (fn) => {
            cleanup.push(fn);
          },
          phase,
          done,
          say,
        });
        if (system.latency) {
          const rate = Math.round(system.latency.target_rps ?? 0);
          record('system-fixed-rate', `system (npm start) at ${rate}/s (70 % of sustained)`, system.latency);
          if (system.ceiling_latency)
            record(
              'ceiling-system-rate',
              `ceiling: bare uWS 302 at ${rate}/s (same generator)`,
              system.ceiling_latency,
            );
        }
        say(`system: sustained ${system.sustained_rps} clicks/s`);
      } catch (err) {
        notes.push(`System scenario failed: ${(err as Error).message.split('\n')[0]}`);
        say(`system: failed: ${(err as Error).message}`);
      }
    }
  }

  if (args['cpu-prof']) notes.push(...profileNotes(path.join(OUT_DIR, 'profiles')));

  const results: BenchResults = {
    date: started.toISOString(),
    quick: QUICK,
    machine,
    scenarios,
    pipeline,
    system,
    memory,
    scale_out: scaleOut,
    notes: [
      `Load generators: autocannon (${WORKERS} worker threads) and wrk (${WORKERS} threads, Lua script), ` +
        `${CONNECTIONS} connections each, the same Zipf(s=1) traffic over 10,000 links with X-Forwarded-For from ` +
        '20,000 client addresses. Headline throughputs and ratios use one tool for all three servers (see ' +
        "load_generator). The constant-rate run uses the bench's own open-loop generator (bench/open-loop.ts, " +
        'wrk2-style: latency from when each request was due), not autocannon overallRate, which sends bursts.',
      ...notes,
    ],
  };
  const findingsFile = path.join(ROOT, 'bench', 'findings.md');
  if (existsSync(findingsFile)) results.findings = readFileSync(findingsFile, 'utf8');
  bar.update(planned, { phase: 'writing results' });
  multibar.stop();
  const files = writeResults(OUT_DIR, results);
  process.stdout.write(`\n${renderMarkdown(results)}\nwritten: ${files.join(', ')}\n`);
}

let exitCode = 0;
let cleaning: Promise<void> | undefined;
/** Runs every registered cleanup once (services, the system stack), last registered first. */
function runCleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
  })();
  return cleaning;
}
// Ctrl-C or a kill must not leave redis-server, Postgres or an npm start stack behind.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    multibar.stop();
    process.stderr.write(`bench: ${sig}, stopping everything it started\n`);
    void runCleanup().then(() => process.exit(130));
  });
}
try {
  await main();
} catch (err) {
  multibar.stop();
  process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
  exitCode = 1;
} finally {
  await runCleanup();
}
process.exit(exitCode);
