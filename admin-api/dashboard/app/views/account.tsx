/** The account: who you are, 2FA setup, your sessions (revoke any, the current one included) and sign-out. */
import { useState } from 'preact/hooks';
import { call, get, post, setSigningOut, type User } from '../api.ts';
import { logout, reloadUser, signedOut } from '../session.ts';
import { when } from '../time.ts';
import { Button, ErrorNote, Field, Notice, Section, Table, useAction, useAsync } from '../ui.tsx';

interface SessionRow {
  id: string;
  device: string | null;
  ip: string | null;
  created_at: string;
  last_used_at: string;
  current: boolean;
}

interface Setup {
  otpauth_url: string;
  qr_code: string;
  secret: string;
  backup_codes: string[];
}

function TwoFactor({ user }: { user: User }) {
  const [setup, setSetup] = useState<Setup>();
  const [code, setCode] = useState('');
  const [done, setDone] = useState('');
  const [run, busy, error] = useAction();
  if (user.two_factor_enabled) return <p>Two-factor authentication is on.</p>;
  if (!setup)
    return (
      <>
        <p>Two-factor authentication is off.</p>
        <ErrorNote error={error} />
        <Button
          kind="primary"
          disabled={busy}
          onClick={() => run(async () => setSetup(await post<Setup>('/auth/2fa/setup')))}
        >
          Set up two-factor authentication
        </Button>
      </>
    );
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void run(async () => {
          await post('/auth/2fa/verify', { code: code.trim() });
          setDone('Two-factor authentication is on; your other sessions were signed out.');
          await reloadUser();
        });
      }}
    >
      <p>Scan the code with your authenticator app (or enter the secret), then type the code it shows.</p>
      <img src={setup.qr_code} alt={`QR code of ${setup.otpauth_url}`} width={200} height={200} />
      <p>
        Secret: <code>{setup.secret}</code>
      </p>
      <p>Backup codes (each works once; keep them safe):</p>
      <ul class="codes">
        {setup.backup_codes.map((c) => (
          <li key={c}>
            <code>{c}</code>
          </li>
        ))}
      </ul>
      <Field
        label="Code from the app"
        value={code}
        onValue={setCode}
        inputMode="numeric"
        autoComplete="one-time-code"
      />
      <ErrorNote error={error} />
      <Notice>{done}</Notice>
      <button type="submit" class="primary" disabled={busy}>
        Turn on
      </button>
    </form>
  );
}

export function Account({ user }: { user: User }) {
  const sessions = useAsync(() => get<SessionRow[]>('/auth/sessions'));
  const [run, busy, error] = useAction(sessions.reload);
  return (
    <>
      <Section title="You">
        <p>
          {user.name} — {user.email} — {user.role}
        </p>
        <Button onClick={() => void logout()}>Sign out</Button>
      </Section>
      <Section title="Two-factor authentication">
        <TwoFactor user={user} />
      </Section>
      <Section title="Sessions">
        <ErrorNote error={sessions.error ?? error} />
        <Table
          caption="Your signed-in sessions"
          cols={['Device', 'IP', 'Signed in', 'Last used', '']}
          rows={(sessions.data ?? []).map((s) => [
            s.device ?? '',
            s.ip ?? '',
            when(s.created_at),
            when(s.last_used_at),
            <Button
              key={s.id}
              kind="danger"
              disabled={busy}
              label={s.current ? 'Revoke this session (signs you out)' : `Revoke session from ${s.ip ?? 'unknown'}`}
              onClick={() =>
                run(async () => {
                  if (!s.current) {
                    await call('DELETE', `/auth/sessions/${s.id}`);
                    return;
                  }
                  // Ending this very session is a sign-out: expected, so its force-logout event is no news.
                  setSigningOut(true);
                  try {
                    await call('DELETE', `/auth/sessions/${s.id}`);
                  } finally {
                    signedOut('You ended this session.');
                    setSigningOut(false);
                  }
                })
              }
            >
              {s.current ? 'Revoke (this one)' : 'Revoke'}
            </Button>,
          ])}
        />
      </Section>
    </>
  );
}
