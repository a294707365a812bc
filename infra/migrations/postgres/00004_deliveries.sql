-- Outbound deliveries: affiliates' postback URL templates, users' webhook endpoints, and the durable
-- delivery queue (one row per event and endpoint) with a log of every attempt.

create table postback_endpoints (
  id bigint generated always as identity primary key,
  affiliate_id bigint not null references users (id),
  -- null = every campaign of the affiliate.
  campaign_id bigint references campaigns (id),
  events text[] not null check (
    cardinality(events) > 0
    and events <@ array['conversion.created', 'conversion.approved', 'conversion.rejected']::text[]
  ),
  method text not null default 'GET' check (method in ('GET', 'POST')),
  -- http(s) URL with macros {click_id} {event_id} {campaign_id} {goal} {payout} {currency} {status} {sub1}..{sub5}.
  url_template text not null check (length(url_template) between 10 and 2048),
  -- Fire for fraud-flagged conversions too (default: never).
  include_fraud boolean not null default false,
  status text not null default 'active' check (status in ('active', 'disabled', 'deleted')),
  disabled_reason text,
  -- Start of the current run of failed attempts (null after a success); a long run disables the endpoint.
  failing_since timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index postback_endpoints_affiliate_idx on postback_endpoints (affiliate_id) where status <> 'deleted';

create table webhook_endpoints (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id),
  url text not null check (length(url) between 10 and 2048),
  events text[] not null check (cardinality(events) > 0),
  description text,
  -- Signing secrets (`whsec_…`) must be usable for signing, so they are encrypted (AES-256-GCM), not hashed.
  secret_enc text not null,
  -- The secret before the last rotation; it keeps signing until previous_secret_expires_at.
  previous_secret_enc text,
  previous_secret_expires_at timestamptz,
  status text not null default 'active' check (status in ('active', 'disabled', 'deleted')),
  disabled_reason text,
  failing_since timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index webhook_endpoints_user_idx on webhook_endpoints (user_id) where status <> 'deleted';

-- The durable queue. A row is due when status = 'pending' and next_attempt_at has passed; a worker
-- leases it (locked_until) so a crashed worker's rows are picked up again once the lease runs out.
create table deliveries (
  id bigint generated always as identity primary key,
  kind text not null check (kind in ('postback', 'webhook')),
  postback_id bigint references postback_endpoints (id),
  webhook_id bigint references webhook_endpoints (id),
  owner_id bigint not null references users (id),
  -- Webhooks: the event id, sent as `webhook-id` on every attempt. Postbacks: '<conversion id>:<event type>'.
  event_id text not null,
  event_type text not null,
  method text not null check (method in ('GET', 'POST')),
  -- Full target URL (postback macros filled). It may carry the receiver's own tokens: never logged as is.
  url text not null,
  -- 'host:port', the unit of the per-destination concurrency limit.
  destination text not null,
  body text,
  status text not null default 'pending' check (status in ('pending', 'succeeded', 'failed')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null,
  -- Start of the retry window: creation, or the last manual replay.
  window_started_at timestamptz not null,
  locked_until timestamptz,
  last_status_code integer,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz,
  check ((kind = 'postback') = (postback_id is not null)),
  check ((kind = 'webhook') = (webhook_id is not null))
);
-- Idempotency: one delivery per (endpoint, event), however often the event is enqueued. The type is part of
-- the key so that two event types sharing an id (e.g. a conversion id) are both delivered.
create unique index deliveries_postback_event_key on deliveries (postback_id, event_type, event_id)
  where postback_id is not null;
create unique index deliveries_webhook_event_key on deliveries (webhook_id, event_type, event_id)
  where webhook_id is not null;
create index deliveries_due_idx on deliveries (next_attempt_at) where status = 'pending';
-- Rows in flight (leased), counted per destination for the cross-process concurrency limit.
create index deliveries_leased_idx on deliveries (destination) where locked_until is not null;
create index deliveries_owner_status_idx on deliveries (owner_id, status);

create table delivery_attempts (
  id bigint generated always as identity primary key,
  delivery_id bigint not null references deliveries (id),
  attempt integer not null,
  started_at timestamptz not null,
  request_method text not null,
  -- Redacted: no userinfo, secret-looking query values replaced.
  request_url text not null,
  request_body_sha256 text,
  status_code integer,
  -- First 1 KiB of the response body.
  response_body text,
  latency_ms integer not null,
  error text,
  success boolean not null
);
create index delivery_attempts_delivery_idx on delivery_attempts (delivery_id, id);
