/** The delivery log of a webhook or postback endpoint: each delivery with its attempts, and replay for webhooks. */
import { call, post } from '../api.ts';
import { when } from '../time.ts';
import { Button, ErrorNote, Table, useAction, useAsync } from '../ui.tsx';

interface Attempt {
  attempt: number;
  started_at: string;
  request_method: string;
  request_url: string;
  status_code: number | null;
  latency_ms: number;
  error: string | null;
  success: boolean;
}

interface Delivery {
  id: number;
  event_type: string;
  status: string;
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  attempt_log: Attempt[];
}

function attempts(d: Delivery): string {
  return d.attempt_log
    .map(
      (a) =>
        `#${a.attempt} ${when(a.started_at)} ${a.request_method} ${a.status_code ?? a.error ?? '—'} (${a.latency_ms} ms)`,
    )
    .join('; ');
}

/** `path`: `/webhooks/<id>/deliveries` or `/postbacks/<id>/logs`; `replay` shows the replay button (webhooks). */
export function DeliveryLog({ path, title, replay }: { path: string; title: string; replay?: boolean }) {
  const list = useAsync(() => call<Delivery[]>('GET', `${path}?per_page=50`), [path]);
  const [run, busy, error] = useAction(list.reload);
  return (
    <>
      <div class="actions">
        <Button onClick={list.reload}>Refresh the log</Button>
      </div>
      <ErrorNote error={list.error ?? error} />
      <Table
        caption={title}
        cols={['Created', 'Event', 'Status', 'Attempts', 'Next attempt', ...(replay ? [''] : [])]}
        rows={(list.data?.data ?? []).map((d) => [
          when(d.created_at),
          d.event_type,
          `${d.status}${d.last_status_code ? ` (${d.last_status_code})` : ''}${d.last_error ? ` — ${d.last_error}` : ''}`,
          attempts(d) || '0',
          when(d.next_attempt_at),
          ...(replay
            ? [
                <Button
                  key="r"
                  disabled={busy}
                  label={`Replay delivery ${d.id}`}
                  onClick={() => run(() => post(`/webhooks/deliveries/${d.id}/replay`))}
                >
                  Replay
                </Button>,
              ]
            : []),
        ])}
        empty="No deliveries yet."
      />
    </>
  );
}
