/**
 * The `system` scenario: the stack exactly as `npm start` runs it — `node --import tsx infra/start.ts` as a
 * child, i.e. one process with the pipeline (consuming, fraud scoring in piscina, inserting into chDB) and the
 * admin API, plus TRACKER_PROCESSES tracker processes beside it — on a private DATA_DIR, free ports, the
 * bench's Redis (own key prefix) and Postgres (already seeded). It then drives open-loop constant click rates
 * stepping up (bench/system-analysis.ts `SYSTEM_RATES`) and samples the pipeline's backlog every second to
 * find the highest rate the whole system sustains (definition: `judgeStep`), then measures redirect latency
 * at 70 % of that rate and, after the stack is stopped, the bare uWS 302 at the same rate with the same
 * generator. The question it answers is the one `npm start` + wrk asked: what does a click cost when
 * everything downstream of the 302 also runs on the machine?
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, type Redis, redisKeys } from '../infra/index.ts';
import type { LoadResult } from './load.ts';
import { runOpenLoop } from './open-loop.ts';
import { cpuSeconds, ROOT, type ServerProc } from './procs.ts';
import {
  type BacklogSample,
  bisectRate,
  groupBacklog,
  judgeStep,
  type StepVerdict,
  streamEntriesAdded,
  usPerClick,
} from './system-analysis.ts';

/**
 * Browser User-Agents sent in turn (none is a bot to `isbot`, so fraud scoring treats the traffic as human
 * and every click takes the full scoring path, as real traffic does).
 */
export const BROWSER_USER_AGENTS: string[] = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0',
];

/** One rate step: what was offered and answered, the backlog, the verdict and CPU per click (µs). */
export interface SystemStep {
  rate: number;
  duration_s: number;
  errors: number;
  p50_ms: number;
  p99_ms: number;
  /** Clicks answered 302 per second of wall time, until the last answer came (≤ rate). */
  achieved_rps: number;
  /** Clicks per `clicks:{p}` stream entry over the step (the tracker's group commit). */
  clicks_per_entry: number;
  /** Clicks the pipeline acknowledged during the step: answered − growth of the backlog. */
  processed_clicks: number;
  verdict: StepVerdict;
  /** Backlog (clicks) sampled every second: [s since step start, clicks]. */
  backlog: Array<[number, number]>;
  /** CPU µs per answered click, tracker processes. */
  tracker_us_per_click: number;
  /** CPU µs per processed click, the start.ts process (pipeline + fraud pool + chDB + idle admin API). */
  pipeline_process_us_per_click: number;
  /** CPU µs per processed click, redis-server (also serves the tracker's XADDs). */
  redis_us_per_click: number;
  /** Whether this step was the single bisection between the last good and the first failed rate. */
  bisect?: boolean;
}

/** Everything the scenario measured. Rates in clicks/s, latencies in ms, CPU in µs per click. */
export interface SystemResult {
  steps: SystemStep[];
  /** Highest sustained rate, clicks/s (0 when even the lowest step failed). */
  sustained_rps: number;
  /** Step the CPU-per-click figures come from (the sustained one), or null. */
  sustained_step: SystemStep | null;
  tracker_processes: number;
  fraud_workers: number;
  /** The whole system at 70 % of the sustained rate (null when nothing was sustained). */
  latency?: LoadResult;
  /** The bare uWS 302 at that rate, same generator (the machine's floor). */
  ceiling_latency?: LoadResult;
  method: string;
}

/** The `npm start` stack as a child: the start.ts process and the tracker processes it spawned. */
interface Stack {
  pid: number;
  trackerPids: number[];
  trackerPort: number;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Child pids of `pid` (all its threads' children), from /proc; [] when unreadable. */
function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const txt = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (txt) out.push(...txt.split(/\s+/).map(Number));
    }
  } catch {
    // not Linux, or already gone
  }
  return out;
}

/** Whether `pid` is alive and runs tracker/main (start.ts's tracker children). */
function isTracker(pid: number): boolean {
  try {
    return existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('tracker');
  } catch {
    return false;
  }
}

/**
 * Spawns `node --import tsx infra/start.ts` (what `npm start` runs after its build) and waits for `ready`.
 * Not detached, so a Ctrl-C in the terminal reaches it too; `stop()` sends SIGTERM (start.ts stops its
 * trackers, then the pipeline), then SIGKILLs whatever of it is still alive after 20 s, trackers included.
 */
async function startStack(env: Record<string, string>, timeoutMs: number): Promise<Stack> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'infra/start.ts'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let tail = '';
  child.stderr?.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let trackerPids: number[] = [];
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(20_000)]);
    }
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // By id, and only while that id is still one of our tracker processes (not a reused pid).
    for (const p of trackerPids) if (isTracker(p)) process.kill(p, 'SIGKILL');
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`npm start stack: not ready in ${timeoutMs} ms\n${tail}`)),
        timeoutMs,
      );
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^tracker: http:\/\/[^:]+:(\d+)/m.exec(out);
        if (m && /^ready$/m.test(out)) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`npm start stack exited before ready (code ${code}, signal ${signal})\n${tail}`));
      });
    });
    trackerPids = childPids(child.pid!).filter(isTracker);
    return { pid: child.pid!, trackerPids, trackerPort: port, stop };
  } catch (err) {
    trackerPids = childPids(child.pid ?? 0).filter(isTracker);
    await stop();
    throw err;
  }
}

/** Options of {@link runSystemScenario}. */
export interface SystemScenarioOptions {
  tmp: string;
  dbUrl: string;
  redisUrl: string;
  /** Redis key prefix for this scenario's streams (its own, so other scenarios' resets never touch them). */
  prefix: string;
  partitions: number;
  redis: Redis;
  /** The bench's redis-server pid (for its CPU), undefined when Redis is not ours. */
  redisPid?: number;
  paths: string[];
  ips: string[];
  rates: readonly number[];
  step_s: number;
  /** Seconds of unjudged load at half the first rate before the first step. */
  warm_s: number;
  latency_s: number;
  ceiling_s: number;
  threads: number;
  connections: number;
  startCeiling(): Promise<ServerProc>;
  /** Registers a cleanup that must run even when the bench fails (the stack's stop). */
  onCleanup(fn: () => Promise<void>): void;
  phase(name: string): (elapsed_s: number) => void;
  done(seconds: number): void;
  say(msg: string): void;
}

/** Per-stream counters summed over the click partitions. */
async function counters(o: SystemScenarioOptions): Promise<{ backlog: number | null; added: number }> {
  const keys = redisKeys(o.prefix);
  let backlog: number | null = 0;
  let added = 0;
  for (let p = 0; p < o.partitions; p++) {
    const stream = keys.clicks(p);
    const info = (await o.redis.xinfo('STREAM', stream).catch(() => null)) as unknown[] | null;
    const a = info ? streamEntriesAdded(info) : 0;
    added += a ?? 0;
    const groups = (await o.redis.xinfo('GROUPS', stream).catch(() => [])) as unknown[];
    // A stream the tracker has not written yet has no group yet either: nothing waiting there.
    const b = info ? groupBacklog(groups, a) : 0;
    backlog = backlog === null || b === null ? null : backlog + b;
  }
  return { backlog, added };
}

/** Waits (bounded) until the pipeline has acknowledged all but `floor` entries; returns the backlog left. */
async function drain(o: SystemScenarioOptions, floor: number, timeoutMs: number): Promise<number | null> {
  const until = Date.now() + timeoutMs;
  let c = await counters(o);
  while (Date.now() < until && (c.backlog === null || c.backlog > floor)) {
    await sleep(250);
    c = await counters(o);
  }
  return c.backlog;
}

/** Runs the scenario; see the module comment. Stops the stack before it returns or throws. */
export async function runSystemScenario(o: SystemScenarioOptions): Promise<SystemResult> {
  const dataDir = path.join(o.tmp, 'system-data');
  mkdirSync(dataDir, { recursive: true });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  // chDB in-process, as `npm start` does without CLICKHOUSE_URL.
  delete env.CLICKHOUSE_URL;
  delete env.NODE_ENV; // npm start's default (development; secrets generated under DATA_DIR)
  Object.assign(env, {
    LOG_LEVEL: 'warn',
    DATA_DIR: dataDir,
    DATABASE_URL: o.dbUrl,
    REDIS_URL: o.redisUrl,
    REDIS_PREFIX: o.prefix,
    STREAM_PARTITIONS: String(o.partitions),
    BIND_HOST: '127.0.0.1',
    TRACKER_PORT: String(await freePort()),
    API_PORT: String(await freePort()),
  });
  const trackerProcesses = Number(env.TRACKER_PROCESSES ?? 1);
  const fraudWorkers = Number(env.FRAUD_WORKERS ?? 1);
  let tick = o.phase('system: starting the npm start stack');
  const stack = await startStack(env, 180_000);
  o.onCleanup(() => stack.stop());
  o.say(
    `system: npm start stack up (start.ts pid ${stack.pid}, tracker pids ${stack.trackerPids.join(', ') || 'none found'}, ` +
      `port ${stack.trackerPort})`,
  );
  const steps: SystemStep[] = [];
  let latency: LoadResult | undefined;
  let ceilingLatency: LoadResult | undefined;
  const load = (port: number, pids: number[], rate: number, duration_s: number, onTick?: (s: number) => void) =>
    runOpenLoop({
      port,
      rate,
      duration_s,
      threads: o.threads,
      connections: o.connections,
      paths: o.paths,
      ips: o.ips,
      userAgents: BROWSER_USER_AGENTS,
      expectStatus: 302,
      serverPids: pids,
      onTick,
    });

  /** One step at `rate`: drain, then load while sampling the backlog every second. */
  async function step(rate: number, bisect: boolean): Promise<SystemStep> {
    tick = o.phase(`system: ${rate} clicks/s${bisect ? ' (bisect)' : ''}`);
    // Each step starts from an (almost) empty backlog, so a step is judged on its own rate only.
    await drain(o, 10, 30_000);
    const c0 = await counters(o);
    const cpu0 = {
      pipe: cpuSeconds(stack.pid),
      trackers: stack.trackerPids.reduce((s, p) => s + cpuSeconds(p), 0),
      redis: o.redisPid ? cpuSeconds(o.redisPid) : 0,
    };
    const raw: Array<[number, number]> = [[0, c0.backlog ?? 0]];
    const t0 = performance.now();
    let sampling = false;
    const timer = setInterval(() => {
      if (sampling) return; // a slow XINFO must not pile up reads
      sampling = true;
      void counters(o)
        .then((c) => {
          if (c.backlog !== null) raw.push([(performance.now() - t0) / 1000, c.backlog]);
        })
        .finally(() => {
          sampling = false;
        });
    }, 1000);
    let l: LoadResult;
    try {
      l = await load(stack.trackerPort, stack.trackerPids, rate, o.step_s, tick);
    } finally {
      clearInterval(timer);
    }
    const c1 = await counters(o);
    const cpu1 = {
      pipe: cpuSeconds(stack.pid),
      trackers: stack.trackerPids.reduce((s, p) => s + cpuSeconds(p), 0),
      redis: o.redisPid ? cpuSeconds(o.redisPid) : 0,
    };
    const answered = Math.round(l.rps * o.step_s);
    // Answered per second of wall time until the last answer (the generator's elapsed includes the wait for
    // requests still queued when the schedule ended): a tracker that falls behind and only catches up after
    // the step, with redirects waiting seconds, must not count as keeping up.
    const achieved = answered / Math.max(o.step_s, l.duration_s);
    const entries = c1.added - c0.added;
    const cpe = entries > 0 ? answered / entries : 1;
    // The generator's own timeline: samples after it stopped (its drain of in-flight requests) are not part of the step.
    const samples: BacklogSample[] = raw
      .filter(([t]) => t <= o.step_s + 0.5)
      .map(([t, b]) => ({ t_s: t, backlog: b * cpe }));
    const verdict = judgeStep({ rate, duration_s: o.step_s, achieved_rps: achieved, errors: l.errors, samples });
    const growth = ((c1.backlog ?? raw.at(-1)![1]) - (c0.backlog ?? 0)) * cpe;
    const processed = Math.max(0, Math.round(answered - growth));
    const s: SystemStep = {
      rate,
      duration_s: o.step_s,
      achieved_rps: Math.round(achieved),
      errors: l.errors,
      p50_ms: l.latency_ms.p50,
      p99_ms: l.latency_ms.p99,
      clicks_per_entry: Math.round(cpe * 10) / 10,
      processed_clicks: processed,
      verdict,
      backlog: samples.map((x) => [Math.round(x.t_s * 10) / 10, Math.round(x.backlog)]),
      tracker_us_per_click: usPerClick(cpu1.trackers - cpu0.trackers, answered),
      pipeline_process_us_per_click: usPerClick(cpu1.pipe - cpu0.pipe, processed),
      redis_us_per_click: o.redisPid ? usPerClick(cpu1.redis - cpu0.redis, processed) : Number.NaN,
      ...(bisect ? { bisect: true } : {}),
    };
    o.say(
      `system ${rate}/s: ${s.achieved_rps}/s answered, p99 ${s.p99_ms} ms, errors ${s.errors}, backlog end ` +
        `${verdict.end_backlog} (≤ ${verdict.allowed_end_backlog}), slope ${verdict.slope_per_s}/s ` +
        `(≤ ${verdict.allowed_slope_per_s}); ${verdict.sustained ? 'SUSTAINED' : `not sustained: ${verdict.reasons.join('; ')}`}; ` +
        `µs/click tracker ${s.tracker_us_per_click}, pipeline ${s.pipeline_process_us_per_click}, redis ${s.redis_us_per_click}`,
    );
    o.done(o.step_s);
    return s;
  }

  try {
    // Warm-up, not judged: JIT, the link cache, chDB's first inserts and merges would otherwise be charged to
    // the first step's CPU per click (in a first try it read ≈3× the next step's).
    tick = o.phase('system: warm-up');
    await load(stack.trackerPort, stack.trackerPids, Math.round((o.rates[0] ?? 2_000) / 2), o.warm_s, tick);
    o.done(o.warm_s);
    let good: SystemStep | null = null;
    let badRate: number | undefined;
    for (const rate of o.rates) {
      const s = await step(rate, false);
      steps.push(s);
      if (!s.verdict.sustained) {
        badRate = rate;
        break;
      }
      good = s;
    }
    const mid = badRate === undefined ? undefined : bisectRate(good?.rate ?? 0, badRate);
    if (mid !== undefined) {
      const s = await step(mid, true);
      steps.push(s);
      if (s.verdict.sustained) good = s;
    }
    const sustained = good?.rate ?? 0;
    if (sustained > 0) {
      const rate = Math.round(0.7 * sustained);
      tick = o.phase(`system: latency at ${rate}/s (70 %)`);
      await drain(o, 10, 30_000);
      latency = await load(stack.trackerPort, stack.trackerPids, rate, o.latency_s, tick);
      o.say(`system at ${rate}/s: p50 ${latency.latency_ms.p50} ms, p99 ${latency.latency_ms.p99} ms`);
      o.done(o.latency_s);
      await stack.stop();
      // The same generator at the same rate against the bare uWS 302, with the stack stopped: the share of the
      // latency that is this machine's and the generator's.
      tick = o.phase(`system: bare uWS 302 at ${rate}/s`);
      const ceil = await o.startCeiling();
      try {
        ceilingLatency = await load(ceil.port, [ceil.pid], rate, o.ceiling_s, tick);
      } finally {
        await ceil.stop();
      }
      o.done(o.ceiling_s);
    }
    return {
      steps,
      sustained_rps: sustained,
      sustained_step: good,
      tracker_processes: trackerProcesses,
      fraud_workers: fraudWorkers,
      latency,
      ceiling_latency: ceilingLatency,
      method:
        `infra/start.ts as npm start runs it (pipeline + admin API in one process with chDB, ${trackerProcesses} ` +
        `tracker process(es), FRAUD_WORKERS=${fraudWorkers}, LOG_LEVEL=warn); open-loop constant rates for ` +
        `${o.step_s} s each, Zipf traffic over 10,000 links from 20,000 client addresses (X-Forwarded-For) with ` +
        `${BROWSER_USER_AGENTS.length} browser User-Agents; backlog = XINFO GROUPS lag + pending of group pipeline ` +
        'over the clicks streams, every second, × clicks per entry over the step. Sustained = generator ≥ 97 % of ' +
        'the target with 0 errors, mean backlog over the last 3 s ≤ max(2 s × rate, 2,000 clicks), backlog slope ' +
        'over the last third ≤ max(2 % of the rate, 2,000 clicks per third); achieved = clicks answered ÷ wall time ' +
        'until the last answer; a warm-up at half the first rate precedes the steps; stops at the first failed rate, one ' +
        'bisection. CPU per click: /proc user+sys of each process over the step, per answered click (tracker) or ' +
        'per processed click (pipeline process, redis-server).',
    };
  } finally {
    await stack.stop();
  }
}
