/** Sign-in: email and password, then (when the account has 2FA) a TOTP or backup code. */
import { useState } from 'preact/hooks';
import { cancelTwoFactor, login, type SessionState, verifyTwoFactor } from '../session.ts';
import { ErrorNote, Field, Notice } from '../ui.tsx';

export function Login({ state }: { state: SessionState }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = (fn: () => Promise<void>) => async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await fn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (state.status === 'two-factor') {
    return (
      <main id="main" class="login">
        <h1>Two-factor sign-in</h1>
        <form onSubmit={submit(() => verifyTwoFactor(code))}>
          <p>Enter the 6-digit code from your authenticator app for {state.email}, or one of your backup codes.</p>
          <Field
            label="Code"
            value={code}
            onValue={setCode}
            autoComplete="one-time-code"
            inputMode="text"
            required
            autoFocus
          />
          <ErrorNote error={error} />
          <div class="actions">
            <button type="submit" class="primary" disabled={busy}>
              Verify
            </button>
            <button type="button" onClick={cancelTwoFactor}>
              Back
            </button>
          </div>
        </form>
      </main>
    );
  }
  return (
    <main id="main" class="login">
      <h1>Sign in</h1>
      {state.status === 'signed-out' && <Notice>{state.notice}</Notice>}
      <form onSubmit={submit(() => login(email, password))}>
        <Field label="Email" type="email" value={email} onValue={setEmail} autoComplete="username" required />
        <Field
          label="Password"
          type="password"
          value={password}
          onValue={setPassword}
          autoComplete="current-password"
          required
        />
        <ErrorNote error={error} />
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            Sign in
          </button>
        </div>
      </form>
    </main>
  );
}
