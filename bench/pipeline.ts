/**
 * The pipeline scenario (harness side): a tracker and the pipeline (bench/pipeline-child.ts, own chDB)
 * run as child processes; the bench drives clicks and compares, over time, the clicks the tracker
 * acknowledged with the clicks stored in ClickHouse (checked against a report at the end).
 *
 * 1. Click-to-queryable latency at a moderate constant rate: every acknowledged click's answer time is
 *    recorded; the child reports the counted total every 50 ms. Streams are consumed in order, so the
 *    k-th acknowledged click is queryable when the count first reaches k: latency(k) = t(count ≥ k) −
 *    t(answer k). Resolution is the poll interval plus the report query's own duration.
 * 2. Throughput with clicks arriving: the pipeline is stopped, a backlog is built at full click rate, then
 *    the pipeline restarts while clicks keep arriving at ~50% of the click maximum; rows/s is the counted
 *    total's slope until it catches up, i.e. what the pipeline does when it is the bottleneck.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { type Redis, redisKeys } from '../infra/index.ts';
import { measuredRedisPid, runAutocannon } from './load.ts';
import { cpuSeconds, type ServerProc, startServer } from './procs.ts';
import type { PipelineResult } from './results.ts';
import { percentile } from './stats.ts';

export interface PipelineScenarioOptions {
  env: Record<string, string>;
  tmp: string;
  redis: Redis;
  prefix: string;
  partitions: number;
  /** Zipf setupRequest module. */
  setup: string;
  clickMaxRps?: number;
  latency_s: number;
  load_s: number;
  connections: number;
  workers: number;
  startTracker(): Promise<ServerProc>;
  /** Extra node flags for the pipeline child (e.g. --cpu-prof). */
  nodeArgs?: string[];
  phase(name: string): (elapsed_s: number) => void;
  done(seconds: number): void;
  say(msg: string): void;
}

interface Counter {
  proc: ServerProc;
  /** Last total a report gave (null until one arrived). */
  report: number | null;
  /** Each count report, with the CPU seconds used so far by the pipeline child and by redis-server when it arrived. */
  samples: Array<{ t_ms: number; count: number; query_ms: number; cpu_s: number; redis_cpu_s: number }>;
  latest(): number;
}

async function startPipelineChild(o: PipelineScenarioOptions, chdbDir: string, redisPid = 0): Promise<Counter> {
  const proc = await startServer({
    name: 'pipeline',
    entry: 'bench/pipeline-child.ts',
    env: { ...o.env, BENCH_CHDB_DIR: chdbDir, BENCH_POLL_MS: '50' },
    nodeArgs: o.nodeArgs,
    timeoutMs: 120_000,
  });
  const samples: Counter['samples'] = [];
  const c: Counter = { proc, samples, report: null, latest: () => samples.at(-1)?.count ?? 0 };
  proc.child.on('message', (m: unknown) => {
    const msg = m as { type?: string; t_ms: number; count: number; query_ms: number };
    if (msg?.type === 'count') {
      const cpu = { cpu_s: cpuSeconds(proc.pid), redis_cpu_s: redisPid ? cpuSeconds(redisPid) : 0 };
      samples.push({ t_ms: msg.t_ms, count: msg.count, query_ms: msg.query_ms, ...cpu });
    }
    if (msg?.type === 'report') c.report = msg.count;
  });
  return c;
}

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitCount(c: Counter, target: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (c.latest() >= target) return true;
    await sleep(50);
  }
  return false;
}

/** Sum of consumer-group lag (entries not yet delivered) over the click streams; 0 when unknown. */
async function streamLag(redis: Redis, prefix: string, partitions: number): Promise<number> {
  const keys = redisKeys(prefix);
  let lag = 0;
  for (let p = 0; p < partitions; p++) {
    const groups = (await redis.xinfo('GROUPS', keys.clicks(p)).catch(() => [])) as unknown[][];
    for (const g of groups) {
      for (let i = 0; i + 1 < g.length; i += 2) {
        if (g[i] === 'lag' && typeof g[i + 1] === 'number') lag += g[i + 1] as number;
      }
    }
  }
  return lag;
}

/**
 * Latency of each acknowledged click until it is counted, from answer times (epoch ms, ascending)
 * and count samples (ascending in time), relative to `baseline` (the count before the first click).
 */
export function queueLatencies(
  answers: readonly number[],
  samples: ReadonlyArray<{ t_ms: number; count: number }>,
  baseline: number,
): number[] {
  const out: number[] = [];
  let s = 0;
  for (let k = 0; k < answers.length; k++) {
    while (s < samples.length && samples[s]!.count - baseline < k + 1) s++;
    if (s >= samples.length) break;
    out.push(Math.max(0, samples[s]!.t_ms - answers[k]!));
  }
  return out;
}

/** Runs both phases; see the module comment. */
export async function runPipelineScenario(o: PipelineScenarioOptions): Promise<PipelineResult> {
  const chdbDir = path.join(o.tmp, 'chdb');
  mkdirSync(chdbDir, { recursive: true });
  const tracker = await o.startTracker();
  let pipe: Counter | undefined;
  try {
    pipe = await startPipelineChild(o, chdbDir);
    await waitCount(pipe, 0, 10_000);
    await sleep(500);

    /** Clicks at a constant `rate` for `duration_s`, the time of each 302 (epoch ms) pushed to `answered`. */
    const paced = (rate: number, duration_s: number, onTick: (s: number) => void, answered: number[]) =>
      runAutocannon({
        url: `http://127.0.0.1:${tracker.port}`,
        setupRequest: o.setup,
        expectStatus: 302,
        connections: 16,
        workers: 0,
        duration_s,
        rate,
        serverPids: [tracker.pid],
        onTick,
        onResponse: (status) => {
          if (status === 302) answered.push(now());
        },
      });

    // Phase 1: click-to-queryable at a moderate constant rate.
    const latRate = Math.max(200, Math.min(5_000, Math.round(0.25 * (o.clickMaxRps ?? 4_000))));
    let tick = o.phase(`pipeline: click-to-queryable at ${latRate}/s`);
    const baseline = pipe.latest();
    const answers: number[] = [];
    await paced(latRate, o.latency_s, tick, answers);
    const caughtUp = await waitCount(pipe, baseline + answers.length, 30_000);
    const lat = Float64Array.from(queueLatencies(answers, pipe.samples, baseline)).sort();
    o.say(
      `pipeline latency: ${lat.length}/${answers.length} clicks counted${caughtUp ? '' : ' (did not catch up in 30 s)'}, ` +
        `p50 ${percentile(lat, 50).toFixed(0)} ms, p99 ${percentile(lat, 99).toFixed(0)} ms`,
    );
    o.done(o.latency_s);

    // Phase 2: backlog at full click rate with the pipeline stopped, then restart it under ~50% load.
    tick = o.phase('pipeline: building a backlog (pipeline stopped)');
    await pipe.proc.stop();
    const countedBefore = pipe.latest();
    const backlog = await runAutocannon({
      url: `http://127.0.0.1:${tracker.port}`,
      setupRequest: o.setup,
      expectStatus: 302,
      connections: o.connections,
      workers: o.workers,
      duration_s: o.load_s,
      serverPids: [tracker.pid],
      onTick: tick,
    });
    o.done(o.load_s);
    const backlogClicks = Math.round(backlog.rps * backlog.duration_s);
    const arriveRate = Math.max(200, Math.round(0.5 * (o.clickMaxRps ?? backlog.rps)));
    tick = o.phase(`pipeline: draining ${backlogClicks} clicks while ${arriveRate}/s arrive`);
    // The bench's own redis-server, to charge its CPU per row (0 when Redis is not ours: a REDIS_URL server's
    // process id names nothing on this host).
    const redisPid = measuredRedisPid() ?? 0;
    pipe = await startPipelineChild(o, chdbDir, redisPid);
    const arrivals: number[] = [];
    let maxStreamLag = 0;
    const lagTimer = setInterval(() => {
      void streamLag(o.redis, o.prefix, o.partitions).then((l) => {
        maxStreamLag = Math.max(maxStreamLag, l);
      });
    }, 250);
    await paced(arriveRate, o.load_s, tick, arrivals);
    const target = countedBefore + backlogClicks + arrivals.length;
    await waitCount(pipe, target - Math.ceil(target * 0.001), 60_000);
    clearInterval(lagTimer);
    o.done(o.load_s);

    // The slope while the pipeline was the bottleneck: from its first counted batch until it caught up.
    const s = pipe.samples;
    const first = s.find((x) => x.count > countedBefore) ?? s[0];
    // Arrivals and samples are both in time order: walk them together.
    const expected: number[] = [];
    let a = 0;
    for (const x of s) {
      while (a < arrivals.length && arrivals[a]! <= x.t_ms) a++;
      expected.push(countedBefore + backlogClicks + a);
    }
    const caughtAt = s.findIndex((x, i) => x.count >= expected[i]!);
    const caught = caughtAt >= 0 ? s[caughtAt] : s.at(-1);
    const rows = first && caught && caught.t_ms > first.t_ms ? caught.count - first.count : 0;
    const secs = first && caught ? (caught.t_ms - first.t_ms) / 1000 : 0;
    // CPU per row between the same two samples: the pipeline child (all its threads: event loop, fraud pool,
    // chDB) and redis-server (which also takes the arriving clicks' XADDs, a small share).
    const perRow = (d: number) => (rows > 0 && first && caught ? (d * 1e6) / rows : Number.NaN);
    const pipeUs = perRow((caught?.cpu_s ?? 0) - (first?.cpu_s ?? 0));
    const redisUs = redisPid ? perRow((caught?.redis_cpu_s ?? 0) - (first?.redis_cpu_s ?? 0)) : Number.NaN;
    const maxLag = s.reduce((m, x, i) => Math.max(m, expected[i]! - x.count), 0);
    // Let one more report poll land after catching up, then compare it with the table count.
    await sleep(2_200);
    const agree =
      pipe.report === null
        ? 'no report total received'
        : pipe.report === pipe.latest()
          ? `a report counted the same ${pipe.report} clicks`
          : `a report counted ${pipe.report} clicks vs ${pipe.latest()} rows (reports lag or dedupe)`;
    const queryMs = s.length ? s.reduce((a, x) => a + x.query_ms, 0) / s.length : 0;
    const cpuText = `CPU per row: pipeline ${pipeUs.toFixed(1)} µs, redis-server ${redisUs.toFixed(1)} µs`;
    o.say(
      `pipeline: ${rows} rows in ${secs.toFixed(1)} s = ${Math.round(rows / Math.max(secs, 1e-9))} rows/s; ${cpuText}`,
    );
    return {
      rows_per_s: secs > 0 ? rows / secs : 0,
      offered_clicks_per_s: arriveRate,
      max_lag_events: maxLag,
      max_stream_lag_entries: maxStreamLag,
      latency_ms: {
        p50: percentile(lat, 50),
        p95: percentile(lat, 95),
        p99: percentile(lat, 99),
        max: lat.length ? lat[lat.length - 1]! : Number.NaN,
      },
      latency_rate_per_s: latRate,
      latency_samples: lat.length,
      method:
        'clicks acknowledged by the tracker (answer times) against count() of the ClickHouse clicks table, polled ' +
        `every 50 ms (mean query ${queryMs.toFixed(1)} ms); throughput = counted rows/s while draining a ` +
        `${backlogClicks}-click backlog with ${arriveRate} clicks/s arriving (${secs.toFixed(1)} s; ${cpuText}); ` +
        `at the end ${agree}.`,
    };
  } finally {
    await pipe?.proc.stop();
    await tracker.stop();
  }
}
