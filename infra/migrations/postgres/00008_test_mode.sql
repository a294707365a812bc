-- Test mode (sandbox): a campaign created with a `test_` API key is a test-mode campaign. Its links and
-- conversions take its mode (no column of their own: they hang off the campaign). Test-mode principals see
-- and change only test-mode campaigns, live ones only live campaigns; a test-mode campaign reserves nothing
-- and the pipeline posts no ledger money for its clicks or conversions.
alter table campaigns add column mode text not null default 'live' check (mode in ('live', 'test'));
create index campaigns_test_mode on campaigns (id) where mode = 'test';
