-- Daily rollup of usage_hourly: one row per key × API × subscription × UTC day, summed over
-- hours and counter sources. Derived, never written on its own: `Store::upsert_usage` recomputes
-- the rows of every day it touches from usage_hourly in the same transaction, so re-flushing the
-- same absolute values changes nothing and a day's row is always the sum of its hourly buckets.
-- Reads over whole days (the dashboard's month, a quota's billing period) use it; partial days at
-- the edges of a range still come from usage_hourly.
CREATE TABLE usage_daily (
    key_id          BIGINT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    day             BIGINT NOT NULL, -- unix seconds at 00:00 UTC
    api_id          BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    subscription_id BIGINT NOT NULL,
    admitted        BIGINT NOT NULL DEFAULT 0,
    status_2xx      BIGINT NOT NULL DEFAULT 0,
    status_3xx      BIGINT NOT NULL DEFAULT 0,
    status_4xx      BIGINT NOT NULL DEFAULT 0,
    status_5xx      BIGINT NOT NULL DEFAULT 0,
    bytes_in        BIGINT NOT NULL DEFAULT 0,
    bytes_out       BIGINT NOT NULL DEFAULT 0,
    latency_ms_sum  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day, api_id, subscription_id)
);
-- Covering for quota usage (admitted per subscription over its period).
CREATE INDEX usage_daily_sub_day_idx ON usage_daily(subscription_id, day) INCLUDE (admitted);

INSERT INTO usage_daily (key_id, day, api_id, subscription_id, admitted, status_2xx, status_3xx, status_4xx, status_5xx,
                         bytes_in, bytes_out, latency_ms_sum)
SELECT key_id, hour - hour % 86400, api_id, subscription_id, SUM(admitted), SUM(status_2xx), SUM(status_3xx),
       SUM(status_4xx), SUM(status_5xx), SUM(bytes_in), SUM(bytes_out), SUM(latency_ms_sum)
FROM usage_hourly
GROUP BY key_id, hour - hour % 86400, api_id, subscription_id;

-- The account-wide reads of the last hours (the dashboard's 48-hour chart) go key by key over a
-- time range; the primary key puts the API between the two.
CREATE INDEX usage_hourly_key_hour_idx ON usage_hourly(key_id, hour);
