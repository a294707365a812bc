-- Double-entry ledger (ledger/). Money is int8 minor units of the entry's ISO 4217 currency.
-- Model: TigerBeetle-style accounts and two-phase transfers, Formance-style immutable balanced postings.
-- Sign convention: an entry's amount is signed; a positive amount credits the account (the system holds more
-- for its owner), a negative one debits it. Every posting's entries sum to zero per currency.

create table ledger_accounts (
  id bigint generated always as identity primary key,
  -- 'owner_type:owner_id:purpose:currency:campaign_id|0', the natural identity, unique (see ledger/postings.ts).
  key text not null unique,
  owner_type text not null check (owner_type in ('advertiser', 'affiliate', 'platform', 'external')),
  -- users.id for advertisers/affiliates; for platform accounts the advertiser whose spend the sub-account
  -- records (spreads row locks); 0 for external accounts.
  owner_id bigint not null default 0,
  purpose text not null check (purpose in (
    'available', 'reserved', 'spent',          -- advertiser
    'pending', 'approved', 'paid',             -- affiliate
    'revenue', 'spend_offset',                 -- platform
    'deposits', 'withdrawals'                  -- external (the world)
  )),
  currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
  -- Only for an advertiser's `reserved` account: the campaign whose budget it holds.
  campaign_id bigint references campaigns (id),
  -- TigerBeetle's flag: the posted balance minus pending debits may never go below zero.
  debits_must_not_exceed_credits boolean not null default false,
  -- Cached balance = sum of the posted entries (checked against them by ledger tests and checkInvariants).
  balance bigint not null default 0,
  -- Cached sums of the pending (two-phase, unresolved) entries: funds held / expected.
  pending_debits bigint not null default 0 check (pending_debits >= 0),
  pending_credits bigint not null default 0 check (pending_credits >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- Defence in depth behind the row-locked checks of ledger/postings.ts.
  constraint ledger_accounts_no_overdraft check (not debits_must_not_exceed_credits or balance - pending_debits >= 0),
  constraint ledger_accounts_campaign check ((purpose = 'reserved') = (campaign_id is not null))
);
create index ledger_accounts_owner_idx on ledger_accounts (owner_type, owner_id);

-- One posting = one atomic, balanced movement (a "transfer"). Immutable except the status of a pending
-- posting, which changes exactly once (pending → posted | voided).
create table ledger_postings (
  id uuid primary key,
  -- Client-chosen; the same key twice returns the first result and moves nothing.
  idempotency_key text not null unique check (length(idempotency_key) between 1 and 300),
  -- SHA-256 of the canonical request body: the same key with another body is IDEMPOTENCY_CONFLICT.
  request_hash text not null,
  type text not null,
  status text not null check (status in ('posted', 'pending', 'voided')),
  -- For the post/void of a pending posting: the pending posting it resolves. Unique: resolved at most once.
  pending_id uuid unique references ledger_postings (id),
  expires_at timestamptz,
  resolved_at timestamptz,
  -- Who the posting concerns (for listings and events) and what it is about.
  advertiser_id bigint,
  affiliate_id bigint,
  campaign_id bigint,
  conversion_id uuid,
  meta jsonb not null default '{}',
  created_at timestamptz not null default now()
);
create index ledger_postings_expiry_idx on ledger_postings (expires_at) where status = 'pending';
create index ledger_postings_advertiser_idx on ledger_postings (advertiser_id, created_at) where advertiser_id is not null;
create index ledger_postings_affiliate_idx on ledger_postings (affiliate_id, created_at) where affiliate_id is not null;
create index ledger_postings_conversion_idx on ledger_postings (conversion_id) where conversion_id is not null;

create table ledger_entries (
  id bigint generated always as identity primary key,
  posting_id uuid not null references ledger_postings (id),
  account_id bigint not null references ledger_accounts (id),
  amount bigint not null check (amount <> 0),
  currency char(3) not null,
  -- 'pending' entries belong to a two-phase posting: they hold funds (pending_debits/credits) but never move
  -- the posted balance; its post creates new 'posted' entries.
  phase text not null check (phase in ('posted', 'pending'))
);
create index ledger_entries_posting_idx on ledger_entries (posting_id);
create index ledger_entries_account_idx on ledger_entries (account_id);

-- Entries are immutable; a posting may only have its status resolved once.
create function ledger_forbid_change() returns trigger language plpgsql as $$
begin
  raise exception 'ledger entries are immutable (% on %)', tg_op, tg_table_name using errcode = 'P0001';
end $$;
create trigger ledger_entries_immutable before update or delete on ledger_entries
  for each row execute function ledger_forbid_change();

create function ledger_posting_guard() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE' then
    raise exception 'ledger postings are immutable' using errcode = 'P0001';
  end if;
  if old.status <> 'pending' or new.status = 'pending'
     or (to_jsonb(new) - 'status' - 'resolved_at') <> (to_jsonb(old) - 'status' - 'resolved_at') then
    raise exception 'ledger posting % may only be resolved once, from pending', old.id using errcode = 'P0001';
  end if;
  return new;
end $$;
create trigger ledger_postings_guard before update or delete on ledger_postings
  for each row execute function ledger_posting_guard();

-- Balanced postings, checked at commit (deferred) so the entries of one posting can be inserted one by one.
create function ledger_check_balanced() returns trigger language plpgsql as $$
declare bad text;
begin
  select currency into bad from ledger_entries where posting_id = new.posting_id
    group by currency, phase having sum(amount) <> 0 limit 1;
  if bad is not null then
    raise exception 'ledger posting % does not balance in %', new.posting_id, bad using errcode = 'P0001';
  end if;
  return null;
end $$;
create constraint trigger ledger_entries_balanced after insert on ledger_entries
  deferrable initially deferred for each row execute function ledger_check_balanced();

-- Spend per campaign and UTC day (budget and daily-cap enforcement), maintained in the posting transaction
-- under the campaign's row lock.
create table ledger_campaign_spend (
  campaign_id bigint not null references campaigns (id),
  day date not null,
  currency char(3) not null,
  spent bigint not null default 0,
  primary key (campaign_id, day)
);

-- Affiliates' payout addresses; usable for withdrawals 24 hours after they were added.
create table payout_wallets (
  id bigint generated always as identity primary key,
  affiliate_id bigint not null references users (id),
  network text not null check (network in ('BTC', 'ETH', 'ERC20', 'TRX', 'TRC20')),
  address text not null,
  label text,
  created_at timestamptz not null default now(),
  usable_at timestamptz not null,
  deleted_at timestamptz
);
create index payout_wallets_affiliate_idx on payout_wallets (affiliate_id);
create unique index payout_wallets_unique on payout_wallets (affiliate_id, network, address) where deleted_at is null;
