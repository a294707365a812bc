import type { Config, Logger, ReadyCheck, Redis, Registry, Sql } from '../infra/index.ts';
import type { Ledger } from '../ledger/index.ts';
import type { Analytics, Deliveries } from '../tracker/index.ts';

/** `analyst`: created by an admin, reads reports and ClickHouse data (network-wide or scoped), changes nothing. */
export type Role = 'admin' | 'advertiser' | 'affiliate' | 'analyst';
export const ROLES: readonly Role[] = ['admin', 'advertiser', 'affiliate', 'analyst'];

/** Who is calling: a user through a session access token, or an integration through an API key. */
export interface Principal {
  kind: 'session' | 'api_key';
  user_id: number;
  role: Role;
  /** Session id (the JWT `sid` claim); absent for API keys. */
  sid?: string;
  /** API key id and scopes; absent for sessions (which have every scope of their role). */
  api_key_id?: number;
  scopes?: string[];
  /** `test` API keys see only test-mode data. */
  mode: 'live' | 'test';
}

/** Report types, implemented by `tracker/reports` (`createReports`). */
import type { Reports } from '../tracker/index.ts';

export type { Ledger } from '../ledger/index.ts';
export type {
  ClickLogQuery,
  ClickLogRow,
  ReportGroupBy,
  ReportQuery,
  ReportRow,
  Reports,
} from '../tracker/index.ts';

/** Everything the API needs, injected so the integrator wires the real parts. */
export interface ApiDeps {
  config: Config;
  logger: Logger;
  sql: Sql;
  redis: Redis;
  /** ClickHouse reports; absent → `GET /reports` answers 503 SERVICE_UNAVAILABLE. */
  reports?: Reports;
  /**
   * The ledger (`createLedger` from `ledger/`): wallet routes, conversion status changes, campaign budget
   * reservation on activation. Absent → `/wallet/*` and the conversion status routes answer 503
   * SERVICE_UNAVAILABLE, and campaign status changes skip the budget reservation.
   */
  ledger?: Ledger;
  /**
   * Outbound deliveries (postbacks, webhooks) from `tracker/` (`createDeliveries`); absent → the
   * `/postbacks` and `/webhooks` routes answer 503 SERVICE_UNAVAILABLE. Whoever creates it starts it.
   */
  deliveries?: Deliveries;
  /** Read-only SQL over ClickHouse (`createAnalytics`); absent → `POST /analytics/query` answers 503 SERVICE_UNAVAILABLE. */
  analytics?: Analytics;
  /** SSE heartbeat interval, ms (default 15 000). */
  sseHeartbeatMs?: number;
  /**
   * The process's metrics registry, served at `GET /metrics` (the pipeline's and the deliveries' metrics too when
   * they run in this process on it); default a new one with the default process metrics.
   */
  registry?: Registry;
  /** Checks `GET /readyz` runs besides Redis and Postgres, by name (e.g. `clickhouse`), each bounded by a timeout. */
  readyChecks?: Record<string, ReadyCheck>;
}
