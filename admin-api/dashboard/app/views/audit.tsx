/**
 * The audit log (README "Audit log"): "My activity" for every user (`GET /me/audit-log`) and, for admins, everyone's
 * (`GET /audit-log`, filtered by user, action, object and a [from, to) date range). Newest first, keyset paged:
 * "Load more" asks for the page after the last row (`next_cursor`), so rows never shift while the log grows.
 */
import { useEffect, useState } from 'preact/hooks';
import { call, qs } from '../api.ts';
import { when } from '../time.ts';
import { Button, ErrorNote, Field, Select, Table, useAction } from '../ui.tsx';

interface AuditRow {
  id: number;
  created_at: string;
  user_id: number | null;
  api_key_id: number | null;
  action: string;
  object_type: string | null;
  object_id: string | null;
  ip: string | null;
  status: number | null;
  request_id: string | null;
  detail: Record<string, unknown>;
}

const EMPTY = { user_id: '', action: '', object_type: '', object_id: '', from: '', to: '', limit: '50' };

type Filters = typeof EMPTY;

/** `to` is exclusive in the API; a person picking a day means through its end. */
function query(f: Filters): Filters {
  if (!f.to) return f;
  const next = new Date(`${f.to}T00:00:00Z`);
  next.setUTCDate(next.getUTCDate() + 1);
  return { ...f, to: next.toISOString().slice(0, 10) };
}

function Log({ path, filters, admin }: { path: string; filters: Filters; admin: boolean }) {
  const [rows, setRows] = useState<AuditRow[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [run, busy, error] = useAction();
  const load = (cursor?: string) =>
    run(async () => {
      const r = await call<AuditRow[]>('GET', `${path}${qs({ ...query(filters), cursor })}`);
      setRows((old) => (cursor ? [...old, ...r.data] : r.data));
      setNext((r.meta as unknown as { next_cursor: string | null }).next_cursor);
    });
  useEffect(() => void load(), [path, JSON.stringify(filters)]);
  const detail = (d: Record<string, unknown>) => (Object.keys(d ?? {}).length ? JSON.stringify(d) : '');
  return (
    <>
      <ErrorNote error={error} />
      <Table
        caption={admin ? 'Audit log, newest first' : 'Your activity, newest first'}
        cols={['When', ...(admin ? ['User'] : []), 'Action', 'Object', 'Status', 'IP', 'Detail']}
        rows={rows.map((r) => [
          when(r.created_at),
          ...(admin
            ? [r.user_id === null ? 'anonymous' : `#${r.user_id}${r.api_key_id ? ` (key #${r.api_key_id})` : ''}`]
            : []),
          <code key="a">{r.action}</code>,
          r.object_type ? `${r.object_type} ${r.object_id ?? ''}`.trim() : '',
          r.status ?? '',
          r.ip ?? '',
          <code key="d">{detail(r.detail)}</code>,
        ])}
        empty="No audited call matches."
      />
      <p role="status" data-testid="audit-count">
        {rows.length} {rows.length === 1 ? 'row' : 'rows'}
        {next ? ' (more older rows)' : ''}
      </p>
      {next && (
        <Button onClick={() => void load(next)} disabled={busy}>
          Load more
        </Button>
      )}
    </>
  );
}

function FilterForm({ admin, apply }: { admin: boolean; apply: (f: Filters) => void }) {
  const [f, setF] = useState(EMPTY);
  const set = (k: keyof Filters) => (v: string) => setF({ ...f, [k]: v });
  return (
    <form
      class="filters"
      aria-label="Audit log filters"
      onSubmit={(e) => {
        e.preventDefault();
        apply({ ...f, action: f.action.trim(), user_id: f.user_id.trim() });
      }}
    >
      {admin && <Field label="User id" value={f.user_id} onValue={set('user_id')} inputMode="numeric" />}
      <Field
        label="Action"
        value={f.action}
        onValue={set('action')}
        hint="Method and route, e.g. PATCH /api/v1/campaigns/:id"
      />
      <Field label="Object type" value={f.object_type} onValue={set('object_type')} hint="e.g. campaigns" />
      <Field label="Object id" value={f.object_id} onValue={set('object_id')} />
      <Field label="From (UTC day)" type="date" value={f.from} onValue={set('from')} />
      <Field label="To (UTC day, inclusive)" type="date" value={f.to} onValue={set('to')} />
      <Select label="Rows per page" value={f.limit} onValue={set('limit')} options={['10', '50', '100']} />
      <button type="submit" class="primary">
        Apply filters
      </button>
    </form>
  );
}

/** Every user's own audited calls. */
export function MyActivity() {
  const [filters, setFilters] = useState(EMPTY);
  return (
    <>
      <p>Every call of yours that could change something (sign-ins included), with its answer's status.</p>
      <FilterForm admin={false} apply={setFilters} />
      <Log path="/me/audit-log" filters={filters} admin={false} />
    </>
  );
}

/** The admin's view of the whole log. */
export function AuditLog() {
  const [filters, setFilters] = useState(EMPTY);
  return (
    <>
      <FilterForm admin apply={setFilters} />
      <Log path="/audit-log" filters={filters} admin />
    </>
  );
}
