-- Targeting (issue 16, item 2): besides allowed_countries and allowed_devices (00001), a campaign may restrict its
-- traffic to OS families and browser families (values: infra/contracts.ts §8). Empty = no restriction. The tracker
-- enforces all four at the redirect; clicks outside them go to the fallback and are recorded invalid.
alter table campaigns
  add column allowed_os text[] not null default '{}',
  add column allowed_browsers text[] not null default '{}';
