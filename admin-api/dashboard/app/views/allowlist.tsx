/**
 * The advertiser's postback IP allowlist (README "Postback IP allowlist"): the addresses and CIDR ranges its postbacks
 * may come from (empty: any), replaced whole, and the postbacks it refused, newest first with "Load more".
 */
import { useEffect, useState } from 'preact/hooks';
import { call, get, qs } from '../api.ts';
import { when } from '../time.ts';
import { Area, Button, ErrorNote, lines, Notice, Section, Table, useAction, useAsync } from '../ui.tsx';

interface Refusal {
  id: string;
  ip: string;
  token_prefix: string;
  received_at: string;
}

function Refusals({ version }: { version: number }) {
  const [rows, setRows] = useState<Refusal[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [run, busy, error] = useAction();
  const load = (cursor?: string) =>
    run(async () => {
      const r = await call<Refusal[]>('GET', `/postback-allowlist/refusals${qs({ limit: 50, cursor })}`);
      setRows((old) => (cursor ? [...old, ...r.data] : r.data));
      setNext((r.meta as unknown as { next_cursor: string | null }).next_cursor);
    });
  useEffect(() => void load(), [version]);
  return (
    <Section title="Refused postbacks">
      <div class="actions">
        <Button onClick={() => void load()} disabled={busy}>
          Refresh refusals
        </Button>
      </div>
      <ErrorNote error={error} />
      <Table
        caption="Postbacks refused by the allowlist (the last 1,000 are kept)"
        cols={['Received', 'From IP', 'Token']}
        rows={rows.map((r) => [when(r.received_at), r.ip, <code key="t">{r.token_prefix}…</code>])}
        empty="No postback was refused."
      />
      {next && (
        <Button onClick={() => void load(next)} disabled={busy}>
          Load more
        </Button>
      )}
    </Section>
  );
}

/** The allowlist section of the postback tokens page. */
export function PostbackAllowlist() {
  const current = useAsync(() => get<{ entries: string[]; updated_at: string | null }>('/postback-allowlist'));
  const [text, setText] = useState<string>();
  const [note, setNote] = useState('');
  const [version, setVersion] = useState(0);
  const [run, busy, error] = useAction(current.reload);
  const value = text ?? (current.data?.entries ?? []).join('\n');
  return (
    <>
      <Section title="Postback IP allowlist">
        <form
          aria-label="Postback IP allowlist"
          onSubmit={(e) => {
            e.preventDefault();
            void run(async () => {
              const saved = (await call<{ entries: string[] }>('PUT', '/postback-allowlist', { entries: lines(value) }))
                .data;
              setText(saved.entries.join('\n'));
              setNote(
                saved.entries.length
                  ? `Allowlist saved: postbacks only from ${saved.entries.join(', ')}.`
                  : 'Allowlist cleared: postbacks from any address.',
              );
              setVersion((v) => v + 1);
            });
          }}
        >
          <Area
            label="Allowed addresses"
            value={value}
            onValue={setText}
            rows={4}
            hint="One IPv4/IPv6 address or CIDR range per line (at most 100); empty: any address may post"
          />
          <p class="hint">Last changed: {when(current.data?.updated_at) || 'never'}</p>
          <ErrorNote error={current.error ?? error} />
          <button type="submit" class="primary" disabled={busy}>
            Save allowlist
          </button>
          <Notice>{note}</Notice>
        </form>
      </Section>
      <Refusals version={version} />
    </>
  );
}
