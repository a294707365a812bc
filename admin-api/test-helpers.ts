/**
 * Helpers for the admin API's tests: a real server on port 0 over a fresh test environment, and a
 * small HTTP client. Not part of the public surface.
 */

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createLogger, type Redis } from '../infra/index.ts';
import { createTestEnv, type TestEnv } from '../infra/testing/index.ts';
import { createLedger, type Ledger } from '../ledger/index.ts';
import {
  type AnalyticsLimits,
  createAnalytics,
  createDeliveries,
  createReports,
  type Deliveries,
  startPipeline,
  startTracker,
} from '../tracker/index.ts';
import { type RunningApi, startApi } from './app.ts';
import { createAdmin } from './create-admin.ts';
import { hashPassword } from './security.ts';
import type { ApiDeps, Role } from './types.ts';

export interface Res {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: test responses are inspected loosely
  body: any;
  text: string;
}

export interface CallOpts {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
  cookie?: string;
  raw?: string;
}

export interface TestApi {
  env: TestEnv;
  api: RunningApi;
  /** The real ledger the API uses (when started with `ledger: true`). */
  ledger?: Ledger;
  url: string;
  call(method: string, path: string, opts?: CallOpts): Promise<Res>;
  /** Registers (or, for admins, creates) a user and logs in. */
  user(role: Role, name?: string): Promise<TestUser>;
  close(): Promise<void>;
}

export interface TestUser {
  id: number;
  role: Role;
  email: string;
  password: string;
  token: string;
  cookie: string;
}

let seq = 0;

/** The refresh cookie (`name=value`) from a response's Set-Cookie headers. */
export function refreshCookieOf(res: Res): string {
  const c = res.headers.getSetCookie().find((h) => h.startsWith('refresh_token='));
  return c ? c.split(';')[0]! : '';
}

/**
 * Starts the API with the given optional seams on a fresh environment. With `clickhouse: true` the
 * environment gets a private chDB (migrated) and the API the real reports over it (`t.env.ch`);
 * without it the API has no reports (`GET /reports*` → 503).
 */
export async function startTestApi(
  opts: {
    env?: Record<string, string>;
    clickhouse?: boolean;
    /** Wires the real ledger (`createLedger` over the test database and Redis) as `deps.ledger`. */
    ledger?: boolean;
    sseHeartbeatMs?: number;
    /** Limits of the analytics engine (default DEFAULT_ANALYTICS_LIMITS). */
    analyticsLimits?: AnalyticsLimits;
    /** Builds the deliveries engine on the test environment (not started). */
    deliveries?: (env: TestEnv) => ApiDeps['deliveries'];
  } = {},
): Promise<TestApi> {
  const env = await createTestEnv({
    clickhouse: opts.clickhouse,
    env: { RATE_LIMIT_POINTS: '100000', ...opts.env },
  });
  // The tests' campaigns point at *.example.com from websites of any name: approve that domain once, as an admin
  // would (admin-api/routes/approved-hosts.test.ts uses other domains to test the refusals).
  await env.sql`insert into approved_hosts (host, reason) values ('example.com', 'test fixture') on conflict do nothing`;
  const logger = createLogger({ level: env.config.LOG_LEVEL });
  const ledger = opts.ledger
    ? createLedger({ sql: env.sql, config: env.config, logger, redis: env.redis, keys: env.keys })
    : undefined;
  const api = await startApi(
    {
      config: env.config,
      logger,
      sql: env.sql,
      redis: env.redis,
      reports: env.ch ? createReports(env.ch) : undefined,
      analytics: env.ch ? createAnalytics(env.ch, opts.analyticsLimits) : undefined,
      ledger,
      sseHeartbeatMs: opts.sseHeartbeatMs,
      deliveries: opts.deliveries?.(env),
    },
    { port: 0 },
  );
  const base = `${api.url}/api/v1`;
  async function call(method: string, path: string, o: CallOpts = {}): Promise<Res> {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.cookie) headers.cookie = o.cookie;
    let body: string | undefined = o.raw;
    if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const r = await fetch(base + path, { method: method.toUpperCase(), headers, body });
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {}
    return { status: r.status, headers: r.headers, body: parsed, text };
  }
  async function user(role: Role, name = `${role} ${++seq}`): Promise<TestUser> {
    const email = `${role}${++seq}-${Math.random().toString(36).slice(2, 8)}@example.com`;
    const password = 'correct-horse-battery';
    let id: number;
    if (role === 'admin') id = (await createAdmin(env.sql, { email, password })).id;
    else if (role === 'analyst') {
      // Analysts are created by an admin (POST /analysts); network-wide here.
      const [a] = await env.sql<{ id: number }[]>`insert into users (role, name, email, password_hash)
        values ('analyst', ${name}, ${email}, ${await hashPassword(password)}) returning id`;
      id = a!.id;
    } else {
      const r = await call('post', '/auth/register', { body: { name, email, password, role } });
      if (r.status !== 201) throw new Error(`register failed: ${r.text}`);
      id = r.body.data.id;
    }
    const l = await call('post', '/auth/login', { body: { email, password } });
    if (l.status !== 200) throw new Error(`login failed: ${l.text}`);
    return { id, role, email, password, token: l.body.data.access_token, cookie: refreshCookieOf(l) };
  }
  return {
    env,
    api,
    ledger,
    url: base,
    call,
    user,
    async close() {
      await api.close();
      await env.close();
    },
  };
}

/** The `error` of a 400 VALIDATION_ERROR answer with these `details` (per field, or the rule's context). */
export function validationError(details: Record<string, unknown>, message = 'request validation failed') {
  return { code: 'VALIDATION_ERROR', message, details };
}

/** The whole body of a 400 VALIDATION_ERROR answer: see {@link validationError}. */
export function validationFailed(details: Record<string, unknown>, message?: string) {
  return { success: false, error: validationError(details, message) };
}

/**
 * Starts the API with the real deliveries engine (built, not started; stop it with `deliveries.stop()`), allowed to
 * deliver to loopback receivers (`DELIVERY_ALLOWED_HOSTS=127.0.0.1`).
 */
export async function startWithDeliveries(): Promise<{ t: TestApi; deliveries: Deliveries }> {
  let deliveries: Deliveries | undefined;
  const t = await startTestApi({
    env: { DELIVERY_ALLOWED_HOSTS: '127.0.0.1' },
    deliveries: (env) => {
      deliveries = createDeliveries({
        sql: env.sql,
        redis: env.redis,
        keys: env.keys,
        config: env.config,
        logger: createLogger({ level: 'silent' }),
      });
      return deliveries;
    },
  });
  return { t, deliveries: deliveries! };
}

/** Registers (admins: creates) and logs in one user per entry: `users(t, { admin: 'admin', adv: 'advertiser' })`. */
export async function users<K extends string>(t: TestApi, roles: Record<K, Role>): Promise<Record<K, TestUser>> {
  const out = {} as Record<K, TestUser>;
  for (const [k, role] of Object.entries(roles) as Array<[K, Role]>) out[k] = await t.user(role);
  return out;
}

/**
 * Runs `fn` against an API started without any optional seam (no ledger, reports or deliveries) and a
 * logged-in user of `role`, then closes that API.
 */
export async function withBareApi(role: Role, fn: (bare: TestApi, u: TestUser) => Promise<void>): Promise<void> {
  const bare = await startTestApi();
  try {
    await fn(bare, await bare.user(role));
  } finally {
    await bare.close();
  }
}

/** Collects the link-invalidation messages the API publishes (`messages`), until `close()`. */
export async function watchInvalidations(t: TestApi): Promise<{ messages: string[]; close(): void }> {
  const messages: string[] = [];
  const sub: Redis = t.env.redis.duplicate();
  sub.on('message', (_c: string, m: string) => messages.push(m));
  await sub.subscribe(t.env.keys.linkInvalidation);
  return { messages, close: () => sub.disconnect() };
}

/** Credits `amount` USD to `owner`'s wallet through the ledger (needs `startTestApi({ ledger: true })`). */
export async function fund(t: TestApi, owner: TestUser, amount: number): Promise<void> {
  await t.ledger!.fund({
    advertiserId: owner.id,
    amount,
    currency: 'USD',
    reference: 'test funds',
    idempotencyKey: `fund-${owner.id}-${amount}`,
  });
}

/** What {@link startLedgerApi} set up. */
export interface LedgerCast {
  t: TestApi;
  admin: TestUser;
  adv: TestUser;
  adv2: TestUser;
  aff: TestUser;
  aff2: TestUser;
  /** adv's approved website. */
  websiteId: number;
}

/**
 * Starts the API over the real ledger with an admin, two advertisers and two affiliates, the first advertiser owning
 * an approved website (no money anywhere yet).
 */
export async function startLedgerApi(): Promise<LedgerCast> {
  const t = await startTestApi({ ledger: true });
  const cast = await users(t, {
    admin: 'admin',
    adv: 'advertiser',
    adv2: 'advertiser',
    aff: 'affiliate',
    aff2: 'affiliate',
  });
  return { t, ...cast, websiteId: await approvedWebsite(t, cast.adv, cast.admin) };
}

/** Creates a website of `owner` through the API, has `admin` approve it, and returns its id. */
export async function approvedWebsite(
  t: TestApi,
  owner: TestUser,
  admin: TestUser,
  body: { url: string; name: string } = { url: 'https://shop.example.com', name: 'Shop' },
): Promise<number> {
  const w = await t.call('post', '/websites', { token: owner.token, body });
  assert.equal(w.status, 201, w.text);
  await t.call('post', `/websites/${w.body.data.id}/approve`, { token: admin.token });
  return w.body.data.id;
}

/** Creates a draft CPA campaign (payout 700, revenue 1000, USD) of `owner` on `websiteId` and returns its id. */
export async function createBudgetedCampaign(
  t: TestApi,
  owner: TestUser,
  websiteId: number,
  budget: number | null,
  extra: Record<string, unknown> = {},
): Promise<number> {
  const r = await t.call('post', '/campaigns', {
    token: owner.token,
    body: {
      website_id: websiteId,
      name: 'Budgeted',
      destination_url: 'https://shop.example.com/?c={click_id}',
      payout_model: 'CPA',
      payout: 700,
      revenue: 1000,
      currency: 'USD',
      budget,
      ...extra,
    },
  });
  assert.equal(r.status, 201, r.text);
  return r.body.data.id;
}

/** Activates campaign `id` of `owner` through the API. */
export async function activateCampaign(t: TestApi, owner: TestUser, id: number): Promise<void> {
  const r = await t.call('post', `/campaigns/${id}/status`, { token: owner.token, body: { status: 'active' } });
  assert.equal(r.status, 200, r.text);
}

/** `owner`'s wallet balance in `currency` as `GET /wallet/balance` answers it (`{}` when it has none). */
export async function balanceOf(t: TestApi, owner: TestUser, currency = 'USD'): Promise<Record<string, number>> {
  const r = await t.call('get', `/wallet/balance?currency=${currency}`, { token: owner.token });
  assert.equal(r.status, 200, r.text);
  return r.body.data.balances[0] ?? {};
}

/**
 * Stores a pending conversion (payout 700, revenue 1000, USD) as the pipeline would and books it through the
 * ledger (infra/contracts.ts §4); needs `startTestApi({ ledger: true })`.
 */
export async function bookConversion(
  t: TestApi,
  o: { campaignId: number; advertiserId: number; affiliateId: number },
): Promise<{ id: string; eventId: string; clickId: string }> {
  const id = randomUUID();
  const eventId = `order-${id.slice(0, 8)}`;
  const clickId = randomUUID();
  await t.env.sql`
    insert into conversions (id, advertiser_id, event_id, click_id, campaign_id, affiliate_id, status, currency,
      payout, revenue, event_time)
    values (${id}, ${o.advertiserId}, ${eventId}, ${clickId}, ${o.campaignId}, ${o.affiliateId}, 'pending', 'USD',
      700, 1000, now())`;
  const outcome = await t.ledger!.conversionRecorded({ id });
  assert.equal(outcome.type, 'posted', JSON.stringify(outcome));
  return { id, eventId, clickId };
}

/** The whole stack of {@link startStack}, with its users and campaign. */
export interface Stack {
  t: TestApi;
  admin: TestUser;
  adv: TestUser;
  aff: TestUser;
  /** `adv`'s active CPA campaign (revenue 1000, payout 700 USD, budget 500.00), wallet funded with 1000.00. */
  campaignId: number;
  tracker: Awaited<ReturnType<typeof startTracker>>;
  pipeline: Awaited<ReturnType<typeof startPipeline>>;
  /** The running deliveries engine (webhooks, postbacks) when started with `{ deliveries: true }`. */
  deliveries?: Deliveries;
  /** Stops the pipeline, the tracker, then the API and its environment. */
  close(): Promise<void>;
}

/**
 * Clicks and postbacks end to end: the API (ClickHouse, ledger) with an admin, an advertiser and an affiliate, a real
 * tracker and the pipeline (one partition) into chDB and the real ledger, and an active funded campaign. With
 * `deliveries: true` the deliveries engine runs too (webhooks and postbacks, loopback receivers allowed); `env` adds
 * configuration.
 */
export async function startStack(opts: { deliveries?: boolean; env?: Record<string, string> } = {}): Promise<Stack> {
  let deliveries: Deliveries | undefined;
  const t = await startTestApi({
    clickhouse: true,
    ledger: true,
    env: {
      STREAM_PARTITIONS: '1',
      PIPELINE_BLOCK_MS: '20',
      TRACKER_PORT: '0',
      ...(opts.deliveries ? { DELIVERY_ALLOWED_HOSTS: '127.0.0.1', DELIVERY_POLL_MS: '100' } : {}),
      ...opts.env,
    },
    deliveries: opts.deliveries
      ? (env) => {
          deliveries = createDeliveries({
            sql: env.sql,
            redis: env.redis,
            keys: env.keys,
            config: env.config,
            logger: createLogger({ level: 'silent' }),
          });
          return deliveries;
        }
      : undefined,
  });
  await deliveries?.start();
  const admin = await t.user('admin');
  const adv = await t.user('advertiser');
  const aff = await t.user('affiliate');
  const websiteId = await approvedWebsite(t, adv, admin);
  await fund(t, adv, 100_000);
  const campaignId = await createBudgetedCampaign(t, adv, websiteId, 50_000);
  await activateCampaign(t, adv, campaignId);
  const logger = createLogger({ level: 'silent' });
  const tracker = await startTracker({
    config: t.env.config,
    logger,
    sql: t.env.sql,
    redisUrl: t.env.config.REDIS_URL!,
  });
  const pipeline = await startPipeline({
    config: t.env.config,
    logger,
    redis: t.env.redis,
    sql: t.env.sql,
    ch: t.env.ch!,
    conversionSink: t.ledger!.sink,
    maintenanceIntervalMs: 100,
  });
  return {
    t,
    admin,
    adv,
    aff,
    campaignId,
    tracker,
    pipeline,
    deliveries,
    async close() {
      await deliveries?.stop();
      await pipeline.close();
      await tracker.close();
      await t.close();
    },
  };
}
