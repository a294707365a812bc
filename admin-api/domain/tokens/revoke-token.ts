import type { Sql } from '../../../infra/index.ts';
import { notFound } from '../../http.ts';

/** Where each kind of secret lives, which column names its owner, and what NOT_FOUND calls it. */
const KINDS = {
  'postback token': { table: 'postback_tokens', owner: 'advertiser_id' },
  'API key': { table: 'api_keys', owner: 'user_id' },
  'publishable key': { table: 'publishable_keys', owner: 'advertiser_id' },
} as const;

/**
 * Revokes one of `userId`'s postback tokens, API keys or publishable keys (revoking again keeps the first time).
 * @returns its id and revocation time. @throws AppError NOT_FOUND when `userId` has no such one.
 */
export async function revokeToken(sql: Sql, kind: keyof typeof KINDS, id: number, userId: number) {
  const { table, owner } = KINDS[kind];
  const [t] = await sql<{ id: number; revoked_at: Date }[]>`
    update ${sql(table)} set revoked_at = coalesce(revoked_at, now())
    where id = ${id} and ${sql(owner)} = ${userId} returning id, revoked_at`;
  if (!t) return notFound(kind);
  return t;
}
