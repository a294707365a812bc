/**
 * The affiliates of a campaign (owner advertiser or admin): approve or reject a pending request, and set each
 * affiliate's click and conversion caps on the campaign (`PATCH /campaigns/:id/affiliates/:affiliate_id`; empty =
 * no cap, daily caps count days in the campaign's time zone).
 */
import { useState } from 'preact/hooks';
import { call, get, post } from '../api.ts';
import { when } from '../time.ts';
import { Button, ErrorNote, Field, Notice, Section, Table, useAction, useAsync } from '../ui.tsx';
import { type Campaign, count } from './campaign-form.tsx';

interface Member {
  affiliate_id: number;
  name: string;
  status: string;
  created_at: string;
  click_cap_daily: number | null;
  click_cap_total: number | null;
  conversion_cap_daily: number | null;
  conversion_cap_total: number | null;
}

const CAPS = [
  ['click_cap_daily', 'Daily clicks'],
  ['click_cap_total', 'Total clicks'],
  ['conversion_cap_daily', 'Daily conversions'],
  ['conversion_cap_total', 'Total conversions'],
] as const;

function summary(m: Member): string {
  const set = CAPS.filter(([k]) => m[k] !== null).map(([k, t]) => `${t.toLowerCase()} ${m[k]}`);
  return set.length ? set.join(', ') : 'none';
}

function CapsForm({ campaign, m, done }: { campaign: Campaign; m: Member; done: () => void }) {
  const [v, setV] = useState<Record<string, string>>(
    Object.fromEntries(CAPS.map(([k]) => [k, m[k] === null ? '' : String(m[k])])),
  );
  const [saved, setSaved] = useState('');
  const [run, busy, error] = useAction(done);
  return (
    <form
      class="filters"
      aria-label={`Caps of ${m.name}`}
      onSubmit={(e) => {
        e.preventDefault();
        void run(async () => {
          const body = Object.fromEntries(CAPS.map(([k, t]) => [k, count(v[k] ?? '', `${t} cap`)]));
          await call('PATCH', `/campaigns/${campaign.id}/affiliates/${m.affiliate_id}`, body);
          setSaved('Caps saved.');
        });
      }}
    >
      {CAPS.map(([k, t]) => (
        <Field
          key={k}
          label={`${t} cap of ${m.name}`}
          value={v[k] ?? ''}
          onValue={(x) => setV({ ...v, [k]: x })}
          inputMode="numeric"
        />
      ))}
      <button type="submit" disabled={busy}>
        Save caps
      </button>
      <Notice>{saved}</Notice>
      <ErrorNote error={error} />
    </form>
  );
}

/** The campaign's affiliates with their membership, caps and decisions. */
export function Affiliates({ campaign }: { campaign: Campaign }) {
  const list = useAsync(() => get<Member[]>(`/campaigns/${campaign.id}/affiliates?per_page=100`), [campaign.id]);
  const [editing, setEditing] = useState<number>();
  const [run, busy, error] = useAction(list.reload);
  const rows = list.data ?? [];
  const edited = rows.find((m) => m.affiliate_id === editing);
  return (
    <Section title="Affiliates">
      <ErrorNote error={list.error ?? error} />
      <Table
        caption={`Affiliates of ${campaign.name}`}
        cols={['Affiliate', 'Status', 'Since', 'Caps', 'Decide']}
        rows={rows.map((a) => [
          `${a.name} (#${a.affiliate_id})`,
          a.status,
          when(a.created_at),
          <span key="caps" class="actions">
            <span data-testid={`caps-${a.affiliate_id}`}>{summary(a)}</span>
            {a.status === 'approved' && (
              <Button
                label={`Set caps of ${a.name}`}
                onClick={() => setEditing(editing === a.affiliate_id ? undefined : a.affiliate_id)}
              >
                {editing === a.affiliate_id ? 'Close' : 'Set caps'}
              </Button>
            )}
          </span>,
          a.status === 'pending' ? (
            <span class="actions">
              <Button
                disabled={busy}
                onClick={() => run(() => post(`/campaigns/${campaign.id}/affiliates/${a.affiliate_id}/approve`))}
                label={`Approve ${a.name}`}
              >
                Approve
              </Button>
              <Button
                kind="danger"
                disabled={busy}
                onClick={() => run(() => post(`/campaigns/${campaign.id}/affiliates/${a.affiliate_id}/reject`))}
                label={`Reject ${a.name}`}
              >
                Reject
              </Button>
            </span>
          ) : (
            ''
          ),
        ])}
        empty="No affiliate has joined yet."
      />
      {edited && <CapsForm key={edited.affiliate_id} campaign={campaign} m={edited} done={list.reload} />}
    </Section>
  );
}
