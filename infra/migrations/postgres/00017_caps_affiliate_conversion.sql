-- Caps, part two (issue #16 item 3): per-affiliate click caps, conversion caps per campaign and per affiliate, and the
-- exact conversion counts behind them. Null = no cap. Days are calendar days in the campaign's time_zone (00013).
alter table campaigns
  add column conversion_cap_daily integer check (conversion_cap_daily > 0),
  add column conversion_cap_total integer check (conversion_cap_total > 0);

alter table campaign_affiliates
  add column click_cap_daily integer check (click_cap_daily > 0),
  add column click_cap_total integer check (click_cap_total > 0),
  add column conversion_cap_daily integer check (conversion_cap_daily > 0),
  add column conversion_cap_total integer check (conversion_cap_total > 0);

-- Conversions booked by the ledger, counted in the transaction that books them, under the campaign's row lock
-- (ledger/caps.ts): affiliate_id 0 = the whole campaign; period 't' = total, else the day 'YYYY-MM-DD'.
create table cap_conversion_counts (
  campaign_id bigint not null references campaigns (id),
  affiliate_id bigint not null,
  period text not null check (period = 't' or period ~ '^\d{4}-\d{2}-\d{2}$'),
  n integer not null check (n >= 0),
  primary key (campaign_id, affiliate_id, period)
);

-- The caps of one tracking link (campaign + affiliate) as the tracker's link cache carries them, null when there are
-- none. `conversions_full_total`: a total conversion cap is full; `conversions_full_day`: the campaign-local day on
-- which a daily conversion cap is full (today's, or null), so a cached link stops matching when the day changes.
create function link_caps(p_campaign bigint, p_affiliate bigint) returns jsonb language sql stable as $$
  select case
    when num_nonnulls(c.click_cap_daily, c.click_cap_total, c.conversion_cap_daily, c.conversion_cap_total,
                      ca.click_cap_daily, ca.click_cap_total, ca.conversion_cap_daily, ca.conversion_cap_total) = 0
      then null
    else jsonb_build_object(
      'time_zone', c.time_zone,
      'daily', c.click_cap_daily,
      'total', c.click_cap_total,
      'affiliate_daily', ca.click_cap_daily,
      'affiliate_total', ca.click_cap_total,
      'conversions_full_total',
        coalesce(c.conversion_cap_total <= (select n from cap_conversion_counts k
                   where k.campaign_id = c.id and k.affiliate_id = 0 and k.period = 't'), false)
        or coalesce(ca.conversion_cap_total <= (select n from cap_conversion_counts k
                   where k.campaign_id = c.id and k.affiliate_id = p_affiliate and k.period = 't'), false),
      'conversions_full_day',
        case when coalesce(c.conversion_cap_daily <= (select n from cap_conversion_counts k
                   where k.campaign_id = c.id and k.affiliate_id = 0 and k.period = d.day), false)
               or coalesce(ca.conversion_cap_daily <= (select n from cap_conversion_counts k
                   where k.campaign_id = c.id and k.affiliate_id = p_affiliate and k.period = d.day), false)
             then d.day end)
  end
  from campaigns c
  left join campaign_affiliates ca on ca.campaign_id = c.id and ca.affiliate_id = p_affiliate
  cross join lateral (select to_char(now() at time zone c.time_zone, 'YYYY-MM-DD') as day) d
  where c.id = p_campaign
$$;
