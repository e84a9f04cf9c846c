use serde::Serialize;

use crate::db::{in_tx, on_pool};
use crate::{Store, StoreError};

/// Absolute counter values for one key × API × hour from one counter source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// Key id.
    pub key_id: i64,
    /// API id.
    pub api_id: i64,
    /// Subscription the requests counted against.
    pub subscription_id: i64,
    /// Start of the hour (unix seconds).
    pub hour: i64,
    /// Requests admitted (the billable count).
    pub admitted: i64,
    /// Responses 2xx.
    pub status_2xx: i64,
    /// Responses 3xx.
    pub status_3xx: i64,
    /// Responses 4xx.
    pub status_4xx: i64,
    /// Responses 5xx.
    pub status_5xx: i64,
    /// Request body bytes.
    pub bytes_in: i64,
    /// Response body bytes.
    pub bytes_out: i64,
    /// Sum of total latencies, milliseconds.
    pub latency_ms_sum: i64,
    /// The counter store's incarnation of this bucket (Redis: the server time its count began,
    /// µs), 0 when it has none. A bucket that Redis lost and began again is a new incarnation
    /// and gets its own row (source `<source>@<generation>`): absolute values from before and
    /// after the loss then add up instead of the smaller being ignored as a stale snapshot.
    pub generation: i64,
}

/// Totals over a range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UsageSummary {
    /// Requests admitted.
    pub admitted: i64,
    /// Responses 4xx + 5xx.
    pub errors: i64,
}

impl UsageRow {
    /// The row's source name: `source`, with the bucket's incarnation when it has one.
    pub fn source(&self, source: &str) -> String {
        if self.generation == 0 {
            source.to_owned()
        } else {
            format!("{source}@{}", self.generation)
        }
    }
}

const DAY: i64 = 86_400;

/// Recompute one key × API × UTC day of `usage_daily` (`$3` is the day's start, `$4` the next
/// day's) from its hourly buckets: absolute values, so running it again changes nothing.
const ROLL_UP_DAY: &str = "INSERT INTO usage_daily (key_id, day, api_id, subscription_id, admitted, status_2xx, status_3xx,
        status_4xx, status_5xx, bytes_in, bytes_out, latency_ms_sum)
     SELECT key_id, $3, api_id, subscription_id, CAST(SUM(admitted) AS BIGINT), CAST(SUM(status_2xx) AS BIGINT),
        CAST(SUM(status_3xx) AS BIGINT), CAST(SUM(status_4xx) AS BIGINT), CAST(SUM(status_5xx) AS BIGINT),
        CAST(SUM(bytes_in) AS BIGINT), CAST(SUM(bytes_out) AS BIGINT), CAST(SUM(latency_ms_sum) AS BIGINT)
     FROM usage_hourly WHERE key_id = $1 AND api_id = $2 AND hour >= $3 AND hour < $4
     GROUP BY key_id, api_id, subscription_id
     ON CONFLICT (key_id, day, api_id, subscription_id) DO UPDATE SET
        admitted = excluded.admitted, status_2xx = excluded.status_2xx, status_3xx = excluded.status_3xx,
        status_4xx = excluded.status_4xx, status_5xx = excluded.status_5xx, bytes_in = excluded.bytes_in,
        bytes_out = excluded.bytes_out, latency_ms_sum = excluded.latency_ms_sum";

/// The whole rollup from `usage_hourly` (the statement migration 0014 backfills with).
const REBUILD_DAILY: &str = "INSERT INTO usage_daily (key_id, day, api_id, subscription_id, admitted, status_2xx, status_3xx,
        status_4xx, status_5xx, bytes_in, bytes_out, latency_ms_sum)
     SELECT key_id, hour - hour % 86400, api_id, subscription_id, CAST(SUM(admitted) AS BIGINT), CAST(SUM(status_2xx) AS BIGINT),
        CAST(SUM(status_3xx) AS BIGINT), CAST(SUM(status_4xx) AS BIGINT), CAST(SUM(status_5xx) AS BIGINT),
        CAST(SUM(bytes_in) AS BIGINT), CAST(SUM(bytes_out) AS BIGINT), CAST(SUM(latency_ms_sum) AS BIGINT)
     FROM usage_hourly GROUP BY key_id, hour - hour % 86400, api_id, subscription_id";

/// The distinct key × API × UTC day (its start) of `rows`, in order.
fn touched_days(rows: &[UsageRow]) -> std::collections::BTreeSet<(i64, i64, i64)> {
    rows.iter().map(|r| (r.key_id, r.api_id, r.hour - r.hour.rem_euclid(DAY))).collect()
}

impl Store {
    /// Write absolute counter values for `source`. Idempotent: writing the same rows twice, or an
    /// older snapshot after a newer one, leaves the newest values (counters only grow). The daily
    /// rollup of every day touched is recomputed from its hourly buckets in the same transaction.
    pub async fn upsert_usage(&self, source: &str, rows: &[UsageRow], now: i64) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        in_tx!(self, tx => {
            for r in rows {
                sqlx::query(
                    "INSERT INTO usage_hourly (key_id, api_id, subscription_id, hour, source, admitted, status_2xx, status_3xx,
                        status_4xx, status_5xx, bytes_in, bytes_out, latency_ms_sum, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                     ON CONFLICT (key_id, api_id, hour, source) DO UPDATE SET
                        admitted = CASE WHEN excluded.admitted > usage_hourly.admitted THEN excluded.admitted ELSE usage_hourly.admitted END,
                        status_2xx = CASE WHEN excluded.status_2xx > usage_hourly.status_2xx THEN excluded.status_2xx ELSE usage_hourly.status_2xx END,
                        status_3xx = CASE WHEN excluded.status_3xx > usage_hourly.status_3xx THEN excluded.status_3xx ELSE usage_hourly.status_3xx END,
                        status_4xx = CASE WHEN excluded.status_4xx > usage_hourly.status_4xx THEN excluded.status_4xx ELSE usage_hourly.status_4xx END,
                        status_5xx = CASE WHEN excluded.status_5xx > usage_hourly.status_5xx THEN excluded.status_5xx ELSE usage_hourly.status_5xx END,
                        bytes_in = CASE WHEN excluded.bytes_in > usage_hourly.bytes_in THEN excluded.bytes_in ELSE usage_hourly.bytes_in END,
                        bytes_out = CASE WHEN excluded.bytes_out > usage_hourly.bytes_out THEN excluded.bytes_out ELSE usage_hourly.bytes_out END,
                        latency_ms_sum = CASE WHEN excluded.latency_ms_sum > usage_hourly.latency_ms_sum THEN excluded.latency_ms_sum ELSE usage_hourly.latency_ms_sum END,
                        updated_at = excluded.updated_at")
                    .bind(r.key_id).bind(r.api_id).bind(r.subscription_id).bind(r.hour).bind(r.source(source))
                    .bind(r.admitted).bind(r.status_2xx).bind(r.status_3xx).bind(r.status_4xx).bind(r.status_5xx)
                    .bind(r.bytes_in).bind(r.bytes_out).bind(r.latency_ms_sum).bind(now)
                    .execute(&mut *tx).await?;
            }
            for (key_id, api_id, day) in touched_days(rows) {
                sqlx::query(ROLL_UP_DAY).bind(key_id).bind(api_id).bind(day).bind(day + DAY).execute(&mut *tx).await?;
            }
        });
        Ok(())
    }

    /// Recompute every row of the daily rollup from `usage_hourly`: for hourly rows written by
    /// other means than [`Store::upsert_usage`] (bulk loads, repairs). Idempotent.
    pub async fn rebuild_usage_daily(&self) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            sqlx::query("DELETE FROM usage_daily").execute(&mut *tx).await?;
            sqlx::query(REBUILD_DAILY).execute(&mut *tx).await?;
        });
        Ok(())
    }

    /// Requests admitted against a subscription in `[from, to)`, over all sources.
    pub async fn subscription_usage(&self, subscription_id: i64, from: i64, to: i64) -> Result<i64, StoreError> {
        let n: (i64,) = on_pool!(self, p => sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(admitted), 0) AS BIGINT) FROM usage_hourly WHERE subscription_id = $1 AND hour >= $2 AND hour < $3")
            .bind(subscription_id).bind(from).bind(to).fetch_one(p).await?);
        Ok(n.0)
    }

    /// Totals for all of an account's keys since `from` (whole days from the daily rollup).
    pub async fn account_usage(&self, account_id: i64, from: i64) -> Result<UsageSummary, StoreError> {
        let by_app = self.account_usage_by_app(account_id, from).await?;
        Ok(UsageSummary { admitted: by_app.iter().map(|a| a.1).sum(), errors: by_app.iter().map(|a| a.2).sum() })
    }

    /// Per-key totals for an app since `from`: `(key_id, admitted, errors)`.
    pub async fn app_usage_by_key(&self, app_id: i64, from: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT u.key_id, CAST(SUM(u.admitted) AS BIGINT), CAST(SUM(u.status_4xx + u.status_5xx) AS BIGINT)
             FROM usage_hourly u JOIN api_keys k ON k.id = u.key_id
             WHERE k.app_id = $1 AND u.hour >= $2 GROUP BY u.key_id")
            .bind(app_id).bind(from).fetch_all(p).await?))
    }

    /// Sum of every usage row of a key (all sources, all time); for tests and exports.
    pub async fn key_usage_total(&self, key_id: i64) -> Result<UsageSummary, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(admitted), 0) AS BIGINT) AS admitted,
                    CAST(COALESCE(SUM(status_4xx + status_5xx), 0) AS BIGINT) AS errors
             FROM usage_hourly WHERE key_id = $1")
            .bind(key_id).fetch_one(p).await?))
    }
}
