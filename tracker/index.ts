/**
 * Public surface of the tracker: the stream wire format, the ingest server and its link-cache
 * invalidation contract (CONTRACTS.md §1, §2, §6).
 */
export * from './events.ts';
export { type LinkInvalidation, publishLinkInvalidation } from './ingest/link-cache.ts';
export { LIMITS as INGEST_LIMITS, startTracker, type Tracker, type TrackerOptions } from './ingest/server.ts';
export { UuidV7 } from './ingest/uuid7.ts';
