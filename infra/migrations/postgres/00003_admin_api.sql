-- Admin API: sessions with rotating refresh tokens, two-factor auth, API keys, campaign membership.
-- Self-contained: only references tables of 00001_core.sql.

-- One row per login (a refresh-token "family"); access tokens carry its id as the `sid` claim.
create table sessions (
  id uuid primary key,
  user_id bigint not null references users (id),
  user_agent text,
  ip text,
  created_at timestamptz not null default now(),
  last_used_at timestamptz not null default now(),
  revoked_at timestamptz,
  revoke_reason text
);
create index sessions_user_idx on sessions (user_id);

-- Every refresh token ever issued for a session, SHA-256 hex. A token presented after it was
-- rotated (used_at set) is a reuse: the whole session is revoked.
create table refresh_tokens (
  token_hash text primary key,
  session_id uuid not null references sessions (id),
  created_at timestamptz not null default now(),
  used_at timestamptz
);
create index refresh_tokens_session_idx on refresh_tokens (session_id);

-- TOTP (RFC 6238). last_time_step makes every accepted code single-use.
create table user_two_factor (
  user_id bigint primary key references users (id),
  secret text not null,
  enabled boolean not null default false,
  last_time_step bigint,
  created_at timestamptz not null default now(),
  enabled_at timestamptz
);

create table two_factor_backup_codes (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id),
  code_hash text not null,
  used_at timestamptz
);
create index two_factor_backup_codes_user_idx on two_factor_backup_codes (user_id);

-- Integration keys: `live_…` / `test_…`, shown once, SHA-256 hex at rest.
create table api_keys (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id),
  name text not null check (length(name) between 1 and 100),
  mode text not null check (mode in ('live', 'test')),
  prefix text not null,
  key_hash text not null unique,
  scopes text[] not null,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
create index api_keys_user_idx on api_keys (user_id);

-- Affiliates' membership of campaigns (private campaigns need the advertiser's approval).
create table campaign_affiliates (
  campaign_id bigint not null references campaigns (id),
  affiliate_id bigint not null references users (id),
  status text not null check (status in ('pending', 'approved', 'rejected', 'left')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (campaign_id, affiliate_id)
);
create index campaign_affiliates_affiliate_idx on campaign_affiliates (affiliate_id);

create table campaign_status_events (
  id bigint generated always as identity primary key,
  campaign_id bigint not null references campaigns (id),
  from_status text not null,
  to_status text not null,
  actor_id bigint references users (id),
  created_at timestamptz not null default now()
);
create index campaign_status_events_campaign_idx on campaign_status_events (campaign_id);
