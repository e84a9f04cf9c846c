-- Product owners' analytics (issue 18): requests, status classes and a latency histogram per
-- key × API × OpenAPI operation × hour. An extra dimension beside usage_hourly, never read for
-- billing: usage_hourly stays the billable truth.
--
-- Written like usage_hourly: each gateway process is a counter source and writes the absolute
-- values of its own rows (greatest wins, so a repeated or stale flush changes nothing); totals
-- are sums over sources. `operation` is "METHOD /path/{template}" from the API's OpenAPI
-- document, or "unmatched"; its cardinality is bounded by the document.
CREATE TABLE analytics_hourly (
    api_id          BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    hour            BIGINT NOT NULL, -- unix seconds at the start of the hour
    operation       TEXT NOT NULL,
    key_id          BIGINT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    source          TEXT NOT NULL,
    requests        BIGINT NOT NULL DEFAULT 0,
    status_2xx      BIGINT NOT NULL DEFAULT 0,
    status_3xx      BIGINT NOT NULL DEFAULT 0,
    status_4xx      BIGINT NOT NULL DEFAULT 0,
    status_5xx      BIGINT NOT NULL DEFAULT 0,
    latency_us_sum  BIGINT NOT NULL DEFAULT 0,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (api_id, hour, operation, key_id, source)
) WITHOUT ROWID;
CREATE INDEX analytics_hourly_key_hour_idx ON analytics_hourly(key_id, hour);
-- Reads across every API (the admin overview's last 24 hours) range over the hour alone.
CREATE INDEX analytics_hourly_hour_idx ON analytics_hourly(hour);

-- The latency histogram of each analytics_hourly row, sparse: one row per non-empty bucket of
-- the log-linear layout in store/src/histogram.rs (bucket 0..271, count of requests in it).
-- Histograms merge by adding counts, so any range and grouping sums these rows.
CREATE TABLE analytics_latency_hourly (
    api_id          BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    hour            BIGINT NOT NULL,
    operation       TEXT NOT NULL,
    key_id          BIGINT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    source          TEXT NOT NULL,
    bucket          INTEGER NOT NULL,
    count           BIGINT NOT NULL,
    PRIMARY KEY (api_id, hour, operation, key_id, source, bucket)
) WITHOUT ROWID;
CREATE INDEX analytics_latency_hourly_key_hour_idx ON analytics_latency_hourly(key_id, hour);
CREATE INDEX analytics_latency_hourly_hour_idx ON analytics_latency_hourly(hour);

-- Daily rollups, summed over hours and sources. Derived, never written on their own: the flush
-- recomputes every day it touches from the hourly rows in the same transaction (as usage_daily).
-- Reads over whole days use them; the partial days at a range's edges come from the hourly rows.
CREATE TABLE analytics_daily (
    api_id          BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    day             BIGINT NOT NULL, -- unix seconds at 00:00 UTC
    operation       TEXT NOT NULL,
    key_id          BIGINT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    requests        BIGINT NOT NULL DEFAULT 0,
    status_2xx      BIGINT NOT NULL DEFAULT 0,
    status_3xx      BIGINT NOT NULL DEFAULT 0,
    status_4xx      BIGINT NOT NULL DEFAULT 0,
    status_5xx      BIGINT NOT NULL DEFAULT 0,
    latency_us_sum  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (api_id, day, operation, key_id)
) WITHOUT ROWID;
CREATE INDEX analytics_daily_key_day_idx ON analytics_daily(key_id, day);

CREATE TABLE analytics_latency_daily (
    api_id          BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    day             BIGINT NOT NULL,
    operation       TEXT NOT NULL,
    key_id          BIGINT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    bucket          INTEGER NOT NULL,
    count           BIGINT NOT NULL,
    PRIMARY KEY (api_id, day, operation, key_id, bucket)
) WITHOUT ROWID;
CREATE INDEX analytics_latency_daily_key_day_idx ON analytics_latency_daily(key_id, day);

-- The same without the consumer: API × operation × hour (and × day), summed over keys and
-- sources, recomputed by the flush for every hour and day it touches. Reads that do not group or
-- filter by consumer (every API, an API's operations, totals) sum these: a consumer dimension
-- multiplies the rows to merge by the number of consumers per operation.
CREATE TABLE analytics_ops_hourly (
    api_id          BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    hour            BIGINT NOT NULL,
    operation       TEXT NOT NULL,
    requests        BIGINT NOT NULL DEFAULT 0,
    status_2xx      BIGINT NOT NULL DEFAULT 0,
    status_3xx      BIGINT NOT NULL DEFAULT 0,
    status_4xx      BIGINT NOT NULL DEFAULT 0,
    status_5xx      BIGINT NOT NULL DEFAULT 0,
    latency_us_sum  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (api_id, hour, operation)
) WITHOUT ROWID;
CREATE INDEX analytics_ops_hourly_hour_idx ON analytics_ops_hourly(hour);

CREATE TABLE analytics_ops_latency_hourly (
    api_id          BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    hour            BIGINT NOT NULL,
    operation       TEXT NOT NULL,
    bucket          INTEGER NOT NULL,
    count           BIGINT NOT NULL,
    PRIMARY KEY (api_id, hour, operation, bucket)
) WITHOUT ROWID;
CREATE INDEX analytics_ops_latency_hourly_hour_idx ON analytics_ops_latency_hourly(hour);

CREATE TABLE analytics_ops_daily (
    api_id          BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    day             BIGINT NOT NULL,
    operation       TEXT NOT NULL,
    requests        BIGINT NOT NULL DEFAULT 0,
    status_2xx      BIGINT NOT NULL DEFAULT 0,
    status_3xx      BIGINT NOT NULL DEFAULT 0,
    status_4xx      BIGINT NOT NULL DEFAULT 0,
    status_5xx      BIGINT NOT NULL DEFAULT 0,
    latency_us_sum  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (api_id, day, operation)
) WITHOUT ROWID;
CREATE INDEX analytics_ops_daily_day_idx ON analytics_ops_daily(day);

CREATE TABLE analytics_ops_latency_daily (
    api_id          BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    day             BIGINT NOT NULL,
    operation       TEXT NOT NULL,
    bucket          INTEGER NOT NULL,
    count           BIGINT NOT NULL,
    PRIMARY KEY (api_id, day, operation, bucket)
) WITHOUT ROWID;
CREATE INDEX analytics_ops_latency_daily_day_idx ON analytics_ops_latency_daily(day);
