-- Analysts (issue 19): a read-only role created by an admin, optionally limited to a set of advertisers
-- and/or campaigns. NOTE for the merge: this migration is numbered 00010 on main; 00010 here keeps the
-- branch's migrations gap-free.
alter table users drop constraint users_role_check;
alter table users add constraint users_role_check check (role in ('admin', 'advertiser', 'affiliate', 'analyst'));

-- An analyst with no rows here sees the whole network; with rows, only traffic of the listed advertisers
-- plus that of the listed campaigns. Each row names exactly one of the two.
create table analyst_scopes (
  analyst_id bigint not null references users (id) on delete cascade,
  advertiser_id bigint references users (id),
  campaign_id bigint references campaigns (id),
  check ((advertiser_id is null) <> (campaign_id is null))
);
create index analyst_scopes_analyst_idx on analyst_scopes (analyst_id);

-- Who did what, append-only: one row per audited action (e.g. `analytics.query` with the SQL, its
-- parameters, format and outcome in `detail`).
create table audit_log (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id),
  api_key_id bigint,
  action text not null,
  detail jsonb not null,
  created_at timestamptz not null default now()
);
create index audit_log_user_idx on audit_log (user_id, created_at);
