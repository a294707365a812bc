-- Landing-page rotation and split tests (issue #16 item 4). A campaign may have several landing pages, each with an
-- integer weight; the tracker sends each click that reaches the campaign to one of its active pages with probability
-- weight / sum of the weights (weight 0: never served, kept for the record), and records it as the click's
-- `landing_id`. A campaign without active pages of weight > 0 keeps redirecting to `destination_url` (landing_id 0).
create table campaign_landing_pages (
  id bigint generated always as identity primary key,
  campaign_id bigint not null references campaigns (id),
  name text not null check (length(name) between 1 and 200),
  -- Validated and host-checked like campaigns.destination_url (admin-api/domain/campaigns/destination.ts).
  url text not null,
  weight integer not null default 1 check (weight between 0 and 10000),
  status text not null default 'active' check (status in ('active', 'archived')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- The target of links' (campaign_id, landing_page_id) key: a link pins only a page of its own campaign.
  unique (campaign_id, id)
);

-- A link may pin one landing page of its campaign (null: the campaign's rotation). MATCH SIMPLE: a null pin is
-- not checked. A pinned page that is archived later is skipped by the tracker (the link rotates).
alter table links
  add column landing_page_id bigint,
  add constraint links_landing_page_fk foreign key (campaign_id, landing_page_id)
    references campaign_landing_pages (campaign_id, id);

-- The click's landing page, as in the ClickHouse row, so later versions' rows carry it like country and device
-- (null: recorded before this migration).
alter table conversions add column landing_id bigint;
