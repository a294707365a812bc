/** The affiliate's postback URL templates (global or per campaign) with their fire logs. */
import { useId, useState } from 'preact/hooks';
import { call, post } from '../api.ts';
import { when } from '../time.ts';
import { Button, ErrorNote, Field, Section, Select, Table, useAction, useAsync } from '../ui.tsx';
import { DeliveryLog } from './deliveries.tsx';
import { EventChecks } from './webhooks.tsx';

interface Postback {
  id: number;
  url: string;
  campaign_id: number | null;
  events: string[];
  method: string;
  include_fraud: boolean;
  status: string;
  disabled_reason: string | null;
  created_at: string;
}

function NewPostback({ done }: { done: () => void }) {
  const [url, setUrl] = useState('');
  const [campaignId, setCampaignId] = useState('');
  const [method, setMethod] = useState('GET');
  const [events, setEvents] = useState<string[]>(['conversion.created']);
  const [includeFraud, setIncludeFraud] = useState(false);
  const id = useId();
  const [run, busy, error] = useAction(done);
  return (
    <form
      aria-label="New postback"
      onSubmit={(e) => {
        e.preventDefault();
        void run(() =>
          post('/postbacks', {
            url,
            method,
            events,
            include_fraud: includeFraud,
            campaign_id: campaignId ? Number(campaignId) : null,
          }),
        );
      }}
    >
      <Field
        label="URL template"
        value={url}
        onValue={setUrl}
        required
        hint="Macros: {click_id} {event_id} {campaign_id} {goal} {payout} {currency} {status} {sub1}…{sub5}"
      />
      <Field
        label="Campaign id (empty = every campaign)"
        value={campaignId}
        onValue={setCampaignId}
        inputMode="numeric"
      />
      <Select label="Method" value={method} onValue={setMethod} options={['GET', 'POST']} />
      <EventChecks
        options={['conversion.created', 'conversion.approved', 'conversion.rejected']}
        value={events}
        onValue={setEvents}
      />
      <div class="field">
        <span>
          <input
            type="checkbox"
            id={id}
            checked={includeFraud}
            onChange={(e) => setIncludeFraud((e.target as HTMLInputElement).checked)}
          />{' '}
          <label for={id}>Also fire for fraud-flagged conversions</label>
        </span>
      </div>
      <ErrorNote error={error} />
      <button type="submit" class="primary" disabled={busy || events.length === 0}>
        Create postback
      </button>
    </form>
  );
}

export function Postbacks() {
  const list = useAsync(() => call<Postback[]>('GET', '/postbacks?per_page=100'));
  const [open, setOpen] = useState<number>();
  const [run, busy, error] = useAction(list.reload);
  return (
    <>
      <ErrorNote error={list.error ?? error} />
      <Table
        caption="Your postbacks"
        cols={['URL', 'Campaign', 'Events', 'Method', 'Status', 'Created', 'Actions']}
        rows={(list.data?.data ?? []).map((p) => [
          <code key="u">{p.url}</code>,
          p.campaign_id ? `#${p.campaign_id}` : 'all',
          p.events.join(', '),
          `${p.method}${p.include_fraud ? ', fraud too' : ''}`,
          `${p.status}${p.disabled_reason ? ` — ${p.disabled_reason}` : ''}`,
          when(p.created_at),
          <span key="a" class="actions">
            <Button label={`Fire log of ${p.url}`} onClick={() => setOpen(open === p.id ? undefined : p.id)}>
              {open === p.id ? 'Hide log' : 'Fire log'}
            </Button>
            <Button
              disabled={busy}
              label={`${p.status === 'active' ? 'Disable' : 'Enable'} ${p.url}`}
              onClick={() =>
                run(() =>
                  call('PATCH', `/postbacks/${p.id}`, { status: p.status === 'active' ? 'disabled' : 'active' }),
                )
              }
            >
              {p.status === 'active' ? 'Disable' : 'Enable'}
            </Button>
            <Button
              kind="danger"
              disabled={busy}
              label={`Delete ${p.url}`}
              onClick={() => run(() => call('DELETE', `/postbacks/${p.id}`))}
            >
              Delete
            </Button>
          </span>,
        ])}
        empty="No postbacks."
      />
      {open !== undefined && (
        <Section title="Fire log">
          <DeliveryLog path={`/postbacks/${open}/logs`} title={`Fires of postback #${open}`} />
        </Section>
      )}
      <Section title="New postback">
        <NewPostback done={list.reload} />
      </Section>
    </>
  );
}
