-- Where each conversion came from (Postgres conversions.source): 's2s', 'browser' or 'pixel'; rows written before
-- this migration read 's2s'.
ALTER TABLE conversions ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT 's2s' AFTER landing_id;
