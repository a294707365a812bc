import uWS, { type HttpRequest, type HttpResponse, type us_listen_socket } from 'uWebSockets.js';
import os from 'node:os';
import path from 'node:path';
import {
  type Config,
  createMetricsRegistry,
  createRedis,
  type Logger,
  type MetricsServer,
  type Readiness,
  type Redis,
  type Registry,
  redisKeys,
  runReadyChecks,
  type Sql,
  serveMetrics,
} from '../../infra/index.ts';
import { geoIp } from '../geo/geoip.ts';
import { browserHandlers } from './browser.ts';
import { capEventPublisher } from './cap-events.ts';
import { CapCounters } from './caps.ts';
import { answerStored, clickHandler } from './click.ts';
import { TokenCache } from './conversion.ts';
import { decisionHandler } from './decision.ts';
import { EventIds } from './event-ids.ts';
import { type ReqState, sendAppError, sendJson, sendText, track } from './http.ts';
import { ipRefusals } from './ip-refusals.ts';
import { LinkCache } from './link-cache.ts';
import { compileTemplate } from './macros.ts';
import { createTrackerMetrics } from './metrics.ts';
import { postbackHandler } from './postback.ts';
import { TrustedProxies } from './proxies.ts';
import { PublishableKeyCache } from './publishable-keys.ts';
import { isMethod, LIMITS } from './request.ts';
import { Spool } from './spool.ts';
import { checkSpool, createSpoolMetrics } from './spool-monitor.ts';
import { TargetingCheck } from './targeting.ts';
import { UuidV7 } from './uuid7.ts';
import { callStored, GroupWriter, type Stored } from './writer.ts';

export { LIMITS } from './request.ts';

const CLOSE_TIMEOUT_MS = 10_000;

export interface TrackerOptions {
  config: Config;
  logger: Logger;
  sql: Sql;
  redisUrl: string;
  /**
   * Where the tracker's metrics (./metrics.ts, ./spool-monitor.ts) are registered; default a new one with the
   * default process metrics. Served at `GET /metrics`.
   */
  registry?: Registry;
}

/** A running ingest server. */
export interface Tracker {
  port: number;
  /** `http://<host>:<port>` */
  url: string;
  /** The tracker's prom-client metrics (`tracker_*`, served at `/metrics`). */
  registry: Registry;
  /** Port of the separate `/metrics` listener when `config.METRICS_PORT` is set. */
  metricsPort?: number;
  /** What `/readyz` answers now. */
  readiness(): Promise<Readiness>;
  /** Requests received and not yet answered (waiting for their write or lookup). */
  inflight(): number;
  /** Stops listening, answers every in-flight request after its write is stored, closes connections. */
  close(): Promise<void>;
}

/**
 * Starts the uWebSockets.js ingest: `GET|HEAD /c/:code` and `/api/v1/track/:code` (click → 302),
 * `GET|POST /api/v1/track/conversion` (postback), `GET /api/v1/track/conversion/:event_id` (its decision),
 * `OPTIONS|POST /api/v1/track/conversion/browser`, `GET /api/v1/track/pixel`, `GET /s.js` (browser conversions,
 * ./browser.ts), `/healthz`, `/readyz`, `/metrics`; with `config.METRICS_PORT` also
 * a plain-HTTP listener of its own for `/metrics`, `/healthz`, `/readyz` (infra `serveMetrics`).
 * Listens on `config.BIND_HOST:config.TRACKER_PORT` (0 = any free port). uWS listens with
 * SO_REUSEPORT on Linux, so several processes can share one port.
 * @throws Error when the port cannot be bound.
 */
export async function startTracker(opts: TrackerOptions): Promise<Tracker> {
  const { config, sql } = opts;
  const log = opts.logger.child({ module: 'ingest' });
  const keys = redisKeys(config.REDIS_PREFIX);
  const P = config.STREAM_PARTITIONS;
  const proxies = new TrustedProxies(config.TRUSTED_PROXIES);
  const uuid = new UuidV7();
  const keying = config.STREAM_PARTITION_KEY;

  // The hot-path connection fails fast: no offline queue, bounded command time, so an outage
  // sends events to the spool instead of stalling redirects. No auto-pipelining: the writers already
  // send one XADD per turn, and the pipelining machinery would cost more than it saves.
  const redis = createRedis(opts.redisUrl, {
    cluster: config.REDIS_CLUSTER,
    enableAutoPipelining: false,
    enableOfflineQueue: false,
    commandTimeout: config.TRACKER_REDIS_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
  });
  redis.on('error', (err: Error) => log.debug({ err: err.message }, 'redis error'));
  const sub = createRedis(opts.redisUrl, {
    cluster: config.REDIS_CLUSTER,
    autoResubscribe: false,
    maxRetriesPerRequest: null,
  });

  const registry = opts.registry ?? createMetricsRegistry();
  const spoolMetrics = createSpoolMetrics(registry);
  // Read at scrape time (a collect callback): `links` is created below.
  const metrics = createTrackerMetrics(registry, () => links.size);
  // Capped: while Redis is unreachable (or refusing writes, e.g. full under `noeviction`) every event goes here.
  const spool = new Spool(
    path.join(config.DATA_DIR, 'spool'),
    (config.TRACKER_INSTANCE_ID ?? os.hostname()).replace(/[^A-Za-z0-9_-]/g, '_'),
    log,
    {
      maxBytes: config.SPOOL_MAX_BYTES,
      fsyncMs: config.SPOOL_FSYNC_MS,
      onDropped: (n) => spoolMetrics.droppedCounter.inc(n),
      onReplayed: (n) => metrics.replayedEvents.inc(n),
    },
  );
  await spool.init();
  // A click's wait for its XADD is its request state: the writer hands it back to answerStored.
  const clicks = new GroupWriter<ReqState>(
    redis,
    spool,
    keys.clicks,
    P,
    config.TRACKER_GROUP_COMMIT_MS,
    LIMITS.maxGroup,
    log,
    (st) => {
      answerStored(st, log);
      finishClick(st);
    },
    metrics.clicksWriter,
  );
  const conversions = new GroupWriter<Stored>(
    redis,
    spool,
    keys.conversions,
    P,
    0,
    LIMITS.maxGroup,
    log,
    callStored,
    metrics.conversionsWriter,
  );
  const links = new LinkCache(sql, config.LINK_NEGATIVE_CACHE_MS, log, config.LINK_NEGATIVE_CACHE_MAX);
  // Loaded at start (a bad GEOIP_MMDB_PATH fails here, not on a click); shared with a pipeline in this process.
  const targeting = new TargetingCheck(geoIp(config.GEOIP_MMDB_PATH));
  const caps = new CapCounters(redis, keys, log, config.CAP_FLUSH_MS, capEventPublisher(sql, redis, keys, log));
  const tokens = new TokenCache(sql);

  // Spool replay: at start-up, whenever Redis (re)connects, and periodically while anything is spooled.
  let spoolDirty = true;
  const replay = () => {
    if (redis.status !== 'ready' || !(spoolDirty || spool.hasUnreplayed)) return;
    spool.replay(redis).then(
      () => {
        spoolDirty = false;
      },
      (err: Error) => {
        spoolDirty = true;
        log.warn({ err: err.message }, 'spool replay failed, will retry');
      },
    );
  };
  redis.on('ready', replay);
  // The spool's size and its near-cap alert, once a second (one look at a time).
  const alertState = { loggedAtMs: 0 };
  let checking = false;
  const check = () => {
    if (checking) return;
    checking = true;
    void checkSpool({ spool, metrics: spoolMetrics, redis, keys, log }, alertState).finally(() => {
      checking = false;
    });
  };
  const replayTimer = setInterval(() => {
    replay();
    check();
  }, 1_000);
  replayTimer.unref();

  // Warm the link cache; if Postgres is down, keep serving (cached/unknown links) and retry.
  let warmTimer: NodeJS.Timeout | undefined;
  const warm = async (): Promise<void> => {
    try {
      const n = await links.warm();
      log.info({ links: n }, 'link cache warmed');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'link cache warm-up failed, retrying');
      warmTimer = setTimeout(() => void warm(), 2_000);
      warmTimer.unref();
    }
  };
  await Promise.all([
    // Start-up does not wait for a slow/unreachable Postgres: /readyz says 503 until the warm load ends.
    withTimeout(warm(), 5_000),
    withTimeout(links.subscribe(sub, keys.linkInvalidation), 2_000),
    withTimeout(tokens.subscribe(sub, keys.postbackInvalidation, log), 2_000),
    withTimeout(once(redis, 'ready'), 2_000),
  ]);

  let active = 0;
  let closing = false;
  let idle: (() => void) | undefined;
  const ended = () => {
    active--;
    if (active === 0 && idle) idle();
  };
  const begin = (res: HttpResponse, head: boolean): ReqState => {
    active++;
    return track(res, head, ended);
  };
  // Every request state passes here exactly once when it is answered or aborted.
  const finish = (st: ReqState) => {
    if (!st.aborted) ended();
  };
  const finishClick = (st: ReqState) => {
    metrics.click(st);
    finish(st);
  };
  const finishPostback = (st: ReqState) => {
    metrics.postback(st);
    finish(st);
  };

  // Redis and Postgres are reported, not required: while Redis is down the spool takes the writes (the tracker
  // keeps answering clicks), and links come from the cache. Unready: links never loaded, closing, or no place to
  // put an event (Redis down and the spool not writable).
  const readiness = async (): Promise<Readiness> => {
    const r = await runReadyChecks(
      {
        links: async () => {
          if (!links.loaded) throw new Error('link cache not loaded yet');
        },
        redis: () => redis.ping(),
        postgres: () => sql`select 1`,
        spool: async () => {
          if (!(await spool.writable())) throw new Error(`not writable: ${spool.dir}`);
        },
      },
      { optional: ['redis', 'postgres', 'spool'] },
    );
    if (closing) r.checks.server = 'down: closing';
    const ready = r.ready && !closing && (r.checks.redis === 'ok' || r.checks.spool === 'ok');
    return { ready, checks: r.checks };
  };

  const eventIds = new EventIds(redis, keys, {
    ttlS: config.POSTBACK_DEDUP_TTL_S,
    timeoutMs: config.TRACKER_REDIS_TIMEOUT_MS,
  });
  const onConversion = postbackHandler({
    log,
    proxies,
    uuid,
    partitions: P,
    tokens,
    conversions,
    eventIds,
    begin,
    finish: finishPostback,
    onIpRefused: ipRefusals(registry, redis, keys, log),
  });
  const browser = browserHandlers({
    log,
    proxies,
    uuid,
    partitions: P,
    keys: new PublishableKeyCache(sql),
    conversions,
    eventIds,
    registry,
    ratePoints: config.BROWSER_CONVERSION_RATE_POINTS,
    rateWindowS: config.BROWSER_CONVERSION_RATE_WINDOW_S,
    begin,
    finish,
  });
  const onClick = clickHandler({
    log,
    proxies,
    uuid,
    keying,
    partitions: P,
    links,
    targeting,
    defaultFallback: compileTemplate(config.DEFAULT_FALLBACK_URL),
    caps,
    metrics,
    clicks,
    begin,
    finish: finishClick,
    handOver: (st, res, req) => {
      active--;
      st.done = true;
      onConversion(res, req);
    },
  });

  const methodNotAllowed = (allow: string) => (res: HttpResponse, req: HttpRequest) => {
    const st = begin(res, isMethod(req, 'head'));
    sendAppError(st, 'METHOD_NOT_ALLOWED', `method not allowed; use ${allow}`, undefined, { Allow: allow });
    finish(st);
  };

  const app = uWS.App();
  for (const route of ['/c/:code', '/api/v1/track/:code']) {
    app.get(route, onClick).head(route, onClick).any(route, methodNotAllowed('GET, HEAD'));
  }
  app
    .get('/api/v1/track/conversion', onConversion)
    .post('/api/v1/track/conversion', onConversion)
    .any('/api/v1/track/conversion', methodNotAllowed('GET, POST'))
    .options('/api/v1/track/conversion/browser', browser.preflight)
    .post('/api/v1/track/conversion/browser', browser.conversion)
    .any('/api/v1/track/conversion/browser', methodNotAllowed('POST, OPTIONS'))
    .get('/api/v1/track/pixel', browser.pixel)
    .any('/api/v1/track/pixel', methodNotAllowed('GET'))
    .get('/s.js', browser.script)
    .head('/s.js', browser.script)
    .any('/s.js', methodNotAllowed('GET, HEAD'))
    .get('/api/v1/track/conversion/:event_id', decisionHandler({ log, sql, tokens, eventIds, begin, finish }))
    .any('/api/v1/track/conversion/:event_id', methodNotAllowed('GET'))
    .get('/healthz', (res) => {
      const st = begin(res, false);
      sendJson(st, 200, { success: true, data: { status: 'ok' } });
      finish(st);
    })
    .any('/healthz', methodNotAllowed('GET'))
    .get('/readyz', (res) => {
      const st = begin(res, false);
      void readiness().then((r) => {
        sendJson(st, r.ready ? 200 : 503, r);
        finish(st);
      });
    })
    .any('/readyz', methodNotAllowed('GET'))
    // This process's metrics only: several processes sharing TRACKER_PORT (SO_REUSEPORT) answer it in turn, so a
    // scrape through the shared port samples one of them (use METRICS_PORT for one target per process).
    .get('/metrics', (res) => {
      const st = begin(res, false);
      registry.metrics().then(
        (text) => {
          sendText(st, 200, registry.contentType, text);
          finish(st);
        },
        (err: Error) => {
          sendAppError(st, 'INTERNAL_ERROR', err.message);
          finish(st);
        },
      );
    })
    .any('/metrics', methodNotAllowed('GET'))
    .any('/*', (res, req) => {
      const st = begin(res, isMethod(req, 'head'));
      sendAppError(st, 'NOT_FOUND', 'not found');
      finish(st);
    });

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(config.BIND_HOST, config.TRACKER_PORT, (ls) => {
      if (ls) resolve(ls);
      else reject(new Error(`tracker cannot listen on ${config.BIND_HOST}:${config.TRACKER_PORT}`));
    });
  }).catch((err: Error) => {
    clearInterval(replayTimer);
    if (warmTimer) clearTimeout(warmTimer);
    links.close();
    caps.close();
    redis.disconnect();
    throw err;
  });
  let metricsServer: MetricsServer | undefined;
  if (config.METRICS_PORT !== undefined) {
    metricsServer = await serveMetrics(registry, config.BIND_HOST, config.METRICS_PORT, readiness).catch(
      (err: Error) => {
        uWS.us_listen_socket_close(listenSocket);
        clearInterval(replayTimer);
        if (warmTimer) clearTimeout(warmTimer);
        links.close();
        caps.close();
        redis.disconnect();
        throw new Error(`tracker cannot serve metrics on ${config.BIND_HOST}:${config.METRICS_PORT}: ${err.message}`);
      },
    );
  }
  const port = uWS.us_socket_local_port(listenSocket as unknown as uWS.us_socket);
  const host = config.BIND_HOST.includes(':') ? `[${config.BIND_HOST}]` : config.BIND_HOST;
  log.info({ port, partitions: P }, 'tracker listening');

  let closed: Promise<void> | undefined;
  return {
    port,
    url: `http://${host}:${port}`,
    registry,
    metricsPort: metricsServer?.port,
    readiness,
    inflight: () => active,
    close() {
      closed ??= (async () => {
        closing = true;
        uWS.us_listen_socket_close(listenSocket);
        clearInterval(replayTimer);
        if (warmTimer) clearTimeout(warmTimer);
        // In-flight requests are answered once their events are stored (or time out).
        const drained = new Promise<void>((r) => {
          idle = r;
          if (active === 0) r();
        });
        clicks.flush();
        conversions.flush();
        await withTimeout(drained, CLOSE_TIMEOUT_MS);
        await clicks.drain();
        await conversions.drain();
        await spool.close();
        links.close();
        caps.close();
        await metricsServer?.close();
        await redis.quit().catch(() => redis.disconnect());
        log.info('tracker closed');
      })();
      return closed;
    },
  };
}

function once(r: Redis, event: string): Promise<void> {
  if (r.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => r.once(event, () => resolve()));
}

function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      () => {
        clearTimeout(t);
        resolve();
      },
    );
  });
}
