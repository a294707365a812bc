/**
 * Shared fixtures of the deliveries tests: loopback HTTP receivers, users/campaigns/conversions
 * rows, an engine with a controllable clock. Not part of the public surface.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger, type LiveEvent } from '../../infra/index.ts';
import { createTestEnv, makeCampaign, makeUser, type TestEnv } from '../../infra/testing/index.ts';
import { createDeliveries, type Deliveries, type DeliveriesOptions } from './engine.ts';
import type { Actor } from './types.ts';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** What a receiver answers; `hang: true` never answers (for timeouts). */
export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  hang?: boolean;
}

export interface Receiver {
  /** `http://127.0.0.1:<port>` */
  base: string;
  port: number;
  requests: ReceivedRequest[];
  /** Replaces the reply function. */
  reply: (fn: (r: ReceivedRequest) => Reply) => void;
  close(): Promise<void>;
}

/** A real HTTP server on loopback recording every request. */
export async function startReceiver(fn: (r: ReceivedRequest) => Reply = () => ({ status: 200 })): Promise<Receiver> {
  let handler = fn;
  const requests: ReceivedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: ReceivedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(r);
      const out = handler(r);
      if (out.hang) return;
      res.writeHead(out.status ?? 200, out.headers);
      res.end(out.body ?? 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    base: `http://127.0.0.1:${port}`,
    port,
    requests,
    reply: (f) => {
      handler = f;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A clock tests move by hand; starts at the real time (signatures are checked against it). */
export function manualClock(startMs = Date.now()) {
  let t = startMs;
  return {
    now: () => t,
    set: (ms: number) => {
      t = ms;
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
}

export interface Fixture {
  env: TestEnv;
  deliveries: Deliveries;
  clock: ReturnType<typeof manualClock>;
  admin: Actor;
  advertiser: Actor;
  affiliate: Actor;
  otherAffiliate: Actor;
  campaignId: number;
  close(): Promise<void>;
}

async function user(env: TestEnv, role: Actor['role']): Promise<Actor> {
  return { id: await makeUser(env.sql, role), role };
}

/** A test environment with users, one campaign and an engine (not started) on a manual clock. */
export async function setup(env: Record<string, string> = {}): Promise<Fixture> {
  const testEnv = await createTestEnv({
    env: { DELIVERY_ALLOWED_HOSTS: '127.0.0.1', DELIVERY_TIMEOUT_MS: '500', DELIVERY_POLL_MS: '20', ...env },
  });
  const clock = manualClock();
  const deliveries = createDeliveries({
    sql: testEnv.sql,
    redis: testEnv.redis,
    keys: testEnv.keys,
    config: testEnv.config,
    logger: createLogger({ level: testEnv.config.LOG_LEVEL }),
    clock: clock.now,
    random: () => 0.5,
  });
  const admin = await user(testEnv, 'admin');
  const advertiser = await user(testEnv, 'advertiser');
  const affiliate = await user(testEnv, 'affiliate');
  const otherAffiliate = await user(testEnv, 'affiliate');
  const campaignId = await makeCampaign(testEnv.sql, advertiser.id, {
    name: 'C',
    destination_url: 'https://shop.example/landing',
    currency: 'EUR',
    payout_amount: 1250,
    status: 'active',
  });
  return {
    env: testEnv,
    deliveries,
    clock,
    admin,
    advertiser,
    affiliate,
    otherAffiliate,
    campaignId,
    async close() {
      await deliveries.stop();
      await testEnv.close();
    },
  };
}

/**
 * `setup(env)` plus a receiver (`startReceiver()`); the fixture's close() closes the receiver first.
 */
export async function setupWithReceiver(env: Record<string, string> = {}): Promise<{ f: Fixture; rx: Receiver }> {
  const f = await setup(env);
  const rx = await startReceiver();
  const close = f.close;
  f.close = async () => {
    await rx.close();
    await close();
  };
  return { f, rx };
}

/**
 * A second engine on the fixture's database and Redis (for concurrency and restart cases): the fixture's config,
 * a silent logger, the real clock unless `opts` says otherwise.
 */
export function otherEngine(f: Fixture, opts: Partial<DeliveriesOptions> = {}): Deliveries {
  return createDeliveries({
    sql: f.env.sql,
    redis: f.env.redis,
    keys: f.env.keys,
    config: f.env.config,
    logger: createLogger({ level: 'silent' }),
    ...opts,
  });
}

/** Inserts a conversion row (the pipeline's job in production). @returns its id. */
export async function insertConversion(
  f: Fixture,
  over: Partial<{
    status: string;
    fraud_reasons: string[];
    affiliate_id: number | null;
    sub1: string;
    goal: string;
    event_id: string;
  }> = {},
): Promise<string> {
  const id = randomUUID();
  await f.env.sql`
    insert into conversions (id, advertiser_id, event_id, click_id, campaign_id, affiliate_id, goal, status,
                             payout, revenue, event_time, fraud_reasons, sub1)
    values (${id}, ${f.advertiser.id}, ${over.event_id ?? `order-${id.slice(0, 8)}`}, ${randomUUID()}, ${f.campaignId},
            ${over.affiliate_id === undefined ? f.affiliate.id : over.affiliate_id}, ${over.goal ?? 'purchase'},
            ${over.status ?? 'pending'}, 1250, 2000, now(), ${over.fraud_reasons ?? []}::text[], ${over.sub1 ?? null})`;
  return id;
}

/** A live event as a producer would publish it. */
export function liveEvent(type: LiveEvent['type'], userIds: number[], data: Record<string, unknown> = {}): LiveEvent {
  return { id: `msg_${randomUUID()}`, type, created_at: new Date().toISOString(), user_ids: userIds, data };
}
