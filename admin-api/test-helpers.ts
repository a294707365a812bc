/**
 * Helpers for the admin API's tests: a real server on port 0 over a fresh test environment, and a
 * small HTTP client. Not part of the public surface.
 */

import { createLogger } from '../infra/index.ts';
import { createTestEnv, type TestEnv } from '../infra/testing/index.ts';
import { createReports } from '../tracker/index.ts';
import { type RunningApi, startApi } from './app.ts';
import { createAdmin } from './create-admin.ts';
import type { ApiDeps, Role, Wallet } from './types.ts';

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
    wallet?: Wallet;
    sseHeartbeatMs?: number;
    /** Builds the deliveries engine on the test environment (not started). */
    deliveries?: (env: TestEnv) => ApiDeps['deliveries'];
  } = {},
): Promise<TestApi> {
  const env = await createTestEnv({
    clickhouse: opts.clickhouse,
    env: { RATE_LIMIT_POINTS: '100000', ...opts.env },
  });
  const api = await startApi(
    {
      config: env.config,
      logger: createLogger({ level: env.config.LOG_LEVEL }),
      sql: env.sql,
      redis: env.redis,
      reports: env.ch ? createReports(env.ch) : undefined,
      wallet: opts.wallet,
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
    else {
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
    url: base,
    call,
    user,
    async close() {
      await api.close();
      await env.close();
    },
  };
}
