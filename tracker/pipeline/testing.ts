/**
 * Fixtures for the pipeline's tests: seed rows and stream entries written exactly as the ingest
 * writes them (`entryFields` + `encodeClick`/`encodeConversion`). Not part of the product.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Config,
  type ConversionSink,
  createLogger,
  loadConfig,
  type PricedConversion,
  type Redis,
  type RedisKeys,
} from '../../infra/index.ts';
import type { Seeded, TestEnv } from '../../infra/testing/index.ts';
import { type ClickEvent, type ConversionEvent, encodeClick, encodeConversion, entryFields } from '../events.ts';
import { type Pipeline, type PipelineOptions, startPipeline } from './runner.ts';

export const PHONE_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';

/** A valid click on the seeded link; `over` replaces any field. */
export function makeClick(s: Seeded, over: Partial<ClickEvent> = {}): ClickEvent {
  const now = Date.now();
  return {
    click_id: randomUUID(),
    ts_ms: now,
    received_ms: now,
    link_code: s.linkCode,
    campaign_id: s.campaignId,
    affiliate_id: s.affiliateId,
    advertiser_id: s.advertiserId,
    ip: `10.0.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`,
    method: 'GET',
    query: 'sub1=alpha&sub2=beta',
    user_agent: PHONE_UA,
    referer: '',
    accept_language: 'en',
    purpose: '',
    invalid_reason: '',
    landing_id: 0,
    ...over,
  };
}

/** A conversion of a click by the seeded advertiser; `over` replaces any field. */
export function makeConversion(s: Seeded, clickId: string, over: Partial<ConversionEvent> = {}): ConversionEvent {
  const now = Date.now();
  return {
    conversion_id: randomUUID(),
    event_id: randomUUID(),
    click_id: clickId,
    advertiser_id: s.advertiserId,
    goal: '',
    amount_minor: -1,
    currency: '',
    status: 'approved',
    event_time_ms: now,
    received_ms: now,
    ip: '192.0.2.1',
    ...over,
  };
}

/** XADDs one entry holding the given clicks to click partition `p`; returns the entry id. */
export async function addClicks(redis: Redis, keys: RedisKeys, p: number, clicks: ClickEvent[]): Promise<string> {
  return (await redis.xadd(keys.clicks(p), '*', ...entryFields(clicks.map(encodeClick)))) as string;
}

/** XADDs one entry holding the given conversions to conversion partition `p`; returns the entry id. */
export async function addConversions(
  redis: Redis,
  keys: RedisKeys,
  p: number,
  convs: ConversionEvent[],
): Promise<string> {
  return (await redis.xadd(keys.conversions(p), '*', ...entryFields(convs.map(encodeConversion)))) as string;
}

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'test-child.ts');

/**
 * Forks a pipeline consumer (./test-child.ts) on `env`'s services, with its partitions, batch size, block and
 * claim times from `env.config` and `extraEnv` on top; it owns the chDB directory `chdbPath`. With
 * `killAfterClickInserts` > 0 it kills itself (SIGKILL) after that many click-batch inserts, before their ack.
 */
export function forkPipeline(
  env: TestEnv,
  o: { chdbPath: string; consumer: string; killAfterClickInserts?: number; extraEnv?: Record<string, string> },
): ChildProcess {
  const c = env.config;
  return fork(CHILD, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: c.LOG_LEVEL,
      DATA_DIR: c.DATA_DIR,
      DATABASE_URL: c.DATABASE_URL,
      REDIS_URL: c.REDIS_URL,
      REDIS_PREFIX: c.REDIS_PREFIX,
      STREAM_PARTITIONS: String(c.STREAM_PARTITIONS),
      PIPELINE_BATCH_SIZE: String(c.PIPELINE_BATCH_SIZE),
      PIPELINE_BLOCK_MS: String(c.PIPELINE_BLOCK_MS),
      PIPELINE_CLAIM_IDLE_MS: String(c.PIPELINE_CLAIM_IDLE_MS),
      ...o.extraEnv,
      CHDB_PATH: o.chdbPath,
      CONSUMER: o.consumer,
      KILL_AFTER_CLICK_INSERTS: String(o.killAfterClickInserts ?? 0),
    },
  });
}

/**
 * Starts a pipeline on `env`'s services (its config, Redis, Postgres and ClickHouse, a logger at its level);
 * `opts` adds the consumer name and replaces or adds any option.
 */
export function startTestPipeline(
  env: TestEnv,
  opts: Partial<PipelineOptions> & { consumerName: string },
): Promise<Pipeline> {
  return startPipeline({
    config: env.config,
    logger: createLogger({ level: env.config.LOG_LEVEL }),
    redis: env.redis,
    sql: env.sql,
    ch: env.ch!,
    ...opts,
  });
}

/**
 * {@link startTestPipeline} with maintenance every 100 ms and every accepted conversion appended to `sunk`.
 */
export function startCollectingPipeline(
  env: TestEnv,
  sunk: PricedConversion[],
  opts: Partial<PipelineOptions> & { consumerName: string },
): Promise<Pipeline> {
  return startTestPipeline(env, { maintenanceIntervalMs: 100, conversionSink: collectConversions(sunk), ...opts });
}

/** A conversion sink that appends every conversion it receives to `into`. */
export function collectConversions(into: PricedConversion[]): ConversionSink {
  return {
    async conversionRecorded(c) {
      into.push(c);
    },
  };
}

/**
 * The config of a tracker (port 0) and pipeline started inside a test on `env`'s data dir and Redis prefix,
 * with a 20 ms block; `extra` adds or replaces variables.
 */
export function trackerTestConfig(env: TestEnv, extra: Record<string, string>): Config {
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: env.config.LOG_LEVEL,
    DATA_DIR: env.dir,
    REDIS_PREFIX: env.config.REDIS_PREFIX,
    TRACKER_PORT: '0',
    PIPELINE_BLOCK_MS: '20',
    ...extra,
  });
}
