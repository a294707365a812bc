/** Who is signed in: a small store the views subscribe to (login, 2FA step, restore on reload, logout). */
import { ApiError, call, get, onToken, post, refresh, setSigningOut, setToken, type User } from './api.ts';
import { createStore } from './store.ts';

export type SessionState =
  | { status: 'loading' }
  | { status: 'signed-out'; notice?: string }
  | { status: 'two-factor'; challenge: string; email: string }
  | { status: 'signed-in'; user: User };

const store = createStore<SessionState>({ status: 'loading' });
const set = store.set;

/** Re-renders the calling component on every change of the session. */
export const useSession = store.use;

// A refresh that fails (the session was revoked or expired) drops the token: the browser is signed out.
onToken((token) => {
  if (!token && store.get().status === 'signed-in') set({ status: 'signed-out', notice: 'Your session has ended.' });
});

/** On page load: a live refresh cookie signs the browser back in. */
export async function restore(): Promise<void> {
  if (await refresh()) {
    try {
      set({ status: 'signed-in', user: await get<User>('/auth/me') });
      return;
    } catch {}
  }
  set({ status: 'signed-out' });
}

interface LoginAnswer {
  access_token?: string;
  user?: User;
  two_factor_required?: boolean;
  challenge_token?: string;
}

function accept(a: LoginAnswer): void {
  setToken(a.access_token);
  set({ status: 'signed-in', user: a.user! });
}

/** Step one: email and password. Moves to the 2FA step when the account has it. @throws ApiError */
export async function login(email: string, password: string): Promise<void> {
  const a = await post<LoginAnswer>('/auth/login', { email, password });
  if (a.two_factor_required) set({ status: 'two-factor', challenge: a.challenge_token!, email });
  else accept(a);
}

/** Step two: a TOTP code (6 digits) or a backup code. @throws ApiError */
export async function verifyTwoFactor(code: string): Promise<void> {
  const state = store.get();
  if (state.status !== 'two-factor') return;
  const trimmed = code.trim();
  const body = /^\d{6}$/.test(trimmed)
    ? { challenge_token: state.challenge, code: trimmed }
    : { challenge_token: state.challenge, backup_code: trimmed };
  accept(await post<LoginAnswer>('/auth/2fa/verify-login', body));
}

/** Ends the session on the server (best effort) and here. */
export async function logout(): Promise<void> {
  setSigningOut(true);
  try {
    await call('POST', '/auth/logout');
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
  } finally {
    signedOut('You are signed out.');
    setSigningOut(false);
  }
}

/** Forgets the session locally (the server already ended it: a force-logout event, a failed refresh). */
export function signedOut(notice?: string): void {
  setToken(undefined);
  set({ status: 'signed-out', notice });
}

/** Back from the 2FA step to the password form. */
export function cancelTwoFactor(): void {
  set({ status: 'signed-out' });
}

/** Reloads the user (after turning 2FA on). */
export async function reloadUser(): Promise<void> {
  set({ status: 'signed-in', user: await get<User>('/auth/me') });
}
