import { AppError, type Sql, validationError } from '../../../infra/index.ts';
import type { ApiServices } from '../../http.ts';
import { emit } from '../../publish.ts';
import type { ApiDeps } from '../../types.ts';

/**
 * Makes the new affiliate `childId` a recruit of the affiliate whose referral code is `code` and tells that parent
 * (and admins) with `promoter_signed_up`. A new account has no recruits, so this cannot close a cycle. An unknown
 * code, or one of an account that is not an affiliate, is VALIDATION_ERROR on `referral_code` (checked before the
 * account is made, by {@link parentByCode}).
 */
export async function recruitAffiliate(
  deps: ApiDeps,
  services: ApiServices,
  child: { id: number; name: string; status: string; created_at: Date; referral_code?: string },
  parentId: number,
): Promise<void> {
  await deps.sql`update users set parent_affiliate_id = ${parentId} where id = ${child.id}`;
  await emit(deps.redis, services.keys, 'promoter_signed_up', [parentId], {
    promoter: {
      id: child.id,
      name: child.name,
      status: child.status,
      ref_id: child.referral_code,
      parent_promoter_id: parentId,
      created_at: child.created_at,
    },
  });
}

/** The id of the affiliate whose referral code is `code`. @throws AppError VALIDATION_ERROR when there is none. */
export async function parentByCode(sql: Sql, code: string): Promise<number> {
  const [p] = await sql<{ id: number }[]>`
    select id from users where referral_code = ${code} and role = 'affiliate' and status = 'active'`;
  if (!p) throw validationError({ referral_code: 'unknown referral code' }, 'unknown referral code');
  return Number(p.id);
}

/**
 * An admin's change of `childId`'s parent (null: none). @throws NOT_FOUND (no such affiliate, or the parent is not
 * one), VALIDATION_ERROR when the parent is the affiliate itself or one of its recruits at any depth (a cycle).
 */
export async function setParent(sql: Sql, childId: number, parentId: number | null): Promise<void> {
  await sql.begin(async (tx) => {
    const [c] = await tx`select id from users where id = ${childId} and role = 'affiliate' for update`;
    if (!c) throw new AppError('NOT_FOUND', 'affiliate not found');
    if (parentId !== null) {
      const [p] = await tx`select id from users where id = ${parentId} and role = 'affiliate'`;
      if (!p) throw new AppError('NOT_FOUND', 'parent affiliate not found');
      const [cycle] = await tx`
        with recursive up(id) as (
          select ${parentId}::int8
          union select u.parent_affiliate_id from users u join up on u.id = up.id where u.parent_affiliate_id is not null
        ) select 1 from up where id = ${childId} limit 1`;
      if (cycle) {
        throw validationError(
          { parent_affiliate_id: 'is this affiliate or one of its recruits (a cycle)' },
          'the parent would make a cycle',
        );
      }
    }
    await tx`update users set parent_affiliate_id = ${parentId}, updated_at = now() where id = ${childId}`;
  });
}
