-- Landing-page rotation (issue #16 item 4): the landing page each click was sent to (Postgres
-- campaign_landing_pages.id; 0 = the campaign's destination_url, also for every row written before this migration),
-- and on conversions their click's. Reports group by it on the raw tables (as by country and device), so
-- stats_hourly is unchanged.
ALTER TABLE clicks ADD COLUMN IF NOT EXISTS landing_id UInt64 DEFAULT 0 AFTER is_invalid;

ALTER TABLE conversions ADD COLUMN IF NOT EXISTS landing_id UInt64 DEFAULT 0 AFTER device;
