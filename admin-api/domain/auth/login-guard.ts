import { createHash } from 'node:crypto';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError, type Config, type Redis, type RedisKeys } from '../../../infra/index.ts';

/**
 * Reserves a failure slot before any password check, atomically: refuses while the lock key
 * lives or when LOGIN_MAX_FAILURES slots are already taken, else counts the slot at once, so
 * that parallel attempts cannot all pass the check before one failure is counted.
 * KEYS[1] failure counter, KEYS[2] lock; ARGV[1] max failures, ARGV[2] window/lock s.
 * Returns {slot, 0} when reserved, {0, retryAfterS} when refused.
 */
const RESERVE_LUA = `
local ttl = redis.call('ttl', KEYS[2])
if ttl > 0 then return {0, ttl} end
local n = tonumber(redis.call('get', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local left = redis.call('ttl', KEYS[1])
  if left < 1 then left = tonumber(ARGV[2]) end
  return {0, left}
end
n = redis.call('incr', KEYS[1])
redis.call('expire', KEYS[1], ARGV[2])
return {n, 0}`;

/** Locks the account and clears its counter in one step. KEYS as above; ARGV[1] lock s. */
const LOCK_LUA = `
redis.call('set', KEYS[2], '1', 'EX', ARGV[1])
redis.call('del', KEYS[1])
return 1`;

export type LoginGuardConfig = Pick<
  Config,
  'LOGIN_MAX_FAILURES' | 'LOGIN_LOCK_S' | 'LOGIN_IP_MAX_FAILURES' | 'LOGIN_IP_WINDOW_S'
>;

/** One reserved login attempt: settle it with exactly one of `succeeded` or `failed`. */
export interface LoginAttempt {
  /** The password (or code) was right: clears the account's failures and gives the IP its point back. */
  succeeded(): Promise<void>;
  /**
   * The password (or code) was wrong. The failure was already counted by the reservation.
   * @throws AppError ACCOUNT_LOCKED (Retry-After LOGIN_LOCK_S) when this was the last allowed slot.
   */
  failed(): Promise<void>;
}

/** The answer while an account is locked, the same whether the account exists or not. */
export function accountLocked(retryAfterS: number): AppError {
  return new AppError('ACCOUNT_LOCKED', 'too many failed attempts; account temporarily locked', undefined, {
    'Retry-After': String(Math.max(1, retryAfterS)),
  });
}

/**
 * Login throttling: a per-account lock (LOGIN_MAX_FAILURES consecutive failures lock the email for
 * LOGIN_LOCK_S, whatever the source IP) and, beside it, a per-IP budget of LOGIN_IP_MAX_FAILURES
 * attempts per LOGIN_IP_WINDOW_S (rate-limiter-flexible, Redis). The account is keyed by the
 * normalised email, not the user id, so that an email with no account is counted and locked the
 * same way as a real one and the lock reveals nothing.
 */
export class LoginGuard {
  private readonly ipLimiter: RateLimiterRedis;
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly config: LoginGuardConfig,
    /** Called when this guard locks an account (the API's `api_lockouts_total`). */
    private readonly onLockout?: () => void,
  ) {
    this.ipLimiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: keys.key('login', 'ip'),
      points: config.LOGIN_IP_MAX_FAILURES,
      duration: config.LOGIN_IP_WINDOW_S,
    });
  }

  /**
   * Reserves one attempt for `email` from `ip` before any argon2 work: first a point of the IP's
   * budget, then a failure slot of the account (both atomic in Redis).
   * @param email as typed; compared case-insensitively.
   * @throws AppError RATE_LIMITED (429, Retry-After) when the IP's budget is spent;
   *   ACCOUNT_LOCKED (423, Retry-After) while the account is locked or all its slots are taken.
   */
  async reserve(email: string, ip: string): Promise<LoginAttempt> {
    const ipKey = ip || 'unknown';
    try {
      await this.ipLimiter.consume(ipKey);
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      const reset = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
      throw new AppError('RATE_LIMITED', 'too many login attempts from this address', undefined, {
        'Retry-After': String(reset),
      });
    }
    const ks = this.accountKeys(email);
    const { LOGIN_MAX_FAILURES: max, LOGIN_LOCK_S: lockS } = this.config;
    const [slot, retry] = (await this.redis.eval(RESERVE_LUA, 2, ...ks, max, lockS)) as [number, number];
    if (slot === 0) throw accountLocked(retry);
    return {
      succeeded: async () => {
        await this.redis.del(ks[0]);
        // Gives back the point this attempt took, so the IP budget counts failures only. Skipped when
        // the window rolled over meanwhile, so that a refund never turns into credit beyond the budget.
        const used = await this.ipLimiter.get(ipKey);
        if (used && used.consumedPoints > 0) await this.ipLimiter.reward(ipKey, 1);
      },
      failed: async () => {
        if (slot < max) return;
        await this.redis.eval(LOCK_LUA, 2, ...ks, lockS);
        this.onLockout?.();
        throw accountLocked(lockS);
      },
    };
  }

  /** Failure counter and lock of an email; one hash tag so that both live in one Cluster slot. */
  private accountKeys(email: string): [string, string] {
    const tag = `{${createHash('sha256').update(email.trim().toLowerCase()).digest('hex').slice(0, 32)}}`;
    return [this.keys.key('login', 'fail', tag), this.keys.key('login', 'lock', tag)];
  }
}
