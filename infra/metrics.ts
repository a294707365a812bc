/**
 * The one place metrics plumbing lives: a process's prom-client registry (default process metrics included), the
 * getters every part uses to register its metrics on it (so parts sharing one process, e.g. the pipeline, the
 * deliveries and the API under `npm start`, share one registry and one `/metrics`), a plain-HTTP listener for
 * processes whose main server cannot serve it (`METRICS_PORT`), and the bounded readiness checks of `/readyz`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  Counter,
  type CounterConfiguration,
  collectDefaultMetrics,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  Registry,
} from 'prom-client';

export type { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** A new registry with prom-client's default process metrics (CPU, memory, event-loop lag, GC, handles). */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * The counter `cfg.name` of `registry`, registering it on first use: two parts (or two instances of one part in a
 * test process) asking for the same name get the same counter instead of prom-client's duplicate-name error.
 */
export function counterOn<L extends string = string>(registry: Registry, cfg: CounterConfiguration<L>): Counter<L> {
  return (
    (registry.getSingleMetric(cfg.name) as Counter<L> | undefined) ?? new Counter({ ...cfg, registers: [registry] })
  );
}

/** The gauge `cfg.name` of `registry`, registering it on first use (see {@link counterOn}). */
export function gaugeOn<L extends string = string>(registry: Registry, cfg: GaugeConfiguration<L>): Gauge<L> {
  return (registry.getSingleMetric(cfg.name) as Gauge<L> | undefined) ?? new Gauge({ ...cfg, registers: [registry] });
}

/** The histogram `cfg.name` of `registry`, registering it on first use (see {@link counterOn}). */
export function histogramOn<L extends string = string>(
  registry: Registry,
  cfg: HistogramConfiguration<L>,
): Histogram<L> {
  return (
    (registry.getSingleMetric(cfg.name) as Histogram<L> | undefined) ?? new Histogram({ ...cfg, registers: [registry] })
  );
}

/** Histogram buckets for request and write latencies, seconds (0.25 ms … 5 s). */
export const LATENCY_BUCKETS_S = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** A running `/metrics` listener of {@link serveMetrics}. */
export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (the registry in the Prometheus text format), `GET /healthz` and, with `ready`,
 * `GET /readyz` on a plain node:http listener at `host:port` (0 = any free port). For processes without an HTTP
 * server of their own (the pipeline role) and for a per-process port beside a port shared with SO_REUSEPORT (the
 * tracker's `METRICS_PORT`): this listener does not reuse ports, so two processes given one port fail loudly.
 * @throws Error (EADDRINUSE, EACCES) when the port cannot be bound.
 */
export async function serveMetrics(
  registry: Registry,
  host: string,
  port: number,
  ready?: () => Promise<Readiness>,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    if (url === '/metrics') {
      registry.metrics().then(
        (text) => send(200, registry.contentType, text),
        (err: Error) => send(500, 'text/plain', `${err.message}\n`),
      );
    } else if (url === '/healthz') send(200, 'application/json', '{"status":"ok"}');
    else if (url === '/readyz' && ready) {
      ready().then((r) => send(r.ready ? 200 : 503, 'application/json', JSON.stringify(r)));
    } else send(404, 'text/plain', 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What `/readyz` answers: `ready` is false (HTTP 503) when a required check is not `'ok'`. */
export interface Readiness {
  ready: boolean;
  /** Per dependency: `'ok'` or `'down: <reason>'`. */
  checks: Record<string, string>;
}

/** One readiness check: resolves (any value) when the dependency answers, rejects or times out otherwise. */
export type ReadyCheck = () => Promise<unknown>;

/** Default bound of one readiness check, ms. */
export const READY_CHECK_TIMEOUT_MS = 1_000;

/**
 * Runs every check at once, each bounded by `timeoutMs`, and names each outcome: `'ok'`, or `'down: <error
 * message>'` (`'down: timeout after N ms'`). Never throws. `optional` names checks that are reported but do not make
 * the process unready (e.g. the tracker's Redis while its spool takes the writes).
 */
export async function runReadyChecks(
  checks: Record<string, ReadyCheck>,
  o: { timeoutMs?: number; optional?: readonly string[] } = {},
): Promise<Readiness> {
  const timeoutMs = o.timeoutMs ?? READY_CHECK_TIMEOUT_MS;
  const names = Object.keys(checks);
  const results = await Promise.all(
    names.map(async (name) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timeout after ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([Promise.resolve().then(checks[name]!), timeout]);
        return 'ok';
      } catch (err) {
        return `down: ${(err instanceof Error ? err.message : String(err)).slice(0, 200) || 'failed'}`;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const out: Record<string, string> = {};
  let ready = true;
  names.forEach((name, i) => {
    out[name] = results[i]!;
    if (results[i] !== 'ok' && !o.optional?.includes(name)) ready = false;
  });
  return { ready, checks: out };
}
