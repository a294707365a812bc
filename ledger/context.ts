/**
 * What every money flow shares: the dependencies, the clock, the input primitives, and {@link LedgerContext.run},
 * the transaction wrapper that publishes a flow's Redis messages only after it commits.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  type Config,
  type LiveEvent,
  type LiveEventType,
  type Logger,
  MAX_MINOR_UNITS,
  publishEvent,
  publishLinkInvalidation,
  type Redis,
  type RedisKeys,
  type Sql,
  type TransactionSql,
} from '../infra/index.ts';
import { inTransaction } from './postings.ts';

export interface LedgerDeps {
  sql: Sql;
  /** TIER2_SHARE_BP / TIER3_SHARE_BP: the network's tier shares (./rewards.ts); absent = 0. */
  config: Pick<Config, 'WALLET_TEST_DEPOSITS' | 'WITHDRAWAL_MIN_AMOUNT'> &
    Partial<Pick<Config, 'TIER2_SHARE_BP' | 'TIER3_SHARE_BP'>>;
  logger: Logger;
  /** Where wallet events and link invalidations go; absent → nothing is published (tests, scripts). */
  redis?: Redis;
  keys?: RedisKeys;
  /** Time source (tests move time forward for holds, expiry and wallet cool-down). */
  now?: () => Date;
  /** How long an unconfirmed deposit stays pending before it is voided, ms. Default 7 days. */
  depositTtlMs?: number;
}

export const currency = z.string().regex(/^[A-Z]{3}$/, 'ISO 4217 code, upper case');
/** A money amount in a request: a positive integer up to MAX_MINOR_UNITS (infra/contracts.ts §6), minor units. */
export const minor = z.number().int().positive().max(MAX_MINOR_UNITS);
export const idemKey = z.string().min(1).max(200);
export const id = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/** Side effects collected during a transaction and published after it commits. */
export class Effects {
  events: Array<{ type: LiveEventType; user_ids: number[]; data: Record<string, unknown> }> = [];
  invalidations: number[] = [];
  wallet(userIds: Array<number | null | undefined>, data: Record<string, unknown>): void {
    const ids = [...new Set(userIds.filter((u): u is number => typeof u === 'number' && u > 0))];
    this.events.push({ type: 'wallet.updated', user_ids: ids, data });
  }
}

/** The ledger's dependencies with defaults applied, shared by every flow of one {@link createContext}. */
export interface LedgerContext {
  sql: Sql;
  config: LedgerDeps['config'];
  log: Logger;
  now: () => Date;
  /** The UTC day (YYYY-MM-DD) spend is booked on, for daily caps. */
  today: () => string;
  /** ms; see {@link LedgerDeps.depositTtlMs}. */
  depositTtlMs: number;
  /** Runs a flow in one transaction (retried on deadlock / serialization failure), then publishes its effects. */
  run<T>(fn: (tx: TransactionSql, fx: Effects) => Promise<T>): Promise<T>;
}

export function createContext(deps: LedgerDeps): LedgerContext {
  const { sql, config } = deps;
  const log = deps.logger.child({ module: 'ledger' });
  const now = deps.now ?? (() => new Date());
  const depositTtlMs = deps.depositTtlMs ?? 7 * 24 * 3600_000;

  async function publish(fx: Effects): Promise<void> {
    const { redis, keys } = deps;
    if (!redis || !keys) return;
    try {
      for (const campaignId of new Set(fx.invalidations)) {
        await publishLinkInvalidation(redis, keys, { campaign_id: campaignId });
      }
      for (const e of fx.events) {
        const event: LiveEvent = { id: randomUUID(), created_at: now().toISOString(), ...e };
        await publishEvent(redis, keys, event);
      }
    } catch (err) {
      // The money moved and is committed; a lost notification must not turn into a failed request.
      log.warn({ err: String(err) }, 'could not publish ledger events');
    }
  }

  async function run<T>(fn: (tx: TransactionSql, fx: Effects) => Promise<T>): Promise<T> {
    // A retried attempt starts with no effects: only the committed attempt's are published.
    let fx = new Effects();
    const result = await inTransaction(sql, (tx) => {
      fx = new Effects();
      return fn(tx, fx);
    });
    await publish(fx);
    return result;
  }

  return { sql, config, log, now, today: () => now().toISOString().slice(0, 10), depositTtlMs, run };
}
