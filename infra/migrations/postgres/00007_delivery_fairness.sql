-- Fair delivery scheduling (tracker/deliveries/queue.ts claim): the workers walk the owners with due rows in
-- round-robin order, one index probe per owner (a skip scan), then take each owner's oldest due rows.
create index deliveries_owner_due_idx on deliveries (owner_id, next_attempt_at) where status = 'pending';
-- Rows in flight counted per owner for the cross-process per-owner concurrency limit.
create index deliveries_leased_owner_idx on deliveries (owner_id) where locked_until is not null;
