/**
 * Campaigns. Advertisers: their campaigns, a new one, edit, status changes (activate, pause, archive), the landing
 * pages of its split test and the affiliates to approve or reject (with their caps). Affiliates: the campaigns they
 * can join, and joining (a public one gives a link at once). Admins: every campaign and its status.
 */
import { useState } from 'preact/hooks';
import { call, get, post, type User } from '../api.ts';
import { go } from '../router.ts';
import { Button, ErrorNote, Field, money, Notice, Section, Table, useAction, useAsync } from '../ui.tsx';
import { Affiliates } from './campaign-affiliates.tsx';
import { type Campaign, CampaignForm } from './campaign-form.tsx';
import { LandingPages } from './landing-pages.tsx';

const NEXT: Record<Campaign['status'], Array<['active' | 'paused' | 'archived', string]>> = {
  draft: [
    ['active', 'Activate'],
    ['archived', 'Archive'],
  ],
  active: [
    ['paused', 'Pause'],
    ['archived', 'Archive'],
  ],
  paused: [
    ['active', 'Activate'],
    ['archived', 'Archive'],
  ],
  archived: [],
};

function terms(c: Campaign): string {
  if (c.payout_model === 'RevShare') return `RevShare ${c.payout} %`;
  return `${c.payout_model} ${money(c.payout, c.currency)}`;
}

function Detail({ id, user }: { id: number; user: User }) {
  const c = useAsync(() => get<Campaign>(`/campaigns/${id}`), [id]);
  const [editing, setEditing] = useState(false);
  const [run, busy, error] = useAction(c.reload);
  if (c.error) return <ErrorNote error={c.error} />;
  if (!c.data) return <p role="status">Loading…</p>;
  const camp = c.data;
  return (
    <>
      <p>
        <a href="#/campaigns">← All campaigns</a>
      </p>
      <Section title={camp.name}>
        <p>
          Status: <strong data-testid="campaign-status">{camp.status}</strong> · {terms(camp)} · budget{' '}
          {camp.budget === null || camp.budget === undefined ? 'none' : money(camp.budget, camp.currency)} ·{' '}
          {camp.visibility}
        </p>
        <p class="url">{camp.destination_url}</p>
        <div class="actions">
          {NEXT[camp.status].map(([to, text]) => (
            <Button
              key={to}
              kind={to === 'archived' ? 'danger' : 'primary'}
              disabled={busy}
              onClick={() => run(() => post(`/campaigns/${camp.id}/status`, { status: to }))}
            >
              {text}
            </Button>
          ))}
          {camp.status !== 'archived' && (
            <Button onClick={() => setEditing(!editing)}>{editing ? 'Close' : 'Edit'}</Button>
          )}
        </div>
        <ErrorNote error={error} />
      </Section>
      {editing && (
        <Section title="Edit">
          <CampaignForm
            campaign={camp}
            done={() => {
              setEditing(false);
              c.reload();
            }}
          />
        </Section>
      )}
      {user.role !== 'affiliate' && <LandingPages campaign={camp} />}
      {user.role !== 'affiliate' && <Affiliates campaign={camp} />}
    </>
  );
}

function Join({ c, reload }: { c: Campaign; reload: () => void }) {
  const [joined, setJoined] = useState('');
  const [run, busy, error] = useAction(reload);
  if (c.membership === 'approved') return <a href="#/links">Your links</a>;
  if (c.membership === 'pending') return <span>Waiting for approval</span>;
  return (
    <>
      <Button
        kind="primary"
        disabled={busy}
        label={`Join ${c.name}`}
        onClick={() =>
          run(async () => {
            const r = await post<{ status: string }>(`/campaigns/${c.id}/join`);
            setJoined(r.status === 'approved' ? 'Joined: your link is ready.' : 'Request sent.');
          })
        }
      >
        Join
      </Button>
      <Notice>{joined}</Notice>
      <ErrorNote error={error} />
    </>
  );
}

/** A private campaign is listed only once approved: the affiliate asks to join it by the id it was given. */
function JoinById({ done }: { done: () => void }) {
  const [id, setId] = useState('');
  const [result, setResult] = useState('');
  const [run, busy, error] = useAction(done);
  return (
    <form
      class="filters"
      aria-label="Join by id"
      onSubmit={(e) => {
        e.preventDefault();
        void run(async () => {
          const r = await post<{ status: string }>(`/campaigns/${Number(id)}/join`);
          setResult(r.status === 'approved' ? 'Joined: your link is ready.' : 'Request sent: the advertiser decides.');
        });
      }}
    >
      <Field label="Campaign id (a private campaign you were given)" value={id} onValue={setId} inputMode="numeric" />
      <button type="submit" disabled={busy || !/^\d+$/.test(id)}>
        Ask to join
      </button>
      <Notice>{result}</Notice>
      <ErrorNote error={error} />
    </form>
  );
}

export function Campaigns({ user, sub }: { user: User; sub: string }) {
  const list = useAsync(() => call<Campaign[]>('GET', '/campaigns?per_page=100'), [sub]);
  const [creating, setCreating] = useState(false);
  const id = Number(sub);
  if (id > 0) return <Detail id={id} user={user} />;
  const rows = list.data?.data ?? [];
  return (
    <>
      {user.role === 'advertiser' && (
        <div class="actions">
          <Button kind="primary" onClick={() => setCreating(!creating)}>
            {creating ? 'Close the form' : 'New campaign'}
          </Button>
        </div>
      )}
      {creating && (
        <Section title="New campaign">
          <CampaignForm
            done={(c) => {
              setCreating(false);
              go(`campaigns/${c.id}`);
            }}
          />
        </Section>
      )}
      {user.role === 'affiliate' && <JoinById done={list.reload} />}
      <ErrorNote error={list.error} />
      <Table
        caption={user.role === 'affiliate' ? 'Campaigns you can join or have joined' : 'Campaigns'}
        cols={['Name', 'Status', 'Terms', 'Visibility', user.role === 'affiliate' ? 'Membership' : 'Budget']}
        rows={rows.map((c) => [
          user.role === 'affiliate' ? c.name : <a href={`#/campaigns/${c.id}`}>{c.name}</a>,
          c.status,
          terms(c),
          c.visibility,
          user.role === 'affiliate' ? (
            <Join c={c} reload={list.reload} />
          ) : c.budget === null || c.budget === undefined ? (
            'none'
          ) : (
            money(c.budget, c.currency)
          ),
        ])}
        empty={user.role === 'affiliate' ? 'No campaign to join yet.' : 'No campaign yet.'}
      />
    </>
  );
}
