-- Core entities shared by the tracker, the pipeline and the admin API.
-- Ids are int8 identities; money is int8 in minor units of the row's ISO 4217 currency.

create table users (
  id bigint generated always as identity primary key,
  role text not null check (role in ('admin', 'advertiser', 'affiliate')),
  name text not null check (length(name) between 1 and 200),
  email text not null check (length(email) between 3 and 254),
  password_hash text not null,
  status text not null default 'active' check (status in ('active', 'suspended')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index users_email_lower_key on users (lower(email));

create table websites (
  id bigint generated always as identity primary key,
  advertiser_id bigint not null references users (id),
  url text not null,
  name text not null,
  status text not null default 'pending' check (status in ('pending', 'approved', 'rejected')),
  reject_reason text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index websites_advertiser_idx on websites (advertiser_id);

create table website_status_events (
  id bigint generated always as identity primary key,
  website_id bigint not null references websites (id),
  status text not null,
  reason text,
  actor_id bigint references users (id),
  created_at timestamptz not null default now()
);
create index website_status_events_website_idx on website_status_events (website_id);

create table campaigns (
  id bigint generated always as identity primary key,
  advertiser_id bigint not null references users (id),
  website_id bigint references websites (id),
  name text not null check (length(name) between 1 and 200),
  -- Landing page; may hold macros {click_id} {campaign_id} {affiliate_id} {sub1}..{sub5}.
  destination_url text not null,
  -- Where a click on a paused/unknown/over-budget link goes instead of a 404.
  fallback_url text,
  payout_model text not null check (payout_model in ('CPC', 'CPA', 'CPL', 'RevShare')),
  currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
  -- Per conversion (CPA/CPL) or per click (CPC), minor units. RevShare uses the *_percent_bp columns.
  payout_amount bigint not null default 0 check (payout_amount >= 0),
  revenue_amount bigint not null default 0 check (revenue_amount >= 0),
  -- RevShare / CPS: basis points (1/100 of a percent) of the sale amount.
  payout_percent_bp integer check (payout_percent_bp between 0 and 10000),
  revenue_percent_bp integer check (revenue_percent_bp between 0 and 10000),
  -- Per-goal overrides: [{"goal": "purchase", "payout_amount": 500, "revenue_amount": 700}], same fields as above.
  goals jsonb not null default '[]',
  budget bigint check (budget >= 0),
  daily_cap bigint check (daily_cap >= 0),
  attribution_window_days integer not null default 30 check (attribution_window_days between 1 and 365),
  hold_days integer not null default 0 check (hold_days between 0 and 365),
  allowed_countries text[] not null default '{}',
  allowed_devices text[] not null default '{}',
  visibility text not null default 'public' check (visibility in ('public', 'private')),
  status text not null default 'draft' check (status in ('draft', 'active', 'paused', 'archived')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index campaigns_advertiser_idx on campaigns (advertiser_id);

create table links (
  id bigint generated always as identity primary key,
  code text not null unique check (code ~ '^[A-Za-z0-9_-]{3,64}$'),
  campaign_id bigint not null references campaigns (id),
  affiliate_id bigint not null references users (id),
  -- Default sub-ids, used when the click does not carry its own.
  sub1 text, sub2 text, sub3 text, sub4 text, sub5 text,
  status text not null default 'active' check (status in ('active', 'disabled')),
  created_at timestamptz not null default now()
);
create index links_affiliate_idx on links (affiliate_id);
create index links_campaign_idx on links (campaign_id);

-- Advertisers' tokens for the server-to-server conversion endpoint. Tokens are 256-bit random
-- strings, so a SHA-256 hash (hex) is a safe way to store them (argon2 is for low-entropy passwords).
create table postback_tokens (
  id bigint generated always as identity primary key,
  advertiser_id bigint not null references users (id),
  token_hash text not null unique,
  -- First characters of the token, shown in lists so people can tell tokens apart.
  prefix text not null,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
create index postback_tokens_advertiser_idx on postback_tokens (advertiser_id);

-- The source of truth for conversions: one row per (advertiser, event_id), the idempotency key.
create table conversions (
  id uuid primary key,
  advertiser_id bigint not null references users (id),
  event_id text not null,
  click_id uuid,
  campaign_id bigint references campaigns (id),
  affiliate_id bigint references users (id),
  link_code text,
  goal text not null default '',
  status text not null check (status in ('pending', 'approved', 'rejected', 'reversed')),
  reject_reason text,
  amount bigint,
  currency char(3),
  payout bigint not null default 0,
  revenue bigint not null default 0,
  event_time timestamptz not null,
  click_time timestamptz,
  fraud_score real not null default 0,
  fraud_reasons text[] not null default '{}',
  sub1 text, sub2 text, sub3 text, sub4 text, sub5 text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (advertiser_id, event_id)
);
create index conversions_campaign_idx on conversions (campaign_id, created_at);
create index conversions_affiliate_idx on conversions (affiliate_id, created_at);
create index conversions_click_idx on conversions (click_id);
