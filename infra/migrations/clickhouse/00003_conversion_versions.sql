-- Versioned conversion rows (issue 13, item 2). A conversion's first row (version 0, sign 1) is the pipeline's;
-- every later change of its status or amounts (Postgres `conversion_versions`) adds two rows: a cancel row
-- (sign -1, the previous state and version) and the new state (sign 1, the new version). Counts and sums are
-- sign-weighted (`sum(sign)`, `sum(payout * sign)`), so they are right whether or not parts have merged, on
-- chDB and on a server alike; the latest state of one conversion is the row with the largest version and
-- sign 1. The rows follow VersionedCollapsingMergeTree's convention, so the table could move to that engine
-- (a rebuild) without changing what is written.
ALTER TABLE conversions
  ADD COLUMN IF NOT EXISTS version UInt32 DEFAULT 0,
  ADD COLUMN IF NOT EXISTS sign Int8 DEFAULT 1;

-- A cancel row may land before the row it cancels (they come from two writers): per-hour sums can be
-- negative for a moment, so the count is signed.
ALTER TABLE stats_hourly MODIFY COLUMN conversions SimpleAggregateFunction(sum, Int64);

-- Sign-weighted, and only accepted states count: 'reversed' (a chargeback) is not accepted either.
DROP VIEW IF EXISTS stats_hourly_conversions_mv;

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
  toInt64(sum(sign)) AS conversions,
  toInt64(sum(revenue * sign)) AS revenue,
  toInt64(sum(payout * sign)) AS payout
FROM conversions
WHERE status IN ('pending', 'approved')
GROUP BY hour, campaign_id, affiliate_id, advertiser_id, currency;
