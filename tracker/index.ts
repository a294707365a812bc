/**
 * The tracker's public surface: ingest (hot path), pipeline (streams → ClickHouse), fraud
 * scoring, reports and outbound deliveries (postbacks, webhooks). Other folders import the tracker only through this file.
 */

// --- wire format and ingest ---
export * from './events.ts';
// --- pipeline, fraud, reports (pipeline task) ---
export { type EngineClick, type EngineRecord, PartitionEngine } from './fraud/engine.ts';
export {
  CLICK_RULES,
  type ClickFeatures,
  combine,
  FRAUD_LIMITS,
  FRAUD_THRESHOLD,
  FRAUD_WEIGHTS,
  type FraudReason,
  type FraudVerdict,
  REASON_MIN_CONTRIBUTION,
  ruleBotUserAgent,
  ruleDuplicateClick,
  ruleEmptyUserAgent,
  ruleHeadRequest,
  ruleIpCampaignVelocity,
  ruleIpDailyVolume,
  ruleIpVelocity,
  ruleManyUserAgents,
  rulePrefetch,
  type ScorableClick,
  scoreClick,
  scoreConversionTiming,
} from './fraud/rules.ts';
export { LIMITS as INGEST_LIMITS, startTracker, type Tracker, type TrackerOptions } from './ingest/server.ts';
export { UuidV7 } from './ingest/uuid7.ts';
export {
  cpcCharges,
  percentOf,
  priceConversion,
} from './pipeline/campaigns.ts';
export type { ConversionRejectReason } from './pipeline/conversions.ts';
export {
  type Pipeline,
  type PipelineOptions,
  type PipelineStats,
  type StreamStats,
  startPipeline,
} from './pipeline/runner.ts';
export { settlementSink } from './pipeline/sinks.ts';
export { ensureStreamGroups, GROUP as PIPELINE_GROUP } from './pipeline/streams.ts';
export {
  type ClickLogQuery,
  type ClickLogRow,
  createReports,
  MAX_REPORT_DAYS,
  REPORT_GROUP_BY,
  type ReportGroupBy,
  type ReportQuery,
  type ReportRow,
  type Reports,
} from './reports/reports.ts';
// --- end pipeline ---

// --- deliveries ---
export {
  createDeliveries,
  createPostbackSchema,
  createWebhookSchema,
  DELIVERY_STATUSES,
  type Deliveries,
  updatePostbackSchema,
  updateWebhookSchema,
  webhookTargetSchema,
} from './deliveries/index.ts';
