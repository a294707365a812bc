/**
 * The wallet. Advertisers: balances per currency (total, available, reserved, spent, pending deposits), the ledger
 * postings, and a deposit. Affiliates: balances (pending, approved, withdrawal pending, paid), payout wallets,
 * withdrawals and a new withdrawal request.
 */
import { useState } from 'preact/hooks';
import { call, get, post, type User } from '../api.ts';
import { when } from '../time.ts';
import {
  Button,
  ErrorNote,
  Field,
  money,
  Notice,
  Section,
  Select,
  Table,
  toMinor,
  useAction,
  useAsync,
} from '../ui.tsx';

type Balances = Array<Record<string, number> & { currency: string }>;

interface Tx {
  id: string;
  type: string;
  status: string;
  created_at: string;
  campaign_id: number | null;
  entries: Array<{ account: string; currency: string; amount: number; phase: string }>;
}

/** One balance table: a row per currency, a column per `fields` entry. */
export function BalanceTable({ balances, fields }: { balances: Balances; fields: Array<[string, string]> }) {
  return (
    <Table
      caption="Balances"
      cols={['Currency', ...fields.map(([, t]) => t)]}
      rows={balances.map((b) => [b.currency, ...fields.map(([k]) => money(b[k] ?? 0, b.currency))])}
      empty="No balance yet."
    />
  );
}

function Transactions() {
  const tx = useAsync(() => call<Tx[]>('GET', '/wallet/transactions?per_page=50'));
  return (
    <Section title="Transactions">
      <ErrorNote error={tx.error} />
      <Table
        caption="Ledger postings, newest first"
        cols={['When', 'Type', 'Status', 'Campaign', 'Entries']}
        rows={(tx.data?.data ?? []).map((t) => [
          when(t.created_at),
          t.type,
          t.status,
          t.campaign_id ? `#${t.campaign_id}` : '',
          t.entries
            .map((e) => `${e.account} ${money(e.amount, e.currency)}${e.phase === 'pending' ? ' (pending)' : ''}`)
            .join('; '),
        ])}
      />
    </Section>
  );
}

function Deposit({ done }: { done: () => void }) {
  const [amount, setAmount] = useState('');
  const [currency, setCurrency] = useState('USD');
  const [reference, setReference] = useState('');
  const [result, setResult] = useState('');
  const [run, busy, error] = useAction(done);
  return (
    <form
      aria-label="Deposit"
      onSubmit={(e) => {
        e.preventDefault();
        void run(async () => {
          const t = await post<{ status: string }>('/wallet/fund', {
            amount: toMinor(amount, currency),
            currency,
            reference,
          });
          setResult(t.status === 'posted' ? 'Deposit credited.' : 'Deposit pending until an admin confirms it.');
        });
      }}
    >
      <Field label={`Amount (${currency})`} value={amount} onValue={setAmount} inputMode="decimal" required />
      <Field label="Currency" value={currency} onValue={(v) => setCurrency(v.toUpperCase())} maxLength={3} />
      <Field label="Reference" value={reference} onValue={setReference} required />
      <ErrorNote error={error} />
      <Notice>{result}</Notice>
      <button type="submit" class="primary" disabled={busy}>
        Deposit
      </button>
    </form>
  );
}

interface PayoutWallet {
  id: number;
  network: string;
  address: string;
  label: string | null;
  usable_at: string;
}

interface Withdrawal {
  id: string;
  status: string;
  amount: number;
  currency: string;
  wallet_id: number;
  created_at: string;
  resolved_at: string | null;
}

function Withdrawals({ reloadBalances }: { reloadBalances: () => void }) {
  const wallets = useAsync(() => get<PayoutWallet[]>('/wallet/wallets'));
  const list = useAsync(() => call<Withdrawal[]>('GET', '/wallet/withdrawals?per_page=50'));
  const [network, setNetwork] = useState('ETH');
  const [address, setAddress] = useState('');
  const [walletId, setWalletId] = useState('');
  const [amount, setAmount] = useState('');
  const [currency, setCurrency] = useState('USD');
  const [run, busy, error] = useAction(() => {
    wallets.reload();
    list.reload();
    reloadBalances();
  });
  const ws = wallets.data ?? [];
  return (
    <>
      <Section title="Payout wallets">
        <Table
          caption="Where withdrawals are paid"
          cols={['Network', 'Address', 'Label', 'Usable from', '']}
          rows={ws.map((w) => [
            w.network,
            <code key="a">{w.address}</code>,
            w.label ?? '',
            when(w.usable_at),
            <Button
              key="r"
              kind="danger"
              disabled={busy}
              label={`Remove wallet ${w.address}`}
              onClick={() => run(() => call('DELETE', `/wallet/wallets/${w.id}`))}
            >
              Remove
            </Button>,
          ])}
        />
        <form
          aria-label="New payout wallet"
          onSubmit={(e) => {
            e.preventDefault();
            void run(() => post('/wallet/wallets', { network, address }));
          }}
        >
          <Select
            label="Network"
            value={network}
            onValue={setNetwork}
            options={['BTC', 'ETH', 'ERC20', 'TRX', 'TRC20']}
          />
          <Field label="Address" value={address} onValue={setAddress} required />
          <button type="submit" disabled={busy}>
            Add wallet
          </button>
        </form>
      </Section>
      <Section title="Withdrawals">
        <form
          aria-label="Request a withdrawal"
          onSubmit={(e) => {
            e.preventDefault();
            void run(() =>
              post('/wallet/withdraw', {
                amount: toMinor(amount, currency),
                currency,
                wallet_id: Number(walletId || ws[0]?.id),
              }),
            );
          }}
        >
          <Select
            label="To wallet"
            value={walletId}
            onValue={setWalletId}
            options={ws.map((w): [string, string] => [String(w.id), `${w.network} ${w.address}`])}
          />
          <Field label={`Amount (${currency})`} value={amount} onValue={setAmount} inputMode="decimal" required />
          <Field label="Currency" value={currency} onValue={(v) => setCurrency(v.toUpperCase())} maxLength={3} />
          <button type="submit" class="primary" disabled={busy || ws.length === 0}>
            Request withdrawal
          </button>
        </form>
        <ErrorNote error={error ?? list.error ?? wallets.error} />
        <Table
          caption="Your withdrawals"
          cols={['Requested', 'Amount', 'Status', 'Wallet', 'Resolved']}
          rows={(list.data?.data ?? []).map((w) => [
            when(w.created_at),
            money(w.amount, w.currency),
            w.status,
            `#${w.wallet_id}`,
            when(w.resolved_at),
          ])}
        />
      </Section>
    </>
  );
}

const ADVERTISER: Array<[string, string]> = [
  ['total', 'Total'],
  ['available', 'Available'],
  ['reserved', 'Reserved'],
  ['spent', 'Spent'],
  ['pending_deposits', 'Pending deposits'],
];
const AFFILIATE: Array<[string, string]> = [
  ['pending', 'Pending'],
  ['approved', 'Approved'],
  ['withdrawal_pending', 'Withdrawal pending'],
  ['paid', 'Paid'],
];

export function Wallet({ user }: { user: User }) {
  const bal = useAsync(() => get<{ balances: Balances }>('/wallet/balance'));
  // Each money movement here re-reads the balances and (remounted by its key) the postings.
  const [moves, setMoves] = useState(0);
  const moved = () => {
    bal.reload();
    setMoves((n) => n + 1);
  };
  const adv = user.role === 'advertiser';
  return (
    <>
      <ErrorNote error={bal.error} />
      <BalanceTable balances={bal.data?.balances ?? []} fields={adv ? ADVERTISER : AFFILIATE} />
      {adv ? (
        <>
          <Section title="Deposit">
            <Deposit done={moved} />
          </Section>
          <Transactions key={moves} />
        </>
      ) : (
        <>
          <Withdrawals reloadBalances={moved} />
          <Transactions key={moves} />
        </>
      )}
    </>
  );
}
