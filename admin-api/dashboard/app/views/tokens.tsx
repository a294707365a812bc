/** The advertiser's postback tokens (a new one shown once, the list by prefix, revoke) and its IP allowlist. */
import { useState } from 'preact/hooks';
import { call, post } from '../api.ts';
import { when } from '../time.ts';
import { Button, ErrorNote, Notice, Table, useAction, useAsync } from '../ui.tsx';
import { PostbackAllowlist } from './allowlist.tsx';

interface Token {
  id: number;
  prefix: string;
  created_at: string;
  revoked_at?: string | null;
  last_used_at?: string | null;
}

export function Tokens() {
  const list = useAsync(() => call<Token[]>('GET', '/postback-tokens?per_page=100'));
  const [fresh, setFresh] = useState('');
  const [run, busy, error] = useAction(list.reload);
  return (
    <>
      <p>
        Your server sends conversions to the tracker's <code>/api/v1/track/conversion</code> with one of these tokens
        (header <code>X-Postback-Token</code>).
      </p>
      <div class="actions">
        <Button
          kind="primary"
          disabled={busy}
          onClick={() => run(async () => setFresh((await post<{ token: string }>('/postback-tokens')).token))}
        >
          New token
        </Button>
      </div>
      {fresh && (
        <Notice>
          New token (shown once, copy it now): <code data-testid="new-token">{fresh}</code>
        </Notice>
      )}
      <ErrorNote error={list.error ?? error} />
      <Table
        caption="Postback tokens"
        cols={['Prefix', 'Created', 'Last used', 'Revoked', '']}
        rows={(list.data?.data ?? []).map((t) => [
          <code key="p">{t.prefix}…</code>,
          when(t.created_at),
          when(t.last_used_at),
          when(t.revoked_at),
          t.revoked_at ? (
            ''
          ) : (
            <Button
              key="r"
              kind="danger"
              disabled={busy}
              label={`Revoke token ${t.prefix}`}
              onClick={() => run(() => call('DELETE', `/postback-tokens/${t.id}`))}
            >
              Revoke
            </Button>
          ),
        ])}
        empty="No tokens yet."
      />
      <PostbackAllowlist />
    </>
  );
}
