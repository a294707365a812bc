/**
 * Open-loop constant-rate load generator (wrk2-style), for latency under load: requests are due on a
 * fixed schedule and each one's latency runs from when it was due, so queueing behind a stall is
 * counted instead of hidden (no coordinated omission). autocannon's `overallRate` is not used for this:
 * it sends each connection's per-second quota back-to-back and then idles until the next second
 * (bursts at full speed), and its correction assumes a 1 ms interval, which inflates the tail.
 * Runs in worker threads (the rate is split evenly); keep-alive HTTP/1.1 over plain sockets.
 */
import { Worker } from 'node:worker_threads';
import { type LoadResult, measuredRedisPid } from './load.ts';
import type { OpenLoopWorkerData, OpenLoopWorkerResult } from './open-loop-worker.ts';
import { cpuMeter, selfCpuMeter } from './procs.ts';
import { percentile } from './stats.ts';

const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './open-loop-worker.ts' : './open-loop-worker.js',
  import.meta.url,
).href;

/**
 * Sends `rate` requests/s for `duration_s` to 127.0.0.1:`port`, paths and client addresses from the
 * Zipf tables (power-of-two length).
 * @param o.connections per thread; a request waits for an idle connection when all are busy.
 */
export async function runOpenLoop(o: {
  port: number;
  rate: number;
  duration_s: number;
  threads: number;
  connections: number;
  paths: string[];
  ips: string[];
  expectStatus: number;
  serverPids: number[];
  /** User-Agent values sent in turn (default: one desktop Chrome string). */
  userAgents?: string[];
  onTick?: (elapsed_s: number) => void;
}): Promise<LoadResult> {
  const threads = Math.max(1, o.threads);
  const cpu = selfCpuMeter();
  const server = cpuMeter(o.serverPids);
  const redisPid = measuredRedisPid();
  const redis = redisPid ? cpuMeter([redisPid]) : undefined;
  const started = performance.now();
  const ticker = setInterval(() => o.onTick?.((performance.now() - started) / 1000), 1000);
  try {
    const results = await Promise.all(
      Array.from({ length: threads }, (_, t) => {
        const data: OpenLoopWorkerData = {
          port: o.port,
          rate: o.rate / threads,
          duration_s: o.duration_s,
          connections: o.connections,
          paths: o.paths,
          ips: o.ips,
          expectStatus: o.expectStatus,
          offset: t * 7919,
          userAgents: o.userAgents,
        };
        return new Promise<OpenLoopWorkerResult>((resolve, reject) => {
          // Worker threads do not run the parent's `--import tsx`: boot through a one-line script that
          // registers tsx's loader in the worker, then imports the .ts entry.
          const boot = `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(WORKER_URL)}); })`;
          const w = new Worker(boot, { eval: true, workerData: data });
          w.once('message', (m: OpenLoopWorkerResult) => {
            resolve(m);
            void w.terminate();
          });
          w.once('error', reject);
          w.once('exit', (code) => {
            if (code !== 0) reject(new Error(`open-loop worker exited with ${code}`));
          });
        });
      }),
    );
    const loadgen = cpu.stop();
    const serverCpu = server.stop();
    const all = new Float64Array(results.reduce((s, r) => s + r.count, 0));
    let at = 0;
    for (const r of results) {
      all.set(r.latencies, at);
      at += r.count;
    }
    all.sort();
    const ok = results.reduce((s, r) => s + r.ok, 0);
    const elapsed = Math.max(...results.map((r) => r.elapsed_s));
    const r2 = (x: number) => Math.round(x * 100) / 100;
    return {
      tool: 'open-loop',
      mode: 'constant-rate',
      target_rps: o.rate,
      connections: o.connections * threads,
      workers: threads,
      duration_s: elapsed,
      requests: all.length,
      rps: ok / o.duration_s,
      errors: results.reduce((s, r) => s + r.bad_status + r.errors + r.unfinished, 0),
      latency_ms: {
        p50: r2(percentile(all, 50)),
        p90: r2(percentile(all, 90)),
        p99: r2(percentile(all, 99)),
        p99_9: r2(percentile(all, 99.9)),
        max: r2(all.length ? all[all.length - 1]! : Number.NaN),
        mean: r2(all.reduce((s, x) => s + x, 0) / Math.max(1, all.length)),
      },
      loadgen_cpu_cores: loadgen,
      server_cpu_cores: serverCpu,
      redis_cpu_cores: redis?.stop(),
    };
  } finally {
    clearInterval(ticker);
  }
}
