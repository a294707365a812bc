import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Config, ConfigError } from './config.ts';

/** Config keys that hold an at-rest encryption key (32 bytes, 64 hex chars or base64). */
export type SecretKeyName = 'DELIVERY_SECRET_KEY' | 'TOTP_SECRET_KEY';

/**
 * Parses a 32-byte AES-256 key given as 64 hex chars or base64 (surrounding whitespace ignored).
 * @throws ConfigError when it does not decode to exactly 32 bytes (`name` is only used in the message).
 */
export function parseSecretKey(raw: string, name: string): Buffer {
  const s = raw.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(s) ? Buffer.from(s, 'hex') : Buffer.from(s, 'base64');
  if (key.length !== 32) throw new ConfigError(`${name} must be 32 bytes (64 hex chars or base64)`);
  return key;
}

/**
 * An AES-256 key for encrypting secrets at rest: `config[name]` when set; otherwise, outside
 * production, a key generated once and kept in `<DATA_DIR>/<fileName>` (mode 0600) so restarts and
 * sibling processes share it. Each purpose uses its own key (and file).
 * @throws ConfigError in production without `config[name]`, or on a malformed key.
 */
export function loadSecretKey(config: Config, name: SecretKeyName, fileName: string): Buffer {
  const value = config[name];
  if (value) return parseSecretKey(value, name);
  if (config.NODE_ENV === 'production') throw new ConfigError(`${name} is required in production`);
  const file = path.join(config.DATA_DIR, fileName);
  try {
    return parseSecretKey(readFileSync(file, 'utf8'), name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(config.DATA_DIR, { recursive: true });
  try {
    // 'wx': if another process created it first, read theirs instead.
    writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return parseSecretKey(readFileSync(file, 'utf8'), name);
}

/**
 * Encrypts a secret with a 32-byte key: `v1.<base64 iv>.<base64 tag>.<base64 ciphertext>`
 * (AES-256-GCM, random 96-bit IV, so equal plaintexts give different outputs).
 */
export function encryptSecret(key: Buffer, plain: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
  return ['v1', iv.toString('base64'), c.getAuthTag().toString('base64'), ct.toString('base64')].join('.');
}

/**
 * Decrypts what {@link encryptSecret} produced.
 * @throws Error when the value is malformed, was tampered with, or the key is wrong.
 */
export function decryptSecret(key: Buffer, enc: string): string {
  const [v, iv, tag, ct, extra] = enc.split('.');
  if (v !== 'v1' || !iv || !tag || ct === undefined || extra !== undefined) throw new Error('unknown secret encoding');
  const tagBuf = Buffer.from(tag, 'base64');
  // GCM accepts truncated tags unless told otherwise; only the full 16-byte tag is ours.
  if (tagBuf.length !== 16) throw new Error('unknown secret encoding');
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'), { authTagLength: 16 });
  d.setAuthTag(tagBuf);
  return Buffer.concat([d.update(Buffer.from(ct, 'base64')), d.final()]).toString('utf8');
}
