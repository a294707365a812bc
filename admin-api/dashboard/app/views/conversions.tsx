/**
 * Conversions in the caller's scope (`GET /conversions`), newest first, filtered by status. Advertisers (and admins)
 * approve or reject a pending one and reverse (refund, chargeback) a pending or approved one, giving a reason.
 */
import { useState } from 'preact/hooks';
import { call, post, type User } from '../api.ts';
import { when } from '../time.ts';
import { Button, ErrorNote, Field, money, Select, Table, useAction, useAsync } from '../ui.tsx';

interface Conversion {
  id: string;
  event_id?: string;
  campaign_id: number;
  affiliate_id: number;
  goal: string | null;
  status: 'pending' | 'approved' | 'rejected' | 'reversed';
  reject_reason: string | null;
  currency: string;
  payout: number;
  revenue?: number;
  event_time: string;
}

function Actions({ c, done }: { c: Conversion; done: () => void }) {
  const [reason, setReason] = useState('');
  const [run, busy, error] = useAction(done);
  const name = c.event_id ?? c.id.slice(0, 8);
  if (c.status === 'rejected' || c.status === 'reversed') return null;
  return (
    <span class="actions">
      {c.status === 'pending' && (
        <Button
          kind="primary"
          disabled={busy}
          label={`Approve ${name}`}
          onClick={() => run(() => post(`/conversions/${c.id}/approve`))}
        >
          Approve
        </Button>
      )}
      <Field label={`Reason for ${name}`} value={reason} onValue={setReason} />
      {c.status === 'pending' && (
        <Button
          kind="danger"
          disabled={busy || !reason.trim()}
          label={`Reject ${name}`}
          onClick={() => run(() => post(`/conversions/${c.id}/reject`, { reason }))}
        >
          Reject
        </Button>
      )}
      <Button
        kind="danger"
        disabled={busy || !reason.trim()}
        label={`Reverse ${name}`}
        onClick={() => run(() => post(`/conversions/${c.id}/reverse`, { reason }))}
      >
        Reverse
      </Button>
      <ErrorNote error={error} />
    </span>
  );
}

export function Conversions({ user }: { user: User }) {
  const [status, setStatus] = useState('');
  const list = useAsync(
    () => call<Conversion[]>('GET', `/conversions?per_page=100${status ? `&status=${status}` : ''}`),
    [status],
  );
  const decides = user.role === 'advertiser' || user.role === 'admin';
  const rows = list.data?.data ?? [];
  return (
    <>
      <Select
        label="Status"
        value={status}
        onValue={setStatus}
        options={[['', 'All'], 'pending', 'approved', 'rejected', 'reversed']}
      />
      <ErrorNote error={list.error} />
      <Table
        caption={`Conversions (${list.data?.meta?.total ?? 0})`}
        cols={[
          'When',
          'Order',
          'Campaign',
          'Affiliate',
          'Goal',
          'Status',
          ...(user.role === 'affiliate' ? [] : ['Revenue']),
          'Payout',
          ...(decides ? ['Decide'] : []),
        ]}
        rows={rows.map((c) => [
          when(c.event_time),
          c.event_id ?? c.id.slice(0, 8),
          `#${c.campaign_id}`,
          `#${c.affiliate_id}`,
          c.goal ?? '',
          `${c.status}${c.reject_reason ? ` (${c.reject_reason})` : ''}`,
          ...(user.role === 'affiliate' ? [] : [money(c.revenue ?? 0, c.currency)]),
          money(c.payout, c.currency),
          ...(decides ? [<Actions key="a" c={c} done={list.reload} />] : []),
        ])}
        empty="No conversions."
      />
    </>
  );
}
