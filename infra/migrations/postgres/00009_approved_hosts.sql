-- Hosts an admin approved as redirect destinations besides each campaign's own approved website (issue #12 item 5):
-- a campaign's destination_url / fallback_url host must be its website's host (or a subdomain of it) or one of these
-- (or a subdomain of one). Host names are stored lower case, ASCII (punycode), without a port.
create table approved_hosts (
  id bigint generated always as identity primary key,
  host text not null unique check (host ~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$'),
  reason text not null check (length(reason) between 1 and 500),
  -- The approving admin; null for rows seeded by the platform itself (the test fixtures).
  created_by bigint references users (id),
  created_at timestamptz not null default now()
);

-- Set when the owner moved the destination (or fallback) host of a campaign that had gone live: the campaign is
-- paused and only an admin may activate it again, which clears this. Null = nothing to review.
alter table campaigns add column destination_review_at timestamptz;
