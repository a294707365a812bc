/**
 * Admin views: withdrawals to approve or reject; the delivery queue (every webhook and postback endpoint, their
 * delivery logs, retrying failed deliveries) and the alerts of the live stream (fraud, parked batches, disabled
 * endpoints, queue and spool alerts).
 */
import { useState } from 'preact/hooks';
import { call, post } from '../api.ts';
import { ALERT_TYPES, useLive } from '../live.ts';
import { when } from '../time.ts';
import { Button, ErrorNote, Field, money, Notice, Section, Select, Table, useAction, useAsync } from '../ui.tsx';
import { DeliveryLog } from './deliveries.tsx';
import { summary } from './overview.tsx';

interface Withdrawal {
  id: string;
  affiliate_id: number;
  status: string;
  amount: number;
  currency: string;
  wallet_id: number;
  created_at: string;
  resolved_at: string | null;
}

function Decide({ w, done }: { w: Withdrawal; done: () => void }) {
  const [txHash, setTxHash] = useState('');
  const [reason, setReason] = useState('');
  const [run, busy, error] = useAction(done);
  return (
    <span class="actions">
      <Field label={`Transaction hash for ${w.id.slice(0, 8)}`} value={txHash} onValue={setTxHash} />
      <Button
        kind="primary"
        disabled={busy}
        label={`Approve withdrawal ${w.id.slice(0, 8)}`}
        onClick={() => run(() => post(`/wallet/withdrawals/${w.id}/approve`, txHash ? { tx_hash: txHash } : {}))}
      >
        Approve
      </Button>
      <Field label={`Reason to reject ${w.id.slice(0, 8)}`} value={reason} onValue={setReason} />
      <Button
        kind="danger"
        disabled={busy}
        label={`Reject withdrawal ${w.id.slice(0, 8)}`}
        onClick={() => run(() => post(`/wallet/withdrawals/${w.id}/reject`, reason ? { reason } : {}))}
      >
        Reject
      </Button>
      <ErrorNote error={error} />
    </span>
  );
}

export function AdminWithdrawals() {
  const [status, setStatus] = useState('pending');
  const list = useAsync(
    () => call<Withdrawal[]>('GET', `/wallet/withdrawals?per_page=100${status ? `&status=${status}` : ''}`),
    [status],
  );
  return (
    <>
      <Select
        label="Status"
        value={status}
        onValue={setStatus}
        options={[
          ['pending', 'Pending'],
          ['posted', 'Paid'],
          ['voided', 'Rejected'],
          ['', 'All'],
        ]}
      />
      <ErrorNote error={list.error} />
      <Table
        caption="Withdrawals"
        cols={['Requested', 'Affiliate', 'Amount', 'Wallet', 'Status', 'Decide']}
        rows={(list.data?.data ?? []).map((w) => [
          when(w.created_at),
          `#${w.affiliate_id}`,
          money(w.amount, w.currency),
          `#${w.wallet_id}`,
          w.status,
          w.status === 'pending' ? <Decide key="d" w={w} done={list.reload} /> : when(w.resolved_at),
        ])}
        empty="No withdrawals."
      />
    </>
  );
}

interface Endpoint {
  id: number;
  url: string;
  status: string;
  disabled_reason: string | null;
  user_id?: number;
  affiliate_id?: number;
}

function Endpoints({ kind }: { kind: 'webhooks' | 'postbacks' }) {
  const list = useAsync(() => call<Endpoint[]>('GET', `/${kind}?per_page=100`));
  const [open, setOpen] = useState<number>();
  const rows = list.data?.data ?? [];
  return (
    <>
      <ErrorNote error={list.error} />
      <Table
        caption={kind === 'webhooks' ? 'Every webhook endpoint' : 'Every postback'}
        cols={['Owner', 'URL', 'Status', '']}
        rows={rows.map((e) => [
          `#${e.user_id ?? e.affiliate_id ?? ''}`,
          <code key="u">{e.url}</code>,
          `${e.status}${e.disabled_reason ? ` — ${e.disabled_reason}` : ''}`,
          <Button key="l" label={`Log of ${e.url}`} onClick={() => setOpen(open === e.id ? undefined : e.id)}>
            {open === e.id ? 'Hide log' : 'Log'}
          </Button>,
        ])}
        empty="None."
      />
      {open !== undefined && (
        <DeliveryLog
          path={kind === 'webhooks' ? `/webhooks/${open}/deliveries` : `/postbacks/${open}/logs`}
          title={`Deliveries of ${kind === 'webhooks' ? 'webhook' : 'postback'} #${open}`}
          replay={kind === 'webhooks'}
        />
      )}
    </>
  );
}

export function AdminAlerts() {
  const live = useLive();
  const alerts = live.events.filter((e) => ALERT_TYPES.has(e.type));
  const [note, setNote] = useState('');
  const [run, busy, error] = useAction();
  return (
    <>
      <Section title="Alerts">
        {alerts.length === 0 ? (
          <p>No alert since you opened the page (fraud alerts, parked batches, disabled endpoints, queue and spool).</p>
        ) : (
          <ol class="feed" aria-live="polite">
            {alerts.map((e) => (
              <li key={e.id}>
                <time dateTime={e.created_at}>{when(e.created_at)}</time> <strong>{e.type}</strong> {summary(e.data)}
              </li>
            ))}
          </ol>
        )}
      </Section>
      <Section title="Delivery queue">
        <div class="actions">
          <Button
            disabled={busy}
            onClick={() =>
              run(async () => {
                await post('/webhooks/retry-failed', {});
                setNote('Failed webhook deliveries requeued.');
              })
            }
          >
            Retry failed webhook deliveries
          </Button>
        </div>
        <Notice>{note}</Notice>
        <ErrorNote error={error} />
        <h3>Webhooks</h3>
        <Endpoints kind="webhooks" />
        <h3>Postbacks</h3>
        <Endpoints kind="postbacks" />
      </Section>
    </>
  );
}
