/**
 * Test fixtures for the ledger's tests (users, campaigns, stored conversions) and the world each money-flow test
 * file runs in. Not part of the public surface.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { AppError, createLogger, createRedis, type Redis, type Sql } from '../infra/index.ts';
import { createTestEnv, makeCampaign as insertCampaign, makeUser, type TestEnv } from '../infra/testing/index.ts';
import { checkInvariants, createLedger, type Ledger, type LedgerDeps } from './index.ts';

export { makeConversion, makeUser } from '../infra/testing/index.ts';

export const HOUR = 3600_000;

/** Inserts a draft campaign (CPA unless told) in the ledger tests' terms and returns its id. */
export async function makeCampaign(
  sql: Sql,
  o: {
    advertiserId: number;
    currency?: string;
    budget?: number | null;
    dailyCap?: number | null;
    revenue?: number;
    payout?: number;
    model?: 'CPA' | 'CPC' | 'RevShare';
    holdDays?: number;
    revenuePercentBp?: number;
    payoutPercentBp?: number;
  },
): Promise<number> {
  return insertCampaign(sql, o.advertiserId, {
    payout_model: o.model ?? 'CPA',
    currency: o.currency ?? 'USD',
    payout_amount: o.payout ?? 0,
    revenue_amount: o.revenue ?? 0,
    payout_percent_bp: o.payoutPercentBp ?? null,
    revenue_percent_bp: o.revenuePercentBp ?? null,
    budget: o.budget ?? null,
    daily_cap: o.dailyCap ?? null,
    hold_days: o.holdDays ?? 0,
  });
}

/** Campaign terms in the ledger tests' words; see {@link makeCampaign}. */
export type CampaignTerms = Parameters<typeof makeCampaign>[1];

/**
 * The usual start of a money-flow test: an advertiser and an affiliate, a campaign on `terms` that the advertiser
 * funds with `fund` minor units of USD (idempotency key 'f') and activates.
 * @returns the user ids and the campaign id.
 */
export async function runningCampaign(
  { env, ledger }: Pick<LedgerWorld, 'env' | 'ledger'>,
  terms: Omit<CampaignTerms, 'advertiserId'>,
  fund: number,
): Promise<{ adv: number; aff: number; camp: number }> {
  const adv = await makeUser(env.sql, 'advertiser');
  const aff = await makeUser(env.sql, 'affiliate');
  const camp = await makeCampaign(env.sql, { advertiserId: adv, ...terms });
  await ledger.fund({ advertiserId: adv, amount: fund, currency: 'USD', reference: 'r', idempotencyKey: 'f' });
  await ledger.activateCampaign(camp);
  return { adv, aff, camp };
}

/** Awaits `p` and asserts it fails with AppError `code`. @returns that error. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AppError, `expected AppError ${code}, got ${String(err)}`);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected ${code}`);
}

/** One test file's services and ledger; the fields are set once its `before` hook has run. */
export interface LedgerWorld {
  env: TestEnv;
  /** A ledger with the test config, publishing to the file's Redis, on {@link LedgerWorld.clock}. */
  ledger: Ledger;
  /** The ledgers' time, epoch ms; tests move it forward for holds, expiry and wallet cool-down. */
  clock: number;
  /** Every pub/sub message on the events and link-invalidation channels so far. */
  messages: Array<{ channel: string; msg: Record<string, unknown> }>;
  /** Another ledger over the same database and clock; it publishes only with `redis: true`. */
  ledgerWith(o: { config?: Partial<LedgerDeps['config']>; depositTtlMs?: number; redis?: boolean }): Ledger;
  /** Waits (up to 5 s) until a message matching `pred` has arrived; delivery time varies with load. */
  received(pred: (m: LedgerWorld['messages'][number]) => boolean): Promise<boolean>;
}

/**
 * Registers the `before`/`after` hooks of a ledger test file (call it inside the top `describe`): a test
 * database and Redis, a subscriber on the ledger's channels, and, after the file, the audit that every
 * invariant still holds.
 */
export function ledgerWorld(): LedgerWorld {
  const logger = createLogger({ level: 'silent' });
  let sub: Redis;
  const world: LedgerWorld = {
    env: undefined as unknown as TestEnv,
    ledger: undefined as unknown as Ledger,
    clock: Date.now(),
    messages: [],
    ledgerWith(o) {
      const { env } = world;
      return createLedger({
        sql: env.sql,
        config: { ...env.config, ...o.config },
        logger,
        redis: o.redis ? env.redis : undefined,
        keys: o.redis ? env.keys : undefined,
        now: () => new Date(world.clock),
        depositTtlMs: o.depositTtlMs,
      });
    },
    async received(pred) {
      for (let i = 0; i < 500 && !world.messages.some(pred); i++) await new Promise((r) => setTimeout(r, 10));
      return world.messages.some(pred);
    },
  };
  before(async () => {
    world.env = await createTestEnv();
    world.ledger = world.ledgerWith({ redis: true });
    sub = createRedis(world.env.config.REDIS_URL!);
    sub.on('message', (channel: string, m: string) => world.messages.push({ channel, msg: JSON.parse(m) }));
    await sub.subscribe(world.env.keys.events, world.env.keys.linkInvalidation);
  });
  after(async () => {
    assert.deepEqual(await checkInvariants(world.env.sql), []);
    sub.disconnect();
    await world.env.close();
  });
  return world;
}
