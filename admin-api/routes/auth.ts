import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import { generateSecret, generateURI, verify as verifyOtp } from 'otplib';
import QRCode from 'qrcode';
import { z } from 'zod';
import { AppError, decryptSecret, encryptSecret, type Sql, validationError } from '../../infra/index.ts';
import { auditActor } from '../audit.ts';
import { LoginGuard } from '../domain/auth/login-guard.ts';
import { USER_COLUMNS, type UserRow, userView } from '../domain/auth/user-view.ts';
import { parentByCode, recruitAffiliate } from '../domain/rewards/recruit-affiliate.ts';
import { type ApiServices, type HandlerArgs, notFound, type Route, route } from '../http.ts';
import { emit } from '../publish.ts';
import {
  ACCESS_TOKEN_TTL_S,
  burnPasswordCheck,
  createSession,
  hashPassword,
  REFRESH_COOKIE,
  REFRESH_TTL_S,
  randomToken,
  sha256,
  verifyPassword,
} from '../security.ts';
import { type ApiDeps, ROLES, type Role } from '../types.ts';

const email = z.email('must be a valid email address').max(254);
const password = z.string().min(10, 'must be at least 10 characters').max(200, 'must be at most 200 characters');
const otpCode = z.string().regex(/^\d{6}$/, 'must be 6 digits');

function refreshCookie(deps: ApiDeps, value: string, maxAgeS: number): string {
  return [
    `${REFRESH_COOKIE}=${value}`,
    'Path=/api/v1/auth',
    `Max-Age=${maxAgeS}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(deps.config.COOKIE_SECURE ? ['Secure'] : []),
  ].join('; ');
}

async function issueSession(ctx: Context, deps: ApiDeps, services: ApiServices, user: UserRow) {
  const { sid, refreshToken } = await createSession(deps.sql, user.id, {
    userAgent: ctx.get('user-agent') || undefined,
    ip: ctx.state.clientIp as string,
  });
  ctx.append('Set-Cookie', refreshCookie(deps, refreshToken, REFRESH_TTL_S));
  const [tf] = await deps.sql<{ enabled: boolean }[]>`select enabled from user_two_factor where user_id = ${user.id}`;
  return {
    access_token: services.tokens.access(user.id, user.role, sid),
    token_type: 'Bearer',
    expires_in: ACCESS_TOKEN_TTL_S,
    user: userView(user, tf?.enabled ?? false),
  };
}

function loginGuard(deps: ApiDeps, services: ApiServices): LoginGuard {
  return new LoginGuard(deps.redis, services.keys, deps.config, services.metrics.lockout);
}

/** Revokes a session and tells its SSE streams to close. */
export async function revokeSession(
  deps: ApiDeps,
  services: ApiServices,
  sid: string,
  userId: number,
  reason: string,
): Promise<void> {
  await deps.sql`update sessions set revoked_at = coalesce(revoked_at, now()), revoke_reason = coalesce(revoke_reason, ${reason})
                 where id = ${sid}`;
  await emit(deps.redis, services.keys, 'force-logout', [userId], { session_id: sid, reason });
}

/**
 * Revokes every live session of `userId` except `keepSid` (a change of credentials: 2FA on or off
 * must not leave a session opened before it, perhaps by whoever forced the change, alive) and
 * tells their SSE streams to close. Returns the revoked session ids.
 */
async function revokeOtherSessions(
  deps: ApiDeps,
  services: ApiServices,
  userId: number,
  keepSid: string,
  reason: string,
): Promise<string[]> {
  const rows = await deps.sql<{ id: string }[]>`
    update sessions set revoked_at = now(), revoke_reason = ${reason}
    where user_id = ${userId} and id <> ${keepSid} and revoked_at is null returning id`;
  for (const r of rows) await emit(deps.redis, services.keys, 'force-logout', [userId], { session_id: r.id, reason });
  return rows.map((r) => r.id);
}

/**
 * Checks a TOTP code (RFC 6238, 30 s step, ±1 step) against the user's encrypted secret
 * (`user_two_factor.secret_enc`) and consumes its time step so it is accepted once only.
 * Fails closed: a secret that does not decrypt (tampered row, wrong TOTP_SECRET_KEY) or a row not
 * yet encrypted is treated as a wrong code, never as an error.
 */
async function consumeTotp(
  sql: Sql,
  services: ApiServices,
  userId: number,
  secretEnc: string | null,
  code: string,
): Promise<boolean> {
  let secret: string;
  try {
    if (secretEnc === null) return false;
    secret = decryptSecret(services.totpKey, secretEnc);
  } catch {
    return false;
  }
  const r = await verifyOtp({ secret, token: code, epochTolerance: 30 }).catch(() => ({ valid: false as const }));
  if (!r.valid) return false;
  const step = (r as { timeStep?: number }).timeStep;
  if (typeof step !== 'number') return false;
  const rows = await sql`update user_two_factor set last_time_step = ${step}
                         where user_id = ${userId} and (last_time_step is null or last_time_step < ${step})
                         returning user_id`;
  return rows.length === 1;
}

async function userById(sql: Sql, id: number): Promise<UserRow | undefined> {
  const [u] = await sql<UserRow[]>`select ${sql.unsafe(USER_COLUMNS)} from users where id = ${id}`;
  return u;
}

const sessionOnly = (a: HandlerArgs<unknown, unknown>) => {
  if (!a.user.sid) throw new AppError('FORBIDDEN', 'this route needs a user session');
  return a.user.sid;
};

export function authRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'post',
      path: '/auth/register',
      summary: 'Register an advertiser or affiliate account',
      tag: 'auth',
      auth: 'public',
      body: z.object({
        name: z.string().trim().min(1).max(200),
        email,
        password,
        role: z.enum(['advertiser', 'affiliate']),
        /** An affiliate's recruiter (README "Tiers, rewards and balances"). */
        referral_code: z.string().trim().min(4).max(32).optional(),
      }),
      example: { name: 'Acme Ads', email: 'ads@example.com', password: 'correct-horse-9', role: 'advertiser' },
      async handler({ deps, services, body }) {
        if (body.referral_code !== undefined && body.role !== 'affiliate') {
          throw validationError({ referral_code: 'only affiliates are recruited' }, 'only affiliates are recruited');
        }
        const parent = body.referral_code === undefined ? null : await parentByCode(deps.sql, body.referral_code);
        // Hashed before we know whether the email is taken, so both answers cost the same time.
        const passwordHash = await hashPassword(body.password);
        const [u] = await deps.sql<UserRow[]>`
          insert into users (role, name, email, password_hash)
          values (${body.role}, ${body.name}, ${body.email}, ${passwordHash})
          on conflict (lower(email)) do nothing
          returning ${deps.sql.unsafe(USER_COLUMNS)}`;
        if (u && parent !== null) await recruitAffiliate(deps, services, u, parent);
        if (u) return { status: 201, data: userView({ ...u, parent_affiliate_id: parent }) };
        // The email has an account: answer as if a new one was made, so register is no oracle of
        // which emails exist. The id is drawn from the users' own sequence so that ids seen by
        // the caller stay as dense as for real accounts. The owner is told (log line; no mail exists).
        // One round trip, as the insert above is, so the two answers also cost about the same time.
        const [fake] = await deps.sql<{ id: number; created_at: Date; owner_id: number | null }[]>`
          select nextval(pg_get_serial_sequence('users', 'id')) as id, now() as created_at,
                 (select id from users where lower(email) = lower(${body.email})) as owner_id`;
        deps.logger.warn(
          { event: 'auth.register_existing_email', user_id: fake!.owner_id },
          'registration attempted with the email of an existing account; the owner should be told',
        );
        return {
          status: 201,
          data: userView({
            id: fake!.id,
            role: body.role,
            name: body.name,
            email: body.email,
            status: 'active',
            created_at: fake!.created_at,
            // Shaped like a new affiliate's, so the answer says nothing about the email.
            referral_code: randomBytes(6).toString('hex'),
            parent_affiliate_id: parent,
          }),
        };
      },
    }),
    route({
      method: 'post',
      path: '/auth/login',
      summary: 'Log in; returns an access token and sets the refresh cookie (or a 2FA challenge)',
      tag: 'auth',
      auth: 'public',
      body: z.object({ email: z.string().max(254), password: z.string().max(200) }),
      example: { email: 'ads@example.com', password: 'correct-horse-9' },
      async handler({ ctx, deps, services, body }) {
        // The attempt is reserved (IP point + account slot) before any argon2 work, for known and
        // unknown emails alike, so parallel guesses are counted and a lock says nothing about existence.
        const attempt = await loginGuard(deps, services).reserve(body.email, ctx.state.clientIp as string);
        const [u] = await deps.sql<(UserRow & { password_hash: string })[]>`
          select id, role, name, email, status, created_at, password_hash from users where lower(email) = lower(${body.email})`;
        let ok: boolean;
        if (u) ok = await verifyPassword(u.password_hash, body.password);
        else {
          // Same work as a real check, so response time does not reveal which emails exist.
          await burnPasswordCheck(body.password);
          ok = false;
        }
        if (!u || !ok) {
          await attempt.failed();
          throw new AppError('UNAUTHORIZED', 'invalid email or password');
        }
        await attempt.succeeded();
        auditActor(ctx, u.id);
        if (u.status !== 'active') throw new AppError('FORBIDDEN', 'account suspended');
        const [tf] = await deps.sql<
          { enabled: boolean }[]
        >`select enabled from user_two_factor where user_id = ${u.id}`;
        if (tf?.enabled)
          return { data: { two_factor_required: true, challenge_token: services.tokens.challenge(u.id) } };
        return { data: await issueSession(ctx, deps, services, u) };
      },
    }),
    route({
      method: 'post',
      path: '/auth/2fa/verify-login',
      summary: 'Second login step: TOTP code or backup code for a challenge token',
      tag: 'auth',
      auth: 'public',
      body: z
        .object({
          challenge_token: z.string().max(2000),
          code: otpCode.optional(),
          backup_code: z.string().max(50).optional(),
        })
        .refine((b) => (b.code === undefined) !== (b.backup_code === undefined), {
          message: 'give exactly one of code or backup_code',
          path: ['code'],
        }),
      example: { challenge_token: '<from login>', code: '123456' },
      async handler({ ctx, deps, services, body }) {
        const userId = services.tokens.verifyChallenge(body.challenge_token);
        const who = await userById(deps.sql, userId);
        if (!who) throw new AppError('INVALID_TOKEN', 'invalid challenge token');
        // A valid challenge names the account: its failed codes are in its owner's audit log.
        auditActor(ctx, userId);
        const [tf] = await deps.sql<{ secret_enc: string | null; enabled: boolean }[]>`
          select secret_enc, enabled from user_two_factor where user_id = ${userId}`;
        if (!tf?.enabled) throw new AppError('INVALID_TOKEN', 'invalid challenge token');
        // The code guess shares the account's failure slots (and the IP budget) with the password step.
        const attempt = await loginGuard(deps, services).reserve(who.email, ctx.state.clientIp as string);
        let ok = false;
        if (body.code) ok = await consumeTotp(deps.sql, services, userId, tf.secret_enc, body.code);
        else {
          const used = await deps.sql`update two_factor_backup_codes set used_at = now()
            where user_id = ${userId} and code_hash = ${sha256(normalizeBackup(body.backup_code!))} and used_at is null
            returning id`;
          ok = used.length === 1;
        }
        if (!ok) {
          await attempt.failed();
          throw new AppError('UNAUTHORIZED', 'invalid two-factor code');
        }
        await attempt.succeeded();
        const u = await userById(deps.sql, userId);
        if (u?.status !== 'active') throw new AppError('UNAUTHORIZED', 'account unavailable');
        return { data: await issueSession(ctx, deps, services, u) };
      },
    }),
    route({
      method: 'post',
      path: '/auth/refresh',
      summary: 'Rotate the refresh cookie and get a new access token (reuse revokes the session)',
      tag: 'auth',
      auth: 'public',
      async handler({ ctx, deps, services }) {
        const token = ctx.cookies.get(REFRESH_COOKIE);
        if (!token) throw new AppError('UNAUTHORIZED', 'refresh cookie missing');
        const [row] = await deps.sql<
          {
            session_id: string;
            used: boolean;
            revoked: boolean;
            expired: boolean;
            too_old: boolean;
            user_id: number;
            role: Role;
            status: string;
          }[]
        >`select r.session_id, r.used_at is not null as used, s.revoked_at is not null as revoked,
                 r.created_at < now() - make_interval(secs => ${REFRESH_TTL_S}) as expired,
                 s.created_at < now() - make_interval(secs => ${deps.config.SESSION_MAX_AGE_S}) as too_old,
                 s.user_id, u.role, u.status
          from refresh_tokens r join sessions s on s.id = r.session_id join users u on u.id = s.user_id
          where r.token_hash = ${sha256(token)}`;
        if (!row) throw new AppError('UNAUTHORIZED', 'invalid refresh token');
        auditActor(ctx, row.user_id);
        if (row.revoked || row.status !== 'active') throw new AppError('UNAUTHORIZED', 'session revoked');
        if (row.expired && !row.used) throw new AppError('UNAUTHORIZED', 'refresh token expired; log in again');
        // Rotation alone would keep a stolen cookie alive for ever: the session itself has an end.
        if (row.too_old && !row.used) {
          await revokeSession(deps, services, row.session_id, row.user_id, 'session max age');
          ctx.append('Set-Cookie', refreshCookie(deps, '', 0));
          throw new AppError('UNAUTHORIZED', 'session expired; log in again');
        }
        const next = randomToken();
        const rotated = await deps.sql.begin(async (tx) => {
          const r = await tx`update refresh_tokens set used_at = now()
                             where token_hash = ${sha256(token)} and used_at is null returning session_id`;
          if (r.length === 0) return false;
          await tx`insert into refresh_tokens (token_hash, session_id) values (${sha256(next)}, ${row.session_id})`;
          await tx`update sessions set last_used_at = now() where id = ${row.session_id}`;
          return true;
        });
        if (!rotated || row.used) {
          // A rotated token came back: someone holds a copy. Revoke the whole family.
          await revokeSession(deps, services, row.session_id, row.user_id, 'refresh token reuse');
          ctx.append('Set-Cookie', refreshCookie(deps, '', 0));
          throw new AppError('UNAUTHORIZED', 'refresh token reuse detected; session revoked');
        }
        ctx.append('Set-Cookie', refreshCookie(deps, next, REFRESH_TTL_S));
        return {
          data: {
            access_token: services.tokens.access(row.user_id, row.role, row.session_id),
            token_type: 'Bearer',
            expires_in: ACCESS_TOKEN_TTL_S,
          },
        };
      },
    }),
    route({
      method: 'post',
      path: '/auth/logout',
      summary: 'Revoke the current session and clear the refresh cookie',
      tag: 'auth',
      auth: ROLES,
      async handler(a) {
        const sid = sessionOnly(a);
        await revokeSession(a.deps, a.services, sid, a.user.user_id, 'logout');
        a.ctx.append('Set-Cookie', refreshCookie(a.deps, '', 0));
        return { data: { logged_out: true } };
      },
    }),
    route({
      method: 'get',
      path: '/auth/me',
      summary: 'The current user',
      tag: 'auth',
      auth: ROLES,
      async handler({ deps, user }) {
        const u = await userById(deps.sql, user.user_id);
        if (!u) return notFound('user');
        const [tf] = await deps.sql<
          { enabled: boolean }[]
        >`select enabled from user_two_factor where user_id = ${u.id}`;
        return { data: userView(u, tf?.enabled ?? false) };
      },
    }),
    route({
      method: 'get',
      path: '/auth/sessions',
      summary: 'Active sessions of the current user',
      tag: 'auth',
      auth: ROLES,
      async handler(a) {
        const sid = sessionOnly(a);
        const rows = await a.deps.sql<
          { id: string; user_agent: string | null; ip: string | null; created_at: Date; last_used_at: Date }[]
        >`select id, user_agent, ip, created_at, last_used_at from sessions
          where user_id = ${a.user.user_id} and revoked_at is null order by created_at desc limit 100`;
        return {
          data: rows.map((r) => ({
            id: r.id,
            device: r.user_agent,
            ip: r.ip,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            current: r.id === sid,
          })),
        };
      },
    }),
    route({
      method: 'delete',
      path: '/auth/sessions/:sid',
      summary: 'Revoke one of your sessions',
      tag: 'auth',
      auth: ROLES,
      async handler(a) {
        sessionOnly(a);
        const sid = String(a.ctx.params?.sid ?? '');
        if (!/^[0-9a-f-]{36}$/.test(sid)) return notFound('session');
        const [s] = await a.deps
          .sql`select id from sessions where id = ${sid} and user_id = ${a.user.user_id} and revoked_at is null`;
        if (!s) return notFound('session');
        await revokeSession(a.deps, a.services, sid, a.user.user_id, 'revoked by user');
        return { data: { id: sid, revoked: true } };
      },
    }),
    route({
      method: 'post',
      path: '/auth/2fa/setup',
      summary: 'Start TOTP setup: secret, otpauth URL, QR code, 10 backup codes',
      tag: 'auth',
      auth: ROLES,
      async handler(a) {
        sessionOnly(a);
        const { deps, services, user } = a;
        const [tf] = await deps.sql<
          { enabled: boolean }[]
        >`select enabled from user_two_factor where user_id = ${user.user_id}`;
        if (tf?.enabled) throw new AppError('CONFLICT', 'two-factor authentication is already enabled');
        const u = await userById(deps.sql, user.user_id);
        const secret = generateSecret();
        const otpauth_url = generateURI({ issuer: deps.config.JWT_ISSUER, label: u!.email, secret });
        const backup_codes = Array.from({ length: 10 }, () => {
          const h = randomBytes(5).toString('hex');
          return `${h.slice(0, 5)}-${h.slice(5)}`;
        });
        await deps.sql.begin(async (tx) => {
          const secretEnc = encryptSecret(services.totpKey, secret);
          await tx`insert into user_two_factor (user_id, secret_enc, enabled) values (${user.user_id}, ${secretEnc}, false)
                   on conflict (user_id) do update
                   set secret_enc = excluded.secret_enc, secret = null, enabled = false, last_time_step = null`;
          await tx`delete from two_factor_backup_codes where user_id = ${user.user_id}`;
          for (const c of backup_codes)
            await tx`insert into two_factor_backup_codes (user_id, code_hash) values (${user.user_id}, ${sha256(normalizeBackup(c))})`;
        });
        return {
          data: { secret, otpauth_url, qr_code: await QRCode.toDataURL(otpauth_url), backup_codes },
        };
      },
    }),
    route({
      method: 'post',
      path: '/auth/2fa/verify',
      summary: 'Confirm TOTP setup with a current code; turns 2FA on',
      tag: 'auth',
      auth: ROLES,
      body: z.object({ code: otpCode }),
      example: { code: '123456' },
      async handler(a) {
        const sid = sessionOnly(a);
        const { deps, services, user, body } = a;
        const [tf] = await deps.sql<{ secret_enc: string | null; enabled: boolean }[]>`
          select secret_enc, enabled from user_two_factor where user_id = ${user.user_id}`;
        if (!tf) throw new AppError('INVALID_STATE', 'call POST /auth/2fa/setup first');
        if (tf.enabled) throw new AppError('CONFLICT', 'two-factor authentication is already enabled');
        if (!(await consumeTotp(deps.sql, services, user.user_id, tf.secret_enc, body.code)))
          throw new AppError('UNAUTHORIZED', 'invalid two-factor code');
        await deps.sql`update user_two_factor set enabled = true, enabled_at = now() where user_id = ${user.user_id}`;
        await revokeOtherSessions(deps, services, user.user_id, sid, '2fa enabled');
        return { data: { two_factor_enabled: true } };
      },
    }),
    route({
      method: 'post',
      path: '/auth/2fa/disable',
      summary: 'Turn 2FA off (password and a current code)',
      tag: 'auth',
      auth: ROLES,
      body: z.object({ password: z.string().max(200), code: otpCode }),
      example: { password: 'correct-horse-9', code: '123456' },
      async handler(a) {
        const sid = sessionOnly(a);
        const { deps, services, user, body } = a;
        const [u] = await deps.sql<
          { password_hash: string }[]
        >`select password_hash from users where id = ${user.user_id}`;
        const [tf] = await deps.sql<{ secret_enc: string | null; enabled: boolean }[]>`
          select secret_enc, enabled from user_two_factor where user_id = ${user.user_id}`;
        if (!tf?.enabled) throw new AppError('INVALID_STATE', 'two-factor authentication is not enabled');
        if (!u || !(await verifyPassword(u.password_hash, body.password)))
          throw new AppError('UNAUTHORIZED', 'invalid password');
        if (!(await consumeTotp(deps.sql, services, user.user_id, tf.secret_enc, body.code)))
          throw new AppError('UNAUTHORIZED', 'invalid two-factor code');
        await deps.sql.begin(async (tx) => {
          await tx`delete from two_factor_backup_codes where user_id = ${user.user_id}`;
          await tx`delete from user_two_factor where user_id = ${user.user_id}`;
        });
        await revokeOtherSessions(deps, services, user.user_id, sid, '2fa disabled');
        return { data: { two_factor_enabled: false } };
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}

function normalizeBackup(c: string): string {
  return c.trim().toLowerCase();
}
