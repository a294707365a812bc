-- Leads and recurring commissions (issue #15 part 2, README "Leads and recurring commissions").

-- A renewal pays recurring_percent_bp (0..10000) of its amount to the affiliate, for recurring_months calendar months
-- after the customer's first conversion (null = for ever). recurring_percent_bp null = the campaign pays no renewals.
alter table campaigns
  add column recurring_percent_bp integer check (recurring_percent_bp between 0 and 10000),
  add column recurring_months integer check (recurring_months >= 1);

-- The advertiser's customer reference a conversion was posted with (null: none).
alter table conversions add column customer_id text check (length(customer_id) between 1 and 255);

-- A customer of an advertiser bound to the click of the first attributed conversion posted with it (first binding
-- wins). Written by the pipeline in the same statement as that conversion (tracker/pipeline/conversions.ts), so it
-- exists exactly when the conversion does. `click` is the click record as the pipeline's click store held it: later
-- conversions of the customer are attributed from it long after the store has forgotten the click.
create table customer_bindings (
  advertiser_id bigint not null references users (id),
  customer_id text not null check (length(customer_id) between 1 and 255),
  click_id uuid not null,
  campaign_id bigint not null references campaigns (id),
  affiliate_id bigint not null references users (id),
  conversion_id uuid not null references conversions (id),
  first_event_time timestamptz not null,
  click jsonb not null,
  created_at timestamptz not null default now(),
  primary key (advertiser_id, customer_id)
);
create index customer_bindings_click_idx on customer_bindings (click_id);
