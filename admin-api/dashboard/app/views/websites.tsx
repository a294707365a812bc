/**
 * Websites. Advertisers: theirs with the approval status (and the reason of a rejection), a new one, resubmitting a
 * rejected one. Admins: the queue to approve or reject (with a reason).
 */
import { useState } from 'preact/hooks';
import { call, post, type User } from '../api.ts';
import { when } from '../time.ts';
import { Button, ErrorNote, Field, Section, Select, Table, useAction, useAsync } from '../ui.tsx';

interface Website {
  id: number;
  advertiser_id: number;
  url: string;
  name: string;
  status: 'pending' | 'approved' | 'rejected';
  reason?: string | null;
  rejection_reason?: string | null;
  created_at: string;
}

function NewWebsite({ done }: { done: () => void }) {
  const [url, setUrl] = useState('');
  const [name, setName] = useState('');
  const [run, busy, error] = useAction(() => {
    setUrl('');
    setName('');
    done();
  });
  return (
    <form
      aria-label="New website"
      onSubmit={(e) => {
        e.preventDefault();
        void run(() => post('/websites', { url, name }));
      }}
    >
      <Field label="URL" type="url" value={url} onValue={setUrl} required />
      <Field label="Name" value={name} onValue={setName} required />
      <ErrorNote error={error} />
      <button type="submit" class="primary" disabled={busy}>
        Submit for approval
      </button>
    </form>
  );
}

function Decide({ w, done }: { w: Website; done: () => void }) {
  const [reason, setReason] = useState('');
  const [run, busy, error] = useAction(done);
  return (
    <span class="actions">
      <Button
        kind="primary"
        disabled={busy}
        label={`Approve ${w.name}`}
        onClick={() => run(() => post(`/websites/${w.id}/approve`))}
      >
        Approve
      </Button>
      <Field label={`Reason to reject ${w.name}`} value={reason} onValue={setReason} />
      <Button
        kind="danger"
        disabled={busy || !reason.trim()}
        label={`Reject ${w.name}`}
        onClick={() => run(() => post(`/websites/${w.id}/reject`, { reason }))}
      >
        Reject
      </Button>
      <ErrorNote error={error} />
    </span>
  );
}

export function Websites({ user }: { user: User }) {
  const admin = user.role === 'admin';
  const [status, setStatus] = useState(admin ? 'pending' : '');
  const list = useAsync(
    () => call<Website[]>('GET', `/websites?per_page=100${status ? `&status=${status}` : ''}`),
    [status],
  );
  const [run, busy, error] = useAction(list.reload);
  return (
    <>
      <Select
        label="Status"
        value={status}
        onValue={setStatus}
        options={[
          ['', 'All'],
          ['pending', 'Pending'],
          ['approved', 'Approved'],
          ['rejected', 'Rejected'],
        ]}
      />
      <ErrorNote error={list.error ?? error} />
      <Table
        caption={admin ? 'Websites' : 'Your websites'}
        cols={['Name', 'URL', 'Status', 'Submitted', admin ? 'Decide' : '']}
        rows={(list.data?.data ?? []).map((w) => [
          w.name,
          w.url,
          `${w.status}${w.reason || w.rejection_reason ? ` — ${w.reason ?? w.rejection_reason}` : ''}`,
          when(w.created_at),
          admin ? (
            w.status === 'pending' ? (
              <Decide w={w} done={list.reload} />
            ) : (
              ''
            )
          ) : w.status === 'rejected' ? (
            <Button disabled={busy} onClick={() => run(() => post(`/websites/${w.id}/resubmit`))}>
              Resubmit
            </Button>
          ) : (
            ''
          ),
        ])}
      />
      {!admin && (
        <Section title="New website">
          <NewWebsite done={list.reload} />
        </Section>
      )}
    </>
  );
}
