import { encryptSecret, type Sql } from '../../../infra/index.ts';

/**
 * Encrypts TOTP secrets still stored in plain text (rows from before migration 00005) with `key`
 * into `secret_enc` and clears `secret`. Idempotent and safe to run from several processes at once.
 * @returns how many rows it encrypted.
 */
export async function encryptPlainTotpSecrets(sql: Sql, key: Buffer): Promise<number> {
  const rows = await sql<{ user_id: number; secret: string }[]>`
    select user_id, secret from user_two_factor where secret is not null`;
  let n = 0;
  for (const r of rows) {
    const done = await sql`update user_two_factor set secret_enc = ${encryptSecret(key, r.secret)}, secret = null
                           where user_id = ${r.user_id} and secret = ${r.secret} returning user_id`;
    n += done.length;
  }
  return n;
}
