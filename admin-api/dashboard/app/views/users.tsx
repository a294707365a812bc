/** Admin: every account (`GET /users`) with its role, status and 2FA, filtered by role or a name/email search. */
import { useState } from 'preact/hooks';
import { call, qs } from '../api.ts';
import { when } from '../time.ts';
import { ErrorNote, Field, Select, Table, useAsync } from '../ui.tsx';

interface UserRow {
  id: number;
  role: string;
  name: string;
  email: string;
  status: string;
  two_factor_enabled: boolean;
  created_at: string;
}

export function Users() {
  const [role, setRole] = useState('');
  const [q, setQ] = useState('');
  const list = useAsync(() => call<UserRow[]>('GET', `/users${qs({ role, q, per_page: 100 })}`), [role, q]);
  return (
    <>
      <form class="filters" aria-label="Filter users" onSubmit={(e) => e.preventDefault()}>
        <Select
          label="Role"
          value={role}
          onValue={setRole}
          options={[['', 'All'], 'admin', 'advertiser', 'affiliate', 'analyst']}
        />
        <Field label="Name or email contains" value={q} onValue={setQ} />
      </form>
      <ErrorNote error={list.error} />
      <Table
        caption={`Users (${list.data?.meta?.total ?? 0})`}
        cols={['Id', 'Name', 'Email', 'Role', 'Status', '2FA', 'Created']}
        rows={(list.data?.data ?? []).map((u) => [
          u.id,
          u.name,
          u.email,
          u.role,
          u.status,
          u.two_factor_enabled ? 'on' : 'off',
          when(u.created_at),
        ])}
        empty="No user matches."
      />
    </>
  );
}
