import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Config, ConfigError } from '../../infra/index.ts';

const KEY_FILE = 'delivery-secret.key';

function parseKey(raw: string): Buffer {
  const s = raw.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(s) ? Buffer.from(s, 'hex') : Buffer.from(s, 'base64');
  if (key.length !== 32) throw new ConfigError('DELIVERY_SECRET_KEY must be 32 bytes (64 hex chars or base64)');
  return key;
}

/**
 * The AES-256 key that encrypts webhook signing secrets at rest.
 * `DELIVERY_SECRET_KEY` when set; otherwise, outside production, a key generated once and kept in
 * `DATA_DIR/delivery-secret.key` (mode 0600), like the development JWT secret.
 * @throws ConfigError in production without `DELIVERY_SECRET_KEY`, or on a malformed key.
 */
export function loadDeliverySecretKey(config: Config): Buffer {
  if (config.DELIVERY_SECRET_KEY) return parseKey(config.DELIVERY_SECRET_KEY);
  if (config.NODE_ENV === 'production') throw new ConfigError('DELIVERY_SECRET_KEY is required in production');
  const file = path.join(config.DATA_DIR, KEY_FILE);
  try {
    return parseKey(readFileSync(file, 'utf8'));
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
  return parseKey(readFileSync(file, 'utf8'));
}

/** Encrypts a secret: `v1.<base64 iv>.<base64 tag>.<base64 ciphertext>` (AES-256-GCM, random 96-bit IV). */
export function encryptSecret(key: Buffer, plain: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
  return ['v1', iv.toString('base64'), c.getAuthTag().toString('base64'), ct.toString('base64')].join('.');
}

/**
 * Decrypts what {@link encryptSecret} produced.
 * @throws Error when the value was tampered with or the key is wrong.
 */
export function decryptSecret(key: Buffer, enc: string): string {
  const [v, iv, tag, ct] = enc.split('.');
  if (v !== 'v1' || !iv || !tag || ct === undefined) throw new Error('unknown secret encoding');
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
  d.setAuthTag(Buffer.from(tag, 'base64'));
  return Buffer.concat([d.update(Buffer.from(ct, 'base64')), d.final()]).toString('utf8');
}

/** A new Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}
