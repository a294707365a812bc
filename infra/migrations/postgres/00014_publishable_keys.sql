-- Publishable keys (issue #15): what an advertiser's web pages carry to report conversions from the browser
-- (`POST /api/v1/track/conversion/browser`, the image pixel). Public by design (they sit in page source), so they
-- are stored as they are and listed whole; what limits them is the origin list, the pending status of every browser
-- conversion, and the tracker's rate limit. `mode` is the sandbox of API keys: a `pk_test_` key's conversions attribute
-- only to test-mode campaigns' clicks, a `pk_live_` key's only to live ones.
create table publishable_keys (
  id bigint generated always as identity primary key,
  advertiser_id bigint not null references users (id),
  mode text not null check (mode in ('live', 'test')),
  key text not null unique check (key ~ '^pk_(live|test)_[A-Za-z0-9_-]{20,64}$'),
  name text not null check (length(name) between 1 and 100),
  -- Exact origins (`https://shop.example.com`, `http://localhost:8080`), as the admin API normalised them.
  allowed_origins text[] not null check (cardinality(allowed_origins) between 1 and 20),
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz,
  check (starts_with(key, 'pk_' || mode || '_'))
);
create index publishable_keys_advertiser_idx on publishable_keys (advertiser_id);
