import type { Role } from '../../types.ts';

/** A user as the auth routes read it. */
export interface UserRow {
  id: number;
  role: Role;
  name: string;
  email: string;
  status: string;
  created_at: Date;
}

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
  };
}
