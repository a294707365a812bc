-- Tiers, rewards and balances (issue #15 part 2).

-- Recruiting: every user carries a referral code (only affiliates' are used); an affiliate registered with another
-- affiliate's code has that affiliate as its parent. A new user has no recruits, so setting a parent at registration
-- cannot close a cycle; an admin's later change is checked for cycles by the API (admin-api/domain/rewards).
alter table users
  add column referral_code text not null unique
    default substr(replace(gen_random_uuid()::text, '-', ''), 1, 12)
    check (referral_code ~ '^[A-Za-z0-9_-]{4,32}$'),
  add column parent_affiliate_id bigint references users (id) check (parent_affiliate_id <> id);
create index users_parent_affiliate_idx on users (parent_affiliate_id) where parent_affiliate_id is not null;

-- Tier shares, basis points of the tier-1 payout: the campaign's own, null = the network's (TIER2_SHARE_BP,
-- TIER3_SHARE_BP). 0 = no tier payout.
alter table campaigns
  add column tier2_share_bp integer check (tier2_share_bp between 0 and 10000),
  add column tier3_share_bp integer check (tier3_share_bp between 0 and 10000);

-- One row per (conversion, affiliate, tier level). Cash rewards point at the conversion's posting (the legs are in
-- it); non-cash rewards (`unit` e.g. free_months, credits) never touch the ledger. `status` follows the conversion.
create table rewards (
  id bigint generated always as identity primary key,
  conversion_id uuid not null references conversions (id),
  affiliate_id bigint not null references users (id),
  advertiser_id bigint not null references users (id),
  campaign_id bigint not null references campaigns (id),
  tier_level smallint not null check (tier_level between 1 and 3),
  kind text not null check (kind in ('cash', 'non_cash')),
  amount bigint check (amount >= 0),
  currency char(3),
  posting_id uuid references ledger_postings (id),
  unit text check (unit ~ '^[a-z][a-z0-9_]{0,31}$' and unit <> 'cash'),
  quantity integer check (quantity > 0),
  status text not null check (status in ('pending', 'approved', 'rejected', 'reversed')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (conversion_id, affiliate_id, tier_level),
  check ((kind = 'cash' and amount is not null and currency is not null and posting_id is not null and unit is null
          and quantity is null)
      or (kind = 'non_cash' and unit is not null and quantity is not null and amount is null and posting_id is null))
);
create index rewards_affiliate_idx on rewards (affiliate_id, id);
create index rewards_advertiser_idx on rewards (advertiser_id, id);

-- What the advertiser owes in kind: created with a non-cash reward, marked fulfilled by the advertiser; cancelled
-- when the conversion is rejected or reversed before that.
create table reward_fulfilments (
  id bigint generated always as identity primary key,
  reward_id bigint not null unique references rewards (id),
  advertiser_id bigint not null references users (id),
  status text not null default 'fulfilment_pending'
    check (status in ('fulfilment_pending', 'fulfilled', 'cancelled')),
  fulfilled_at timestamptz,
  fulfilled_by bigint references users (id),
  note text check (length(note) <= 500),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index reward_fulfilments_advertiser_idx on reward_fulfilments (advertiser_id, status, id);
