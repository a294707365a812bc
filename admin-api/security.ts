import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { hash as argonHash, verify as argonVerify } from '@node-rs/argon2';
import jwt from 'jsonwebtoken';
import { AppError, type Config, type Sql } from '../infra/index.ts';
import type { Principal, Role } from './types.ts';

/** Access tokens live 30 minutes (ARCHITECTURE.md). */
export const ACCESS_TOKEN_TTL_S = 30 * 60;
/** Login challenges (between password and TOTP) live 5 minutes. */
export const CHALLENGE_TTL_S = 5 * 60;
/** Refresh tokens (cookie) live 30 days. */
export const REFRESH_TTL_S = 30 * 24 * 3600;
export const REFRESH_COOKIE = 'refresh_token';

/** SHA-256 hex of a high-entropy token (refresh tokens, API keys, postback tokens, backup codes). */
export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** A URL-safe random token of `bytes` random bytes. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** argon2id hash of a password (library defaults: 19 MiB, t=2). */
export function hashPassword(password: string): Promise<string> {
  return argonHash(password, { algorithm: 2 });
}

let dummyHash: Promise<string> | undefined;

/**
 * Spends the time of a real password check against a throw-away hash, so that a login for an
 * unknown email takes as long as one for a known email.
 */
export async function burnPasswordCheck(password: string): Promise<void> {
  dummyHash ??= hashPassword(randomToken(16));
  await verifyPassword(await dummyHash, password);
}

let passwordChecks = 0;

/** How many argon2 verifications this process has run (real and burnt); lets tests see that a refused login did none. */
export function passwordCheckCount(): number {
  return passwordChecks;
}

/** True when `password` matches the argon2 `hash`; a malformed hash is a mismatch, never an error. */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  passwordChecks++;
  try {
    return await argonVerify(hash, password);
  } catch {
    return false;
  }
}

/**
 * The HS256 signing secret: `JWT_SECRET` when set; required in production; otherwise generated once
 * and kept at `<DATA_DIR>/jwt-secret` (mode 0600) so restarts keep sessions valid.
 * @throws Error in production without JWT_SECRET.
 */
export function resolveJwtSecret(config: Config): string {
  if (config.JWT_SECRET) return config.JWT_SECRET;
  if (config.NODE_ENV === 'production') throw new Error('JWT_SECRET is required in production');
  const file = path.join(config.DATA_DIR, 'jwt-secret');
  if (existsSync(file)) {
    const s = readFileSync(file, 'utf8').trim();
    if (s.length >= 32) return s;
  }
  mkdirSync(config.DATA_DIR, { recursive: true });
  const s = randomToken(48);
  writeFileSync(file, s, { mode: 0o600 });
  chmodSync(file, 0o600);
  return s;
}

interface AccessClaims {
  sub: string;
  role: Role;
  sid: string;
}

/** Signs and checks JWTs with a pinned algorithm, issuer and audience. */
export class Tokens {
  constructor(
    private readonly secret: string,
    private readonly issuer: string,
    private readonly audience: string,
  ) {}

  /** Access token for a session: `exp` 30 min, claims `sub` (user id), `role`, `sid`. */
  access(userId: number, role: Role, sid: string): string {
    return jwt.sign({ role, sid }, this.secret, {
      algorithm: 'HS256',
      expiresIn: ACCESS_TOKEN_TTL_S,
      issuer: this.issuer,
      audience: this.audience,
      subject: String(userId),
      jwtid: randomUUID(),
    });
  }

  /** @throws AppError INVALID_TOKEN when the signature, algorithm, iss, aud or exp is wrong. */
  verifyAccess(token: string): { userId: number; role: Role; sid: string } {
    const c = this.verify(token, this.audience) as Partial<AccessClaims>;
    if (typeof c.sid !== 'string' || typeof c.sub !== 'string' || typeof c.role !== 'string')
      throw new AppError('INVALID_TOKEN', 'invalid access token');
    return { userId: Number(c.sub), role: c.role, sid: c.sid };
  }

  /** Short-lived token proving the password step of a 2FA login. */
  challenge(userId: number): string {
    return jwt.sign({ typ: '2fa' }, this.secret, {
      algorithm: 'HS256',
      expiresIn: CHALLENGE_TTL_S,
      issuer: this.issuer,
      audience: `${this.audience}:2fa`,
      subject: String(userId),
    });
  }

  /** @throws AppError INVALID_TOKEN */
  verifyChallenge(token: string): number {
    const c = this.verify(token, `${this.audience}:2fa`) as { sub?: string; typ?: string };
    if (c.typ !== '2fa' || !c.sub) throw new AppError('INVALID_TOKEN', 'invalid challenge token');
    return Number(c.sub);
  }

  private verify(token: string, audience: string): jwt.JwtPayload {
    try {
      const p = jwt.verify(token, this.secret, { algorithms: ['HS256'], issuer: this.issuer, audience });
      if (typeof p === 'string') throw new Error('string payload');
      return p;
    } catch {
      throw new AppError('INVALID_TOKEN', 'invalid or expired token');
    }
  }
}

/** Creates a session row and its first refresh token. */
export async function createSession(
  sql: Sql,
  userId: number,
  meta: { userAgent?: string; ip?: string },
): Promise<{ sid: string; refreshToken: string }> {
  const sid = randomUUID();
  const refreshToken = randomToken();
  await sql.begin(async (tx) => {
    await tx`insert into sessions (id, user_id, user_agent, ip)
             values (${sid}, ${userId}, ${meta.userAgent?.slice(0, 500) ?? null}, ${meta.ip ?? null})`;
    await tx`insert into refresh_tokens (token_hash, session_id) values (${sha256(refreshToken)}, ${sid})`;
  });
  return { sid, refreshToken };
}

/** Routes (`method path`) an admin without 2FA may still call under ADMIN_REQUIRE_2FA: enough to turn it on, or leave. */
export const TWO_FACTOR_SETUP_ROUTES: ReadonlySet<string> = new Set([
  'post /auth/2fa/setup',
  'post /auth/2fa/verify',
  'post /auth/logout',
]);

/**
 * With ADMIN_REQUIRE_2FA on, refuses an admin principal (session or API key) whose 2FA is not on, on every
 * route but TWO_FACTOR_SETUP_ROUTES. Checked per request, so turning 2FA on opens the API at once.
 * @throws AppError TWO_FACTOR_SETUP_REQUIRED (403)
 */
export async function requireAdminTwoFactor(
  sql: Sql,
  config: Config,
  user: Principal,
  route: { method: string; path: string },
): Promise<void> {
  if (!config.ADMIN_REQUIRE_2FA || user.role !== 'admin') return;
  if (TWO_FACTOR_SETUP_ROUTES.has(`${route.method} ${route.path}`)) return;
  const [tf] = await sql<{ enabled: boolean }[]>`select enabled from user_two_factor where user_id = ${user.user_id}`;
  if (!tf?.enabled)
    throw new AppError('TWO_FACTOR_SETUP_REQUIRED', 'admins must turn on two-factor authentication first');
}

/** The shape of an API key: `live_` or `test_` then 43 base64url characters. */
export const API_KEY_RE = /^(live|test)_[A-Za-z0-9_-]{43}$/;

/**
 * Resolves a bearer credential (access JWT or API key) to a principal, checking on every request
 * that the session (or key) is not revoked and the user is active.
 * @throws AppError UNAUTHORIZED / INVALID_TOKEN
 */
export async function authenticate(sql: Sql, tokens: Tokens, credential: string): Promise<Principal> {
  if (API_KEY_RE.test(credential)) {
    const [k] = await sql<
      { id: number; user_id: number; role: Role; scopes: string[]; mode: 'live' | 'test'; stale: boolean }[]
    >`select k.id, k.user_id, u.role, k.scopes, k.mode,
             coalesce(k.last_used_at < now() - interval '30 seconds', true) as stale
      from api_keys k join users u on u.id = k.user_id
      where k.key_hash = ${sha256(credential)} and k.revoked_at is null and u.status = 'active'`;
    if (!k) throw new AppError('UNAUTHORIZED', 'invalid API key');
    // Throttled so that every request does not write.
    if (k.stale) await sql`update api_keys set last_used_at = now() where id = ${k.id}`;
    return { kind: 'api_key', user_id: k.user_id, role: k.role, api_key_id: k.id, scopes: k.scopes, mode: k.mode };
  }
  const claims = tokens.verifyAccess(credential);
  const [s] = await sql<{ user_id: number; role: Role; revoked: boolean; status: string; stale: boolean }[]>`
    select s.user_id, u.role, s.revoked_at is not null as revoked, u.status,
           s.last_used_at < now() - interval '30 seconds' as stale
    from sessions s join users u on u.id = s.user_id where s.id = ${claims.sid}`;
  if (!s || s.revoked || s.user_id !== claims.userId || s.status !== 'active')
    throw new AppError('UNAUTHORIZED', 'session revoked or expired');
  // Throttled so that every request does not write.
  if (s.stale) await sql`update sessions set last_used_at = now() where id = ${claims.sid}`;
  return { kind: 'session', user_id: s.user_id, role: s.role, sid: claims.sid, mode: 'live' };
}
