/**
 * Webhook endpoints (Standard Webhooks): create (the signing secret is shown once), enable or disable, rotate the
 * secret, delete, send a test event, retry failed deliveries, and each endpoint's delivery log with replay.
 */
import { useId, useState } from 'preact/hooks';
import { call, post } from '../api.ts';
import { when } from '../time.ts';
import { Button, ErrorNote, Field, Notice, Section, Table, useAction, useAsync } from '../ui.tsx';
import { DeliveryLog } from './deliveries.tsx';

interface Webhook {
  id: number;
  url: string;
  events: string[];
  description: string | null;
  status: string;
  disabled_reason: string | null;
  created_at: string;
}

const EVENTS = [
  'conversion.created',
  'conversion.approved',
  'conversion.rejected',
  'partnership.created',
  'website.approved',
  'website.rejected',
  'campaign.status_changed',
  'wallet.updated',
  'payout.paid',
  'fraud.alert',
];

/** Checkboxes of event types. */
export function EventChecks({
  options,
  value,
  onValue,
}: {
  options: string[];
  value: string[];
  onValue: (v: string[]) => void;
}) {
  const id = useId();
  return (
    <fieldset class="checks">
      <legend>Events</legend>
      {options.map((o) => (
        <span key={o}>
          <input
            type="checkbox"
            id={`${id}-${o}`}
            checked={value.includes(o)}
            onChange={(e) =>
              onValue((e.target as HTMLInputElement).checked ? [...value, o] : value.filter((x) => x !== o))
            }
          />
          <label for={`${id}-${o}`}>{o}</label>
        </span>
      ))}
    </fieldset>
  );
}

function NewWebhook({ done }: { done: () => void }) {
  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [events, setEvents] = useState<string[]>(['conversion.created']);
  const [secret, setSecret] = useState('');
  const [run, busy, error] = useAction(done);
  return (
    <form
      aria-label="New webhook"
      onSubmit={(e) => {
        e.preventDefault();
        void run(async () => {
          const w = await post<{ secret: string }>('/webhooks', { url, events, description: description || null });
          setSecret(w.secret);
        });
      }}
    >
      <Field label="Endpoint URL" type="url" value={url} onValue={setUrl} required />
      <Field label="Description" value={description} onValue={setDescription} />
      <EventChecks options={EVENTS} value={events} onValue={setEvents} />
      <ErrorNote error={error} />
      {secret && (
        <Notice>
          Signing secret (shown once): <code>{secret}</code>
        </Notice>
      )}
      <button type="submit" class="primary" disabled={busy || events.length === 0}>
        Create webhook
      </button>
    </form>
  );
}

export function Webhooks() {
  const list = useAsync(() => call<Webhook[]>('GET', '/webhooks?per_page=100'));
  const [open, setOpen] = useState<number>();
  const [note, setNote] = useState('');
  const [run, busy, error] = useAction(list.reload);
  const rows = list.data?.data ?? [];
  return (
    <>
      <div class="actions">
        <Button
          disabled={busy || rows.length === 0}
          onClick={() =>
            run(async () => {
              await post('/webhooks/test', {});
              setNote('A test conversion.created is on its way to each of your endpoints.');
            })
          }
        >
          Send a test event
        </Button>
        <Button
          disabled={busy || rows.length === 0}
          onClick={() =>
            run(async () => {
              const r = await post<{ requeued?: number }>('/webhooks/retry-failed', {});
              setNote(`Failed deliveries requeued${r.requeued === undefined ? '' : `: ${r.requeued}`}.`);
            })
          }
        >
          Retry failed deliveries
        </Button>
      </div>
      <Notice>{note}</Notice>
      <ErrorNote error={list.error ?? error} />
      <Table
        caption="Your webhook endpoints"
        cols={['URL', 'Events', 'Status', 'Created', 'Actions']}
        rows={rows.map((w) => [
          <code key="u">{w.url}</code>,
          w.events.join(', '),
          `${w.status}${w.disabled_reason ? ` — ${w.disabled_reason}` : ''}`,
          when(w.created_at),
          <span key="a" class="actions">
            <Button label={`Delivery log of ${w.url}`} onClick={() => setOpen(open === w.id ? undefined : w.id)}>
              {open === w.id ? 'Hide log' : 'Log'}
            </Button>
            <Button
              label={`Send a test to ${w.url}`}
              disabled={busy}
              onClick={() => run(() => post('/webhooks/test', { webhook_id: w.id }))}
            >
              Test
            </Button>
            <Button
              disabled={busy}
              label={`${w.status === 'active' ? 'Disable' : 'Enable'} ${w.url}`}
              onClick={() =>
                run(() => call('PATCH', `/webhooks/${w.id}`, { status: w.status === 'active' ? 'disabled' : 'active' }))
              }
            >
              {w.status === 'active' ? 'Disable' : 'Enable'}
            </Button>
            <Button
              disabled={busy}
              label={`Rotate the secret of ${w.url}`}
              onClick={() =>
                run(async () => {
                  const r = (await call<{ secret: string }>('PUT', `/webhooks/${w.id}/rotate-secret`)).data;
                  setNote(`New signing secret (shown once): ${r.secret}`);
                })
              }
            >
              Rotate secret
            </Button>
            <Button
              kind="danger"
              disabled={busy}
              label={`Delete ${w.url}`}
              onClick={() => run(() => call('DELETE', `/webhooks/${w.id}`))}
            >
              Delete
            </Button>
          </span>,
        ])}
        empty="No webhook endpoints."
      />
      {open !== undefined && (
        <Section title="Delivery log">
          <DeliveryLog path={`/webhooks/${open}/deliveries`} title={`Deliveries of webhook #${open}`} replay />
        </Section>
      )}
      <Section title="New webhook">
        <NewWebhook done={list.reload} />
      </Section>
    </>
  );
}
