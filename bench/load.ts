/**
 * Load generators: autocannon (programmatic, optionally with worker threads; closed-loop for maximum
 * throughput, or constant-rate with `overallRate` for latency) and wrk (multi-threaded C, used for the
 * ceiling where a JavaScript load generator could be the bottleneck). Every run reports the load
 * generator's own CPU (cores busy) next to the server's, so a reader can see which side was saturated.
 */
import { spawn } from 'node:child_process';
import autocannon from 'autocannon';
import { cpuMeter, selfCpuMeter } from './procs.ts';

/** One load run's figures. Latencies in ms, rates per second, CPU in cores busy (1.0 = one core). */
export interface LoadResult {
  tool: 'autocannon' | 'wrk' | 'open-loop';
  /** 'closed-loop' (as fast as answers come back) or 'constant-rate' (open-loop target rate). */
  mode: 'closed-loop' | 'constant-rate';
  target_rps?: number;
  connections: number;
  workers: number;
  duration_s: number;
  requests: number;
  /** Answers with the expected status per second. */
  rps: number;
  /** Answers with any other status, plus socket errors and timeouts. */
  errors: number;
  latency_ms: { p50: number; p90: number; p99: number; p99_9: number; max: number; mean: number };
  loadgen_cpu_cores: number;
  server_cpu_cores: number;
  /** CPU of the bench's redis-server over the run (absent when Redis is not ours). */
  redis_cpu_cores?: number;
  /**
   * Click path only: requests answered per XADD the tracker sent over the run (the group-commit size;
   * from Redis `INFO commandstats`, see {@link xaddCalls}).
   */
  clicks_per_xadd?: number;
}

/** XADD calls a Redis server has served since it started (`INFO commandstats`); 0 when it has served none. */
export async function xaddCalls(redis: { info(section: string): Promise<string> }): Promise<number> {
  const m = /cmdstat_xadd:calls=(\d+)/.exec(await redis.info('commandstats'));
  return m ? Number(m[1]) : 0;
}

/** Runs one load and records its {@link LoadResult.clicks_per_xadd} from the XADDs Redis served meanwhile. */
export async function withXaddCount(
  redis: { info(section: string): Promise<string> },
  run: () => Promise<LoadResult>,
): Promise<LoadResult> {
  const before = await xaddCalls(redis);
  const l = await run();
  const xadds = (await xaddCalls(redis)) - before;
  if (xadds > 0) l.clicks_per_xadd = Math.round((l.requests / xadds) * 10) / 10;
  return l;
}

let redisPid: number | undefined;

/** Also measure this redis-server process in every run (the click path's XADDs cost CPU there too). */
export function measureRedisCpu(pid: number | undefined): void {
  redisPid = pid;
}

/** The redis-server being measured (see {@link measureRedisCpu}). */
export function measuredRedisPid(): number | undefined {
  return redisPid;
}

/** Options shared by the autocannon runs. */
export interface AutocannonOptions {
  url: string;
  /** Path of a generated `setupRequest` module (see zipf.ts); omitted = fixed `url`. */
  setupRequest?: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** The status a successful answer has (302 for clicks, 200 for conversions). */
  expectStatus: number;
  connections: number;
  workers: number;
  duration_s: number;
  /** Constant-rate mode: total target rate (split evenly over the workers, which autocannon applies per worker). */
  rate?: number;
  serverPids: number[];
  /** Called about once a second with the seconds elapsed. */
  onTick?: (elapsed_s: number) => void;
  /** Called for every answer (only without workers, where autocannon emits events in this thread). */
  onResponse?: (status: number) => void;
}

/** Runs autocannon once. */
export async function runAutocannon(o: AutocannonOptions): Promise<LoadResult> {
  const workers = o.onResponse ? 0 : o.workers;
  const opts: autocannon.Options = {
    url: o.url,
    connections: o.connections,
    duration: o.duration_s,
    method: o.method ?? 'GET',
    headers: o.headers,
    body: o.body,
    pipelining: 1,
  };
  if (workers > 1) opts.workers = workers;
  if (o.setupRequest) opts.requests = [{ setupRequest: o.setupRequest }];
  if (o.rate) opts.overallRate = Math.max(1, Math.round(o.rate / Math.max(1, workers)));
  if (o.setupRequest && workers <= 1) {
    // Without workers autocannon wants a function; load the same module.
    const mod = (await import(o.setupRequest)) as { default: (r: autocannon.Request) => autocannon.Request };
    opts.requests = [{ setupRequest: mod.default }];
  }
  const cpu = selfCpuMeter();
  const server = cpuMeter(o.serverPids);
  const redisCpu = redisPid ? cpuMeter([redisPid]) : undefined;
  const started = performance.now();
  const ticker = setInterval(() => o.onTick?.((performance.now() - started) / 1000), 1000);
  try {
    const result = await new Promise<autocannon.Result>((resolve, reject) => {
      const inst = autocannon(opts, (err, res) => (err ? reject(err) : resolve(res)));
      if (o.onResponse) {
        const cb = o.onResponse;
        inst.on('response', (_client, statusCode) => cb(statusCode));
      }
    });
    const loadgen = cpu.stop();
    const serverCpu = server.stop();
    const byStatus = (result as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats;
    const good = byStatus?.[String(o.expectStatus)]?.count ?? 0;
    const total = result.requests.total;
    return {
      tool: 'autocannon',
      mode: o.rate ? 'constant-rate' : 'closed-loop',
      target_rps: o.rate,
      connections: o.connections,
      workers,
      duration_s: result.duration,
      requests: total,
      rps: good / result.duration,
      errors: total - good + result.errors + result.timeouts,
      latency_ms: {
        p50: result.latency.p50,
        p90: result.latency.p90,
        p99: result.latency.p99,
        p99_9: result.latency.p99_9,
        max: result.latency.max,
        mean: result.latency.mean,
      },
      loadgen_cpu_cores: loadgen,
      server_cpu_cores: serverCpu,
      redis_cpu_cores: redisCpu?.stop(),
    };
  } finally {
    clearInterval(ticker);
  }
}

/** Parses wrk's latency figures ("1.23ms", "850.00us", "1.02s") into ms. */
export function parseWrkDuration(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s.trim());
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

/** Extracts requests, duration, rate, non-2xx/3xx count and latency percentiles from wrk --latency output. */
export function parseWrkOutput(out: string): {
  requests: number;
  duration_s: number;
  rps: number;
  errors: number;
  latency_ms: LoadResult['latency_ms'];
} {
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? Number.NaN);
  const dur = (re: RegExp) => parseWrkDuration(re.exec(out)?.[1] ?? '');
  const requests = num(/(\d+) requests in/);
  const duration_s = dur(/requests in ([\d.]+\w+),/) / 1000;
  const non = num(/Non-2xx or 3xx responses: (\d+)/);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = (Number.isNaN(non) ? 0 : non) + (sockErr ? sockErr.slice(1).reduce((s, x) => s + Number(x), 0) : 0);
  return {
    requests,
    duration_s,
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    errors,
    latency_ms: {
      p50: dur(/^\s+50%\s+(\S+)/m),
      p90: dur(/^\s+90%\s+(\S+)/m),
      p99: dur(/^\s+99%\s+(\S+)/m),
      p99_9: Number.NaN,
      max: dur(/^\s+Latency\s+\S+\s+\S+\s+(\S+)/m),
      mean: dur(/^\s+Latency\s+(\S+)/m),
    },
  };
}

/**
 * Runs `wrk --latency` (closed-loop) and measures its CPU through the shell's children times.
 * @throws Error when wrk is missing or fails.
 */
export async function runWrk(o: {
  wrkPath: string;
  url: string;
  threads: number;
  connections: number;
  duration_s: number;
  serverPids: number[];
  /** Lua script (e.g. the Zipf one from zipf.ts); `url` then gives only scheme, host and port. */
  script?: string;
}): Promise<LoadResult> {
  const server = cpuMeter(o.serverPids);
  const redisCpu = redisPid ? cpuMeter([redisPid]) : undefined;
  const started = performance.now();
  // The shell waits for wrk, then prints its own /proc stat whose cutime/cstime now hold wrk's CPU.
  const script = '"$@"; rc=$?; echo; echo "CHILDSTAT $(cat /proc/$$/stat)"; exit $rc';
  const args = [
    o.wrkPath,
    `-t${o.threads}`,
    `-c${o.connections}`,
    `-d${o.duration_s}s`,
    '--latency',
    ...(o.script ? ['-s', o.script] : ['-H', 'User-Agent: Mozilla/5.0 (bench)']),
    o.url,
  ];
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn('sh', ['-c', script, 'sh', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let s = '';
    let e = '';
    p.stdout.on('data', (d: Buffer) => {
      s += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      e += d.toString();
    });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(s) : reject(new Error(`wrk failed (${code}): ${e || s}`))));
  });
  const wall = (performance.now() - started) / 1000;
  const serverCpu = server.stop();
  const stat = /CHILDSTAT (.*)/.exec(out)?.[1] ?? '';
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const childCpu = (Number(f[13]) + Number(f[14])) / 100;
  const parsed = parseWrkOutput(out);
  return {
    tool: 'wrk',
    mode: 'closed-loop',
    connections: o.connections,
    workers: o.threads,
    ...parsed,
    loadgen_cpu_cores: Number.isFinite(childCpu) && wall > 0 ? childCpu / wall : 0,
    server_cpu_cores: serverCpu,
    redis_cpu_cores: redisCpu?.stop(),
  };
}
