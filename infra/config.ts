import path from 'node:path';
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const port = z.coerce.number().int().min(0).max(65535);
const csv = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

/**
 * Every setting the system reads from the environment, with its default for local use.
 * Nothing outside this module reads `process.env` (EXAMPLES.md, "one config module").
 */
const schema = z.object({
  /**
   * `production` requires JWT_SECRET, DELIVERY_SECRET_KEY and TOTP_SECRET_KEY, sets Secure cookies, and turns test
   * deposits off (refusing WALLET_TEST_DEPOSITS=true).
   */
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  /** pino level; `silent` in tests. */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Root of local state: embedded Postgres, local Redis, chDB, spool files. */
  DATA_DIR: z.string().default('.data'),
  /** Address the HTTP servers bind to. */
  BIND_HOST: z.string().default('127.0.0.1'),
  /** Port of the click/conversion ingest (0 = any free port). */
  TRACKER_PORT: port.default(8080),
  /** Port of the admin API (0 = any free port). */
  API_PORT: port.default(3000),
  /**
   * A separate per-process listener for `/metrics`, `/healthz` and `/readyz` (plain HTTP, no SO_REUSEPORT): each
   * tracker process serves it beside TRACKER_PORT, and the pipeline role (no HTTP server of its own) serves it.
   * Unset: trackers serve `/metrics` on TRACKER_PORT only, the pipeline role serves none.
   */
  METRICS_PORT: port.optional(),
  /** Base URL of the tracker as publishers see it (used to print tracking link URLs). */
  PUBLIC_TRACKER_URL: z.string().url().optional(),

  /** Postgres; unset → `npm start` runs embedded Postgres under DATA_DIR. */
  DATABASE_URL: z.string().url().optional(),
  /** Redis; unset → `npm start` runs a local redis-server under DATA_DIR (installing it with apt-get as root). */
  REDIS_URL: z.string().url().optional(),
  /** ClickHouse server over HTTP; unset → chDB (ClickHouse in-process) under DATA_DIR. */
  CLICKHOUSE_URL: z.string().url().optional(),
  /** ClickHouse user (server only). */
  CLICKHOUSE_USER: z.string().default('default'),
  /** ClickHouse password (server only). */
  CLICKHOUSE_PASSWORD: z.string().default(''),
  /** ClickHouse database (server only). */
  CLICKHOUSE_DATABASE: z.string().default('default'),
  /** Longest a report or click-log query may run in ClickHouse, seconds (its `max_execution_time`). */
  REPORT_MAX_EXECUTION_S: z.coerce.number().int().min(1).max(3600).default(30),
  /** Most memory a report or click-log query may use in ClickHouse, bytes (its `max_memory_usage`). */
  REPORT_MAX_MEMORY_BYTES: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(2_000_000_000),
  /** Longest an analytics SQL query (`POST /analytics/query`) may run, seconds (its `max_execution_time`). */
  ANALYTICS_MAX_EXECUTION_S: z.coerce.number().int().min(1).max(3600).default(30),
  /** Most rows an analytics SQL query may return (its `max_result_rows`, overflow mode throw). */
  ANALYTICS_MAX_RESULT_ROWS: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(1_000_000),
  /** Most memory an analytics SQL query may use, bytes (its `max_memory_usage`). */
  ANALYTICS_MAX_MEMORY_BYTES: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(2_000_000_000),
  /** Most rows an analytics SQL query may read from its tables (its `max_rows_to_read`). */
  ANALYTICS_MAX_ROWS_TO_READ: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(1_000_000_000),
  /**
   * Prefix for every Redis key and stream, so test runs and tenants of one Redis do not collide. No `{`/`}`:
   * keys carry hash tags (`clicks:{3}`) that decide their Redis Cluster slot, and a brace in the prefix would
   * become the tag instead.
   */
  REDIS_PREFIX: z
    .string()
    .regex(/^[^{}]*$/, 'must not contain { or }')
    .default(''),
  /**
   * REDIS_URL is a Redis Cluster node (a seed: the others are discovered from it). Every multi-key command,
   * MULTI and script then keeps its keys under one hash tag (`{p}` per stream partition).
   */
  REDIS_CLUSTER: bool.default(false),

  /** Number of partitions of each event stream (`clicks:{p}`, `conversions:{p}`). */
  STREAM_PARTITIONS: z.coerce.number().int().min(1).max(256).default(2),
  /**
   * What picks a click's stream partition: `ip` (FNV-1a of the client IP, so one IP's clicks stay on one partition
   * in arrival order), `ip_user_agent` (of IP + tab + User-Agent), `none` (round robin per group commit).
   */
  STREAM_PARTITION_KEY: z.enum(['ip', 'ip_user_agent', 'none']).default('ip'),
  /** Tracker processes started by `npm start` (SO_REUSEPORT on Linux). */
  TRACKER_PROCESSES: z.coerce.number().int().min(1).max(64).default(1),
  /** CIDR list of proxies whose X-Forwarded-For / X-Event-Time are trusted. */
  TRUSTED_PROXIES: csv.default(['127.0.0.0/8', '::1/128']),
  /** How long an unknown link code is remembered as unknown, ms. */
  LINK_NEGATIVE_CACHE_MS: z.coerce.number().int().min(0).default(5_000),
  /**
   * Most unknown link codes a tracker process remembers at once (LRU: past it the least recently asked is forgotten),
   * so clicks on random codes cannot grow its memory.
   */
  LINK_NEGATIVE_CACHE_MAX: z.coerce.number().int().min(1).max(10_000_000).default(10_000),
  /** How often a tracker adds its local click-cap counts to the shared Redis counters, ms (README "Caps"). */
  CAP_FLUSH_MS: z.coerce.number().int().min(10).max(10_000).default(100),
  /**
   * Most bytes of spool files under DATA_DIR/spool (all processes' files, counted by each process); past it a group
   * that cannot reach Redis is dropped and counted (`tracker_spool_dropped_events_total`), never written. At 80 % a
   * `tracker.spool_near_cap` event is published (at most once per 5 minutes).
   */
  SPOOL_MAX_BYTES: z.coerce.number().int().min(1_024).max(Number.MAX_SAFE_INTEGER).default(1_073_741_824),
  /**
   * How often spool appends are fsynced, ms; a click's 302 does not wait for it, so a power loss can cost the last
   * interval of spooled clicks. 0 = every append group is fsynced before its clicks are answered.
   */
  SPOOL_FSYNC_MS: z.coerce.number().int().min(0).max(10_000).default(100),
  /** Max time a click waits to be grouped with others into one XADD, ms. 0 = next event-loop turn. */
  TRACKER_GROUP_COMMIT_MS: z.coerce.number().min(0).max(50).default(0),
  /** Readable name of this tracker instance in its spool file names (default: the host name); a random id owns them. */
  TRACKER_INSTANCE_ID: z.string().max(100).optional(),
  /** Redis command timeout on the click path before falling back to the spool, ms. */
  TRACKER_REDIS_TIMEOUT_MS: z.coerce.number().int().min(5).default(250),
  /**
   * MaxMind DB file (.mmdb) the tracker and the pipeline read the client's country from: the packaged
   * `@ip-location-db/geo-whois-asn-country-mmdb` file when unset; a MaxMind GeoIP2/GeoLite2 Country or City file works
   * too (`country.iso_code`). Loaded whole into memory once per process.
   */
  GEOIP_MMDB_PATH: z.string().min(1).optional(),
  /**
   * Where a click outside its campaign's targeting goes when the campaign has no `fallback_url` (macros allowed, as
   * in a fallback). The default is a page that always loads, so such traffic never dead-ends; networks set their own
   * (an offer wall, a smart link).
   */
  DEFAULT_FALLBACK_URL: z
    .string()
    .url()
    .regex(/^https?:\/\//i, 'must be an http(s) URL')
    .default('https://www.google.com/'),
  /**
   * How long a postback's event_id is remembered for the immediate `duplicate` answer, s (default 90 days; the
   * Postgres unique key dedups for ever behind it).
   */
  POSTBACK_DEDUP_TTL_S: z.coerce.number().int().min(60).max(31_536_000).default(7_776_000),
  /**
   * Browser conversions and pixel hits one client IP may send with one publishable key per
   * BROWSER_CONVERSION_RATE_WINDOW_S, per tracker process (in memory: no Redis call on that path).
   */
  BROWSER_CONVERSION_RATE_POINTS: z.coerce.number().int().min(1).default(20),
  /** Window of BROWSER_CONVERSION_RATE_POINTS, s. */
  BROWSER_CONVERSION_RATE_WINDOW_S: z.coerce.number().int().min(1).max(86_400).default(60),

  /**
   * Stream entries read per XREADGROUP; a batch (one fraud task and one ClickHouse insert) holds at most this
   * many entries and at most 10,000 events.
   */
  PIPELINE_BATCH_SIZE: z.coerce.number().int().min(1).max(100_000).default(2000),
  /** Longest wait for new entries before a partial batch is processed, ms. */
  PIPELINE_BLOCK_MS: z.coerce.number().int().min(1).max(60_000).default(100),
  /**
   * After the first click entries of a read arrive, how long the pipeline waits for more while the batch is
   * small (under 5,000 clicks), so per-batch costs are shared by more clicks; 0 = process at once, ms.
   */
  PIPELINE_LINGER_MS: z.coerce.number().int().min(0).max(5_000).default(200),
  /** Pending entries idle longer than this are taken over from a dead consumer, ms. */
  PIPELINE_CLAIM_IDLE_MS: z.coerce.number().int().min(100).default(30_000),
  /**
   * A click partition's lease: its owner (the one consumer that keeps the partition's fraud state) renews it
   * every third of this; a dead owner's partitions are taken over after at most this long (and at most
   * PIPELINE_CLAIM_IDLE_MS), ms.
   */
  PIPELINE_LEASE_MS: z.coerce.number().int().min(100).max(600_000).default(5_000),
  /** How often a click partition's fraud state is checkpointed to Redis while it is busy (and whenever it goes idle), ms. */
  PIPELINE_CHECKPOINT_MS: z.coerce.number().int().min(50).max(600_000).default(5_000),
  /** Consumer name in the stream groups (default: host name + pid). */
  PIPELINE_CONSUMER: z.string().optional(),
  /** Threads of the piscina fraud-scoring pool. */
  FRAUD_WORKERS: z.coerce.number().int().min(1).max(64).default(1),
  /**
   * Keys (IPs, IP+campaign, IP+link) each click partition's fraud state holds at most per table; the least
   * recently seen are evicted, so a flood of random IPs cannot grow memory. See tracker/fraud/state.ts.
   */
  FRAUD_STATE_MAX_KEYS: z.coerce.number().int().min(1_024).max(16_777_216).default(131_072),
  /** A click still without a conversion this long after it (event time) is a negative label for the fraud model, ms. */
  FRAUD_LABEL_DELAY_MS: z.coerce
    .number()
    .int()
    .min(1_000)
    .max(30 * 86_400_000)
    .default(600_000),
  /** Default attribution window for campaigns that do not set one, days. */
  ATTRIBUTION_WINDOW_DAYS: z.coerce.number().int().min(1).max(365).default(30),

  /** HS256 key of access tokens (32+ chars); required in production, else generated under DATA_DIR. */
  JWT_SECRET: z.string().min(32).optional(),
  /** `iss` of access tokens, checked on every request. */
  JWT_ISSUER: z.string().default('affiliate-tracker'),
  /** `aud` of access tokens, checked on every request. */
  JWT_AUDIENCE: z.string().default('affiliate-tracker-api'),
  /** Secure flag of the refresh cookie (default: on in production, off for local http). */
  COOKIE_SECURE: bool.optional(),
  /** API requests per client IP per window. */
  RATE_LIMIT_POINTS: z.coerce.number().int().min(1).default(100),
  /** Rate-limit window, s. */
  RATE_LIMIT_WINDOW_S: z.coerce.number().int().min(1).default(60),
  /** Consecutive failed logins that lock an account. */
  LOGIN_MAX_FAILURES: z.coerce.number().int().min(1).default(5),
  /** How long a locked account stays locked, s. */
  LOGIN_LOCK_S: z.coerce.number().int().min(1).default(900),
  /** How long after a rejection an affiliate must wait before asking to join the same private campaign again, s. */
  MEMBERSHIP_REREQUEST_COOLDOWN_S: z.coerce.number().int().min(0).default(604800),
  /** Login attempts (password or 2FA step) per client IP per LOGIN_IP_WINDOW_S; a success gives its point back. */
  LOGIN_IP_MAX_FAILURES: z.coerce.number().int().min(1).default(50),
  /** Window of the per-IP login budget, s. */
  LOGIN_IP_WINDOW_S: z.coerce.number().int().min(1).default(900),
  /** Absolute lifetime of a session from its login, s (default 30 days); refreshing never extends it past this. */
  SESSION_MAX_AGE_S: z.coerce.number().int().min(60).default(2_592_000),
  /** Admins must turn 2FA on: until then an admin may only call 2FA setup/verify and logout (TWO_FACTOR_SETUP_REQUIRED). */
  ADMIN_REQUIRE_2FA: bool.default(false),
  /**
   * Credit advertiser deposits at once, with no payment behind them (default: on in development and test, off in
   * production, where it is refused). Off: a deposit is pending until an admin (or a payment integration) confirms it.
   */
  WALLET_TEST_DEPOSITS: bool.optional(),
  /** Smallest affiliate withdrawal, minor units. */
  WITHDRAWAL_MIN_AMOUNT: z.coerce.number().int().min(0).default(1000),
  /** The network's tier-2 share: basis points of a sub-affiliate's payout paid to its recruiter (campaigns may override). */
  TIER2_SHARE_BP: z.coerce.number().int().min(0).max(10_000).default(0),
  /** The network's tier-3 share: basis points of the payout paid to the recruiter's recruiter. */
  TIER3_SHARE_BP: z.coerce.number().int().min(0).max(10_000).default(0),
  /**
   * Outbound deliveries (postbacks, webhooks): hosts (`host` or `host:port`) that may resolve to
   * private/loopback addresses. Every other destination resolving to one is refused (SSRF).
   */
  DELIVERY_ALLOWED_HOSTS: csv.default([]),
  /**
   * Key encrypting webhook signing secrets at rest (AES-256-GCM): 32 bytes as 64 hex chars or base64.
   * Required in production; in development/test it is generated once under DATA_DIR.
   */
  DELIVERY_SECRET_KEY: z.string().optional(),
  /**
   * Key encrypting users' TOTP (2FA) secrets at rest (AES-256-GCM): 32 bytes as 64 hex chars or base64.
   * Required in production; in development/test it is generated once under DATA_DIR.
   */
  TOTP_SECRET_KEY: z.string().optional(),
  /** Concurrent outbound requests per process. */
  DELIVERY_WORKERS: z.coerce.number().int().min(1).max(256).default(8),
  /** Concurrent outbound requests per destination host:port, across every process. */
  DELIVERY_PER_DESTINATION: z.coerce.number().int().min(1).max(64).default(2),
  /**
   * Concurrent outbound requests of one owner's endpoints across every process, so one owner's backlog or slow
   * receivers cannot take every worker (the workers also take owners in round-robin order).
   */
  DELIVERY_PER_OWNER: z.coerce.number().int().min(1).max(256).default(4),
  /** Postback endpoints one affiliate, and webhook endpoints one user, may have (not counting deleted ones). */
  DELIVERY_ENDPOINTS_PER_OWNER: z.coerce.number().int().min(1).max(10_000).default(25),
  /** Whole-request timeout of one delivery attempt, ms. */
  DELIVERY_TIMEOUT_MS: z.coerce.number().int().min(10).max(120_000).default(10_000),
  /** Delays between attempts, seconds; after the last one it repeats until DELIVERY_RETRY_WINDOW_S. */
  DELIVERY_RETRY_SCHEDULE_S: csv
    .transform((xs) => xs.map(Number))
    .pipe(z.array(z.number().int().min(1).max(86_400)).min(1))
    .default([30, 120, 600, 3600]),
  /** Retries stop (delivery marked failed, replayable by hand) this long after the first attempt, s. */
  DELIVERY_RETRY_WINDOW_S: z.coerce.number().int().min(1).default(86_400),
  /** An endpoint failing without a single success for this long is disabled and its owner notified, s. */
  DELIVERY_DISABLE_AFTER_S: z.coerce
    .number()
    .int()
    .min(60)
    .default(5 * 86_400),
  /** After a secret rotation the previous secret keeps signing (and verifying) this long, s. */
  DELIVERY_ROTATION_GRACE_S: z.coerce.number().int().min(0).default(86_400),
  /** Pending deliveries above this emit a `delivery.queue_alert` event. */
  DELIVERY_QUEUE_ALERT_THRESHOLD: z.coerce.number().int().min(1).default(100),
  /** How often idle workers look for due deliveries, ms. */
  DELIVERY_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(1_000),
});

/** Every environment variable the system reads (the README's configuration table lists each). */
export const CONFIG_KEYS: readonly string[] = Object.keys(schema.shape);

export type Config = Readonly<
  Omit<z.infer<typeof schema>, 'DATA_DIR' | 'COOKIE_SECURE' | 'WALLET_TEST_DEPOSITS'> & {
    /** Absolute path. */
    DATA_DIR: string;
    COOKIE_SECURE: boolean;
    /** Never true when NODE_ENV is `production`. */
    WALLET_TEST_DEPOSITS: boolean;
  }
>;

/** Thrown when the environment does not describe a valid configuration; the message lists every bad variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Reads and validates the configuration once, at start-up.
 * @param env usually `process.env`; tests pass their own object.
 * @throws ConfigError listing every invalid variable, or refusing WALLET_TEST_DEPOSITS=true with NODE_ENV=production.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  // Test deposits credit money nobody paid; a deployment must not get them by a forgotten variable (they are off
  // by default there) nor on purpose (a production system takes money only through a confirmed deposit).
  if (c.NODE_ENV === 'production' && c.WALLET_TEST_DEPOSITS === true)
    throw new ConfigError(
      'invalid configuration:\n  WALLET_TEST_DEPOSITS: must not be true with NODE_ENV=production (test deposits ' +
        'credit money nobody paid; unset it, and have an admin or a payment integration confirm each deposit)',
    );
  return Object.freeze({
    ...c,
    DATA_DIR: path.resolve(c.DATA_DIR),
    COOKIE_SECURE: c.COOKIE_SECURE ?? c.NODE_ENV === 'production',
    WALLET_TEST_DEPOSITS: c.WALLET_TEST_DEPOSITS ?? c.NODE_ENV !== 'production',
  });
}
