/**
 * What the steps of a batch share: the pipeline's dependencies, and the context of one click or
 * conversion batch that the steps fill in, in order (see ../step-runner.ts and ../runner.ts).
 */
import type {
  ClickChargeSink,
  ClickHouseClient,
  Config,
  ConversionSink,
  Logger,
  PricedConversion,
  Redis,
  RedisKeys,
  Sql,
} from '../../../infra/index.ts';
import type { ClickEvent, ConversionEvent } from '../../events.ts';
import type { EngineRecord, EngineVerdict, FraudEngine } from '../../fraud/engine-pool.ts';
import type { Batch, DeadLetter, Decoded } from '../batches.ts';
import type { CampaignTerms, LinkDefaults } from '../campaigns.ts';
import type { BuiltClicks, ClickRow, StoredClick } from '../clicks.ts';
import type { LeadSignup } from '../leads.ts';
import type { PipelineMetrics } from '../metrics.ts';
import type { CustomerBinding } from '../recurring.ts';

/** Test-only fault injection. */
export interface PipelineTestHooks {
  /** Called after a batch's ClickHouse insert succeeded and before it is acknowledged. */
  afterInsert?(info: { stream: string; ids: string[]; token: string }): void | Promise<void>;
}

/** The pipeline's dependencies, as every step sees them. */
export interface PipelineDeps {
  config: Config;
  log: Logger;
  redis: Redis;
  sql: Sql;
  ch: ClickHouseClient;
  keys: RedisKeys;
  engine: FraudEngine;
  campaigns: { get(ids: number[]): Promise<Map<number, CampaignTerms>> };
  links: { get(codes: string[]): Promise<Map<string, LinkDefaults>> };
  conversionSink?: ConversionSink;
  clickChargeSink?: ClickChargeSink;
  testHooks?: PipelineTestHooks;
  /** Where the steps report rows, scores and latencies (absent: not measured). */
  metrics?: PipelineMetrics;
}

/** Position of a partition's fraud state: the last stream id its engine has processed. */
export interface PartitionPosition {
  at: string;
}

/** One click batch as its steps fill it in. */
export interface ClickCtx {
  deps: PipelineDeps;
  batch: Batch;
  position: PartitionPosition;
  dead: DeadLetter[];
  /** Decoded clicks in stream order, before de-duplication. */
  decoded: Array<Decoded<ClickEvent> & { mayRepeat: boolean }>;
  /** Label records (conversions of earlier clicks), with the entry they came in, in stream order. */
  labels: Array<{ id: string; record: EngineRecord }>;
  /** The clicks that count, in stream order (spooled copies of already processed clicks removed). */
  clicks: ClickEvent[];
  /** The stream entry of each of `clicks`. */
  clickEntries: string[];
  /** The fraud engine's input: `clicks` and the labels, in stream order. */
  records: EngineRecord[];
  /** Clicks dropped as copies of a click already processed. */
  duplicates: number;
  /** Set once by the score step and kept across retries of the batch: the state has moved past it. */
  verdicts?: EngineVerdict[];
  terms: Map<number, CampaignTerms>;
  defaults: Map<string, LinkDefaults>;
  /** The batch built for ClickHouse and the click store (./build-click-rows.ts). */
  built: BuiltClicks;
}

/** One conversion batch as its steps fill it in. */
export interface ConversionCtx {
  deps: PipelineDeps;
  batch: Batch;
  dead: DeadLetter[];
  decoded: Array<Decoded<ConversionEvent>>;
  /** The stored click of each decoded conversion (null: unknown, or attributed through its customer). */
  clicks: Array<StoredClick | null>;
  /** Bindings of the batch's customer-attributed conversions, by `bindingKey` (../recurring.ts). */
  bindings: Map<string, CustomerBinding>;
  /** Accepted leads stored by this batch, for the `lead_signup` events (../leads.ts). */
  leads: LeadSignup[];
  terms: Map<number, CampaignTerms>;
  rows: ClickRow[];
  accepted: PricedConversion[];
  /** Conversions stored by this batch, for the live events. */
  created: Array<{ c: ConversionEvent; reason: string | null; affiliate: number | null }>;
  /** Positive labels for the fraud model: the attributed conversions' clicks. */
  labels: Array<{ click_id: string; click_ts_ms: number; conversion_ts_ms: number; features: string }>;
  duplicates: number;
  rejected: number;
}
