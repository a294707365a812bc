-- Click caps and the campaign's time zone (issue #16 item 3). A daily cap counts the clicks of the calendar day in
-- the campaign's time zone; a total cap counts every valid click. Null = no cap.
alter table campaigns
  add column time_zone text not null default 'UTC'
    -- An unknown IANA name makes AT TIME ZONE raise, so the insert/update fails.
    check (('2000-01-01 00:00'::timestamp at time zone time_zone) is not null),
  add column click_cap_daily integer check (click_cap_daily > 0),
  add column click_cap_total integer check (click_cap_total > 0);
