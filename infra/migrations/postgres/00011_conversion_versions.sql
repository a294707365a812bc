-- Versioned conversions (issue 13, item 2): every change of a conversion's status or amounts after it was
-- recorded becomes a numbered version, and each version is queued here, in the same transaction as the change
-- (the ledger's, whichever path made it: API, reconciliation, hold release, the pipeline's own budget refusal),
-- for the pipeline to ship to ClickHouse. A trigger does it, so no caller can forget it.
--
-- Version 0 is the row as the pipeline inserted it; the pipeline's own ClickHouse row is always that state
-- (on a replay taken from the version-1 snapshot below), so the two writers never overlap.
alter table conversions
  add column version integer not null default 0,
  -- The click's country and device, as in the ClickHouse row, so a later version's rows carry the same
  -- dimensions as the one they cancel (null: recorded before this migration).
  add column country text,
  add column device text;

-- One row per version >= 1: the row before (`old`, version - 1) and after (`new`) the change, whole
-- (to_jsonb). Shipping: a batch of unshipped rows is claimed (`batch` = its smallest id, fixed once set)
-- and committed before its ClickHouse insert, whose deduplication token is `conversion_versions:<batch>:<first conversion id>:<version>`,
-- so a retried or repeated insert of a batch adds nothing; then the batch is marked shipped.
create table conversion_versions (
  id bigint generated always as identity primary key,
  conversion_id uuid not null,
  version integer not null,
  old jsonb not null,
  new jsonb not null,
  created_at timestamptz not null default now(),
  batch bigint,
  claimed_at timestamptz,
  shipped_at timestamptz,
  unique (conversion_id, version)
);
create index conversion_versions_unclaimed_idx on conversion_versions (id) where batch is null;
create index conversion_versions_unshipped_idx on conversion_versions (batch) where shipped_at is null and batch is not null;

create function conversions_versioned() returns trigger language plpgsql as $$
begin
  if (new.status, new.reject_reason, new.payout, new.revenue, new.amount)
     is distinct from (old.status, old.reject_reason, old.payout, old.revenue, old.amount) then
    new.version := old.version + 1;
    insert into conversion_versions (conversion_id, version, old, new)
    values (new.id, new.version, to_jsonb(old), to_jsonb(new));
  else
    -- Only the trigger moves the version.
    new.version := old.version;
  end if;
  return new;
end $$;
create trigger conversions_versioned before update on conversions
  for each row execute function conversions_versioned();
