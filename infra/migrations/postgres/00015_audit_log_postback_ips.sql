-- Issue #15 part 3: an advertiser's postback IP allowlist, and the audit log of state-changing API calls.

-- The IPs/CIDRs (IPv4, IPv6) an advertiser's postbacks may come from, as validated text ('203.0.113.7',
-- '198.51.100.0/24', '2001:db8::/32'); no row or an empty list = any address. The tracker reads it with the
-- advertiser's postback token (tracker/ingest/conversion.ts) and matches it in-process.
create table postback_ip_allowlists (
  advertiser_id bigint primary key references users (id),
  entries text[] not null default '{}' check (cardinality(entries) <= 100),
  updated_at timestamptz not null default now()
);

-- audit_log (00010) was written by `analytics.query` only; it now also holds one row per state-changing API call
-- (admin-api/audit.ts): `action` is the method and route pattern ('PATCH /api/v1/campaigns/:id'). An anonymous
-- call (a failed login) has no user. No column holds a body, a token, a password or a TOTP code.
alter table audit_log alter column user_id drop not null;
alter table audit_log alter column detail set default '{}';
alter table audit_log
  add column object_type text,
  add column object_id text,
  add column ip inet,
  add column status smallint,
  add column request_id text;
create index audit_log_user_id_idx on audit_log (user_id, id);
create index audit_log_action_idx on audit_log (action, id);
create index audit_log_object_idx on audit_log (object_type, object_id, id);
create index audit_log_created_idx on audit_log (created_at);

-- Append-only: the application's role owns the table (so REVOKE would not bind it); these triggers refuse every
-- change to a written row, for every role but a superuser who drops them on purpose.
create function audit_log_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'audit_log is append-only (% refused)', tg_op using errcode = 'insufficient_privilege';
end;
$$;
create trigger audit_log_no_update before update or delete on audit_log
  for each row execute function audit_log_append_only();
create trigger audit_log_no_truncate before truncate on audit_log
  for each statement execute function audit_log_append_only();
