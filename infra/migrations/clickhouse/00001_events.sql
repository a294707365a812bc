-- Event tables of the pipeline and the hourly aggregates the reports read.
-- Idempotent inserts: the pipeline inserts each stream batch with a deterministic
-- insert_deduplication_token; MergeTree tables without replication only deduplicate when
-- non_replicated_deduplication_window > 0, so every table that receives inserts sets it.
-- Times are UTC; money is Int64 minor units of `currency`.

-- One row per click, valid or not (fraud flags clicks, it never drops them).
CREATE TABLE IF NOT EXISTS clicks (
  click_id UUID,
  ts DateTime64(3, 'UTC'),
  received DateTime64(3, 'UTC'),
  link_code String,
  campaign_id UInt64,
  affiliate_id UInt64,
  advertiser_id UInt64,
  -- The campaign's currency ('' for clicks on unknown links): money in reports is per currency.
  currency LowCardinality(String),
  ip String,
  method LowCardinality(String),
  sub1 String,
  sub2 String,
  sub3 String,
  sub4 String,
  sub5 String,
  user_agent String,
  referer String,
  -- ISO 3166-1 alpha-2, '' when unknown (no geo database is shipped).
  country LowCardinality(String),
  -- ua-parser-js device type ('mobile', 'tablet', 'smarttv', ...), 'desktop' when it names none.
  device LowCardinality(String),
  os LowCardinality(String),
  browser LowCardinality(String),
  -- Why the ingest recorded the click as invalid ('' when valid).
  invalid_reason LowCardinality(String),
  fraud_score Float32,
  fraud_reasons Array(LowCardinality(String)),
  -- 1 when invalid_reason != '' or the click is fraud-flagged (fraud_score >= the pipeline's threshold).
  is_invalid UInt8
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (campaign_id, affiliate_id, ts, click_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- One row per processed conversion, accepted or rejected (status 'rejected' + reject_reason);
-- reports count only accepted ones (status 'pending' or 'approved').
CREATE TABLE IF NOT EXISTS conversions (
  conversion_id UUID,
  event_id String,
  click_id String,
  advertiser_id UInt64,
  campaign_id UInt64,
  affiliate_id UInt64,
  link_code String,
  goal String,
  status LowCardinality(String),
  reject_reason LowCardinality(String),
  -- Sale amount as posted, minor units; -1 when none.
  amount Int64,
  currency LowCardinality(String),
  payout Int64,
  revenue Int64,
  event_time DateTime64(3, 'UTC'),
  click_time DateTime64(3, 'UTC'),
  sub1 String,
  sub2 String,
  sub3 String,
  sub4 String,
  sub5 String,
  country LowCardinality(String),
  device LowCardinality(String),
  fraud_score Float32
) ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (advertiser_id, event_time, conversion_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Hourly aggregates by campaign and affiliate (UTC hours; a report day in any whole-hour-offset
-- time zone is a union of these hours). Fed by the two materialized views below.
CREATE TABLE IF NOT EXISTS stats_hourly (
  hour DateTime('UTC'),
  campaign_id UInt64,
  affiliate_id UInt64,
  advertiser_id UInt64,
  currency LowCardinality(String),
  clicks SimpleAggregateFunction(sum, UInt64),
  invalid_clicks SimpleAggregateFunction(sum, UInt64),
  -- Distinct (ip, link_code) pairs of the hour; merged per report day for unique clicks.
  unique_state AggregateFunction(uniqExact, String, String),
  conversions SimpleAggregateFunction(sum, UInt64),
  revenue SimpleAggregateFunction(sum, Int64),
  payout SimpleAggregateFunction(sum, Int64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, campaign_id, affiliate_id, advertiser_id, currency)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS stats_hourly_clicks_mv TO stats_hourly AS
SELECT
  toStartOfHour(ts) AS hour,
  campaign_id,
  affiliate_id,
  advertiser_id,
  currency,
  toUInt64(count()) AS clicks,
  toUInt64(countIf(is_invalid = 1)) AS invalid_clicks,
  uniqExactState(ip, link_code) AS unique_state,
  toUInt64(0) AS conversions,
  toInt64(0) AS revenue,
  toInt64(0) AS payout
FROM clicks
GROUP BY hour, campaign_id, affiliate_id, advertiser_id, currency;

CREATE MATERIALIZED VIEW IF NOT EXISTS stats_hourly_conversions_mv TO stats_hourly AS
SELECT
  toStartOfHour(event_time) AS hour,
  campaign_id,
  affiliate_id,
  advertiser_id,
  currency,
  toUInt64(0) AS clicks,
  toUInt64(0) AS invalid_clicks,
  uniqExactStateIf('', '', 0) AS unique_state,
  toUInt64(count()) AS conversions,
  toInt64(sum(revenue)) AS revenue,
  toInt64(sum(payout)) AS payout
FROM conversions
WHERE status != 'rejected'
GROUP BY hour, campaign_id, affiliate_id, advertiser_id, currency;
