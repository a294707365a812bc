import type { Role } from '../../types.ts';

/** A user as the auth routes read it. */
export interface UserRow {
  id: number;
  role: Role;
  name: string;
  email: string;
  status: string;
  created_at: Date;
  /** Every user has one; an affiliate's recruits register with it (migration 00020). */
  referral_code?: string;
  parent_affiliate_id?: number | null;
}

/** The users columns of a {@link UserRow}. */
export const USER_COLUMNS = 'id, role, name, email, status, created_at, referral_code, parent_affiliate_id';

/** The public view of a user. */
export function userView(u: UserRow, twoFactor = false) {
  return {
    id: u.id,
    role: u.role,
    name: u.name,
    email: u.email,
    status: u.status,
    two_factor_enabled: twoFactor,
    created_at: u.created_at,
    // Only affiliates recruit and are recruited.
    ...(u.role === 'affiliate' && u.referral_code !== undefined
      ? { referral_code: u.referral_code, parent_affiliate_id: u.parent_affiliate_id ?? null }
      : {}),
  };
}
