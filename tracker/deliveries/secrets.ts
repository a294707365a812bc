import { randomBytes } from 'node:crypto';
import { type Config, decryptSecret, encryptSecret, loadSecretKey } from '../../infra/index.ts';

export { decryptSecret, encryptSecret };

/**
 * The AES-256 key that encrypts webhook signing secrets at rest.
 * `DELIVERY_SECRET_KEY` when set; otherwise, outside production, a key generated once and kept in
 * `DATA_DIR/delivery-secret.key` (mode 0600), like the development JWT secret.
 * @throws ConfigError in production without `DELIVERY_SECRET_KEY`, or on a malformed key.
 */
export function loadDeliverySecretKey(config: Config): Buffer {
  return loadSecretKey(config, 'DELIVERY_SECRET_KEY', 'delivery-secret.key');
}

/** A new Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}
