import type { Config, Logger, Redis, Sql } from '../infra/index.ts';
import type { Deliveries } from '../tracker/index.ts';

export type Role = 'admin' | 'advertiser' | 'affiliate';
export const ROLES: readonly Role[] = ['admin', 'advertiser', 'affiliate'];

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

/** Report types: contract 4, implemented by `tracker/reports` (`createReports`). */
import type { Reports } from '../tracker/index.ts';

export type {
  ClickLogQuery,
  ClickLogRow,
  ReportGroupBy,
  ReportQuery,
  ReportRow,
  Reports,
} from '../tracker/index.ts';

/** Ledger seam: the advertiser's spendable balance in minor units of `currency`. */
export interface Wallet {
  availableBalance(advertiserId: number, currency: string): Promise<number>;
}

/** Everything the API needs, injected so the integrator wires the real parts. */
export interface ApiDeps {
  config: Config;
  logger: Logger;
  sql: Sql;
  redis: Redis;
  /** ClickHouse reports (contract 4); absent → `GET /reports` answers 503 SERVICE_UNAVAILABLE. */
  reports?: Reports;
  /** Ledger balance check for campaign budgets; absent → the check is skipped. */
  wallet?: Wallet;
  /**
   * Outbound deliveries (postbacks, webhooks) from `tracker/` (`createDeliveries`); absent → the
   * `/postbacks` and `/webhooks` routes answer 503 SERVICE_UNAVAILABLE. Whoever creates it starts it.
   */
  deliveries?: Deliveries;
  /** SSE heartbeat interval, ms (default 15 000). */
  sseHeartbeatMs?: number;
}
