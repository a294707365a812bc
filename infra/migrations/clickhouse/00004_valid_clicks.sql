-- Previewers, scanners, prefetches and bots are kept out of clicks (issue 16, item 5). The pipeline now writes
-- each click's kind in `bot_reason` ('previewer', 'scanner', 'prefetch', 'bot'; '' for a visitor, see
-- tracker/fraud/traffic.ts), and such a click is `is_invalid = 1`. A click is valid when `is_invalid = 0`.
--
-- Rows written before this migration have no stored kind: their DEFAULT is computed from what the fraud rules
-- recorded then (isbot → 'bot', a prefetch header → 'prefetch', HEAD → 'scanner', no user agent → 'bot'), and
-- each of those rules had flagged the click invalid already, so `bot_reason != ''` implies `is_invalid = 1` for
-- old rows as for new ones. Old previewer clicks are counted as 'bot' (their user agents were not classified).
ALTER TABLE clicks ADD COLUMN IF NOT EXISTS bot_reason LowCardinality(String) DEFAULT multiIf(
  has(fraud_reasons, 'prefetch'), 'prefetch',
  has(fraud_reasons, 'bot_user_agent') OR user_agent = '', 'bot',
  has(fraud_reasons, 'head_request'), 'scanner',
  '') AFTER fraud_model_version;

-- stats_hourly: `clicks` and `unique_state` now count valid clicks only; `invalid_clicks` stays every click with
-- is_invalid = 1 (so all recorded clicks = clicks + invalid_clicks), and `bot_clicks` is the part of them that
-- has a bot_reason. Per-kind counts are in `clicks` (GROUP BY bot_reason).
ALTER TABLE stats_hourly ADD COLUMN IF NOT EXISTS bot_clicks SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER invalid_clicks;

-- The aggregates are rebuilt from the event tables, so every hour, old and new, has the new meaning (a
-- uniqExact state cannot be corrected by adding rows). The views go first so nothing is counted twice; an insert
-- into `clicks` or `conversions` between the DROP and the CREATE below would be missing from stats_hourly, so
-- this migration runs before the pipeline starts (the `migrate` role, as docker-compose.yml orders it).
-- Re-runnable as a whole: a run cut short is repeated from the start.
DROP VIEW IF EXISTS stats_hourly_clicks_mv;

DROP VIEW IF EXISTS stats_hourly_conversions_mv;

TRUNCATE TABLE IF EXISTS stats_hourly;

-- insert_deduplicate = 0: blocks of the rebuild must never be mistaken for a retried insert.
INSERT INTO stats_hourly
  (hour, campaign_id, affiliate_id, advertiser_id, currency, clicks, invalid_clicks, bot_clicks, unique_state,
   conversions, revenue, payout)
SETTINGS insert_deduplicate = 0
SELECT
  toStartOfHour(ts) AS hour,
  campaign_id,
  affiliate_id,
  advertiser_id,
  currency,
  toUInt64(countIf(is_invalid = 0)) AS clicks,
  toUInt64(countIf(is_invalid = 1)) AS invalid_clicks,
  toUInt64(countIf(bot_reason != '')) AS bot_clicks,
  uniqExactStateIf(ip, link_code, is_invalid = 0) AS unique_state,
  toInt64(0) AS conversions,
  toInt64(0) AS revenue,
  toInt64(0) AS payout
FROM clicks
GROUP BY hour, campaign_id, affiliate_id, advertiser_id, currency;

INSERT INTO stats_hourly
  (hour, campaign_id, affiliate_id, advertiser_id, currency, clicks, invalid_clicks, bot_clicks, unique_state,
   conversions, revenue, payout)
SETTINGS insert_deduplicate = 0
SELECT
  toStartOfHour(event_time) AS hour,
  campaign_id,
  affiliate_id,
  advertiser_id,
  currency,
  toUInt64(0) AS clicks,
  toUInt64(0) AS invalid_clicks,
  toUInt64(0) AS bot_clicks,
  uniqExactStateIf('', '', 0) AS unique_state,
  toInt64(sum(sign)) AS conversions,
  toInt64(sum(revenue * sign)) AS revenue,
  toInt64(sum(payout * sign)) AS payout
FROM conversions
WHERE status IN ('pending', 'approved')
GROUP BY hour, campaign_id, affiliate_id, advertiser_id, currency;

CREATE MATERIALIZED VIEW IF NOT EXISTS stats_hourly_clicks_mv TO stats_hourly AS
SELECT
  toStartOfHour(ts) AS hour,
  campaign_id,
  affiliate_id,
  advertiser_id,
  currency,
  toUInt64(countIf(is_invalid = 0)) AS clicks,
  toUInt64(countIf(is_invalid = 1)) AS invalid_clicks,
  toUInt64(countIf(bot_reason != '')) AS bot_clicks,
  uniqExactStateIf(ip, link_code, is_invalid = 0) AS unique_state,
  toInt64(0) AS conversions,
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
  toUInt64(0) AS bot_clicks,
  uniqExactStateIf('', '', 0) AS unique_state,
  toInt64(sum(sign)) AS conversions,
  toInt64(sum(revenue * sign)) AS revenue,
  toInt64(sum(payout * sign)) AS payout
FROM conversions
WHERE status IN ('pending', 'approved')
GROUP BY hour, campaign_id, affiliate_id, advertiser_id, currency;
