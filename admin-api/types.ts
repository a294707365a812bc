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

// --- Contract 4 (CONTRACTS.md): implemented by tracker/reports; defined here until it lands. ---
export type ReportGroupBy =
  | 'day'
  | 'hour'
  | 'campaign'
  | 'affiliate'
  | 'sub1'
  | 'sub2'
  | 'sub3'
  | 'sub4'
  | 'sub5'
  | 'country'
  | 'device';
export interface ReportQuery {
  group_by: ReportGroupBy;
  /** 'YYYY-MM-DD', inclusive, in tz. */
  from: string;
  /** 'YYYY-MM-DD', inclusive, in tz. */
  to: string;
  /** IANA time zone. */
  tz: string;
  campaign_id?: number;
  affiliate_id?: number;
  /** Scope: set for advertisers (only their campaigns). */
  advertiser_id?: number;
  page: number;
  per_page: number;
}
export interface ReportRow {
  key: string;
  currency: string;
  clicks: number;
  unique_clicks: number;
  invalid_clicks: number;
  conversions: number;
  cr: number;
  revenue: number;
  payout: number;
  profit: number;
  epc: number;
}
export interface Reports {
  report(q: ReportQuery): Promise<{ rows: ReportRow[]; total: number }>;
}

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
