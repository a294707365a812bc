/**
 * The tracker's public surface: what other folders use of the pipeline (streams → ClickHouse), fraud
 * scoring, reports, outbound deliveries (postbacks, webhooks) and the wire format. Other folders import the
 * tracker only through this file; tests inside tracker import the modules directly.
 */

// --- deliveries ---
export {
  createDeliveries,
  createPostbackSchema,
  createWebhookSchema,
  DELIVERY_STATUSES,
  type Deliveries,
  updatePostbackSchema,
  updateWebhookSchema,
  WEBHOOK_EVENTS,
  type WebhookEvent,
  webhookTargetSchema,
} from './deliveries/index.ts';
// --- wire format (bench writes stream entries as the ingest does) ---
export { type ClickEvent, encodeClick, entryFields, partitionOf } from './events.ts';
// --- fraud (bench drives one partition's engine) ---
export { PartitionEngine } from './fraud/engine.ts';
export type { EngineClick, EngineRecord } from './fraud/engine-types.ts';
// --- ingest (admin-api tests click through a real tracker) ---
export { startTracker } from './ingest/server.ts';
// --- pipeline ---
export { startPipeline } from './pipeline/runner.ts';
export { settlementSink } from './pipeline/sinks.ts';
export type { PipelineTestHooks } from './pipeline/steps/context.ts';
// --- reports ---
export {
  ANALYTICS_TABLES,
  type Analytics,
  type AnalyticsLimits,
  type AnalyticsQuery,
  type AnalyticsScope,
  createAnalytics,
} from './reports/analytics.ts';
export {
  CONVERSION_EXPORT_COLUMNS,
  decodeExportCursor,
  type ExportClickRow,
  type ExportConversionRow,
  type ExportCursor,
  type ExportKind,
  type ExportPage,
  type ExportPageQuery,
  encodeExportCursor,
  MAX_EXPORT_PAGE_ROWS,
} from './reports/exports.ts';
export {
  type ClickLogQuery,
  type ClickLogRow,
  createReports,
  REPORT_GROUP_BY,
  type ReportGroupBy,
  type ReportQuery,
  type ReportRow,
  type Reports,
} from './reports/reports.ts';
