/**
 * Shared plumbing: configuration, logging, errors, connections, migrations, local services.
 * Every other folder imports infra only through this file.
 */

export { stopChildProcess } from './child-services.ts';
export { type ClickHouseClient, createClickHouse } from './clickhouse.ts';
export { CONFIG_KEYS, type Config, ConfigError, loadConfig } from './config.ts';
export {
  BROWSER_FAMILIES,
  type BrowserFamily,
  CAMPAIGN_STATUSES,
  type CampaignStatus,
  type ClickCharge,
  type ClickChargeSink,
  type ConversionRef,
  type ConversionSink,
  DEVICE_TARGETS,
  type DeviceTarget,
  type GoalPriceOverride,
  goalTerms,
  isPermanentRefusal,
  LINK_CODE_RE,
  LINK_CODE_RULE,
  type LinkInvalidation,
  MAX_MINOR_UNITS,
  OS_FAMILIES,
  type OsFamily,
  PAYOUT_MODELS,
  type PayoutModel,
  PERMANENT_REFUSAL_CODES,
  type PricedConversion,
  type PriceTerms,
  publishLinkInvalidation,
  UUID_RE,
} from './contracts.ts';
export { DIST_DIR, nodeEntry } from './entry.ts';
export {
  AppError,
  ERROR_STATUS,
  type ErrorBody,
  type ErrorCode,
  errorBody,
  type FieldErrors,
  isRetriable,
  parseWith,
  RetriableError,
  validationError,
  zodDetails,
} from './errors.ts';
export { type EventRecipient, eventFor } from './event-policy.ts';
export {
  CAP_THRESHOLDS,
  type CapThresholdData,
  capThreshold,
  EVENT_LOG_MAXLEN,
  eventLogKey,
  type LiveEvent,
  type LiveEventType,
  publishEvent,
} from './events.ts';
export {
  compileAllowlist,
  IpAllowlist,
  MAX_ALLOWLIST_ENTRIES,
  normaliseAllowlistEntry,
  type PostbackRefusal,
  parsePostbackRefusal,
  publishPostbackInvalidation,
  REFUSALS_MAXLEN,
  recordPostbackRefusal,
} from './ip-allowlist.ts';
export { createLogger, type Logger } from './logger.ts';
export {
  type Counter,
  counterOn,
  createMetricsRegistry,
  type Gauge,
  gaugeOn,
  type Histogram,
  histogramOn,
  LATENCY_BUCKETS_S,
  type MetricsServer,
  READY_CHECK_TIMEOUT_MS,
  type Readiness,
  type ReadyCheck,
  type Registry,
  runReadyChecks,
  serveMetrics,
} from './metrics.ts';
export { MigrationError, migrateClickHouse, migratePostgres, readMigrations } from './migrate.ts';
export { createSql, type Sql, type TransactionSql } from './postgres.ts';
export { mulberry32 } from './random.ts';
export { type CreateRedisOptions, createRedis, isCluster, type Redis, type RedisKeys, redisKeys } from './redis.ts';
export { operatorDatabaseUrl, type RuntimeInfo, readRuntime, writeRuntime } from './runtime.ts';
export { decryptSecret, encryptSecret, loadSecretKey, parseSecretKey, type SecretKeyName } from './secrets.ts';
export {
  ensureRedisServerBinary,
  freePort,
  type LocalRedisCluster,
  type LocalRedisNode,
  type LocalService,
  ServiceStartError,
  startEmbeddedPostgres,
  startLocalRedis,
  startLocalRedisCluster,
} from './services.ts';
