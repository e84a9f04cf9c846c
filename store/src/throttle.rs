//! Attempt counters for throttling logins, signups and reset requests. Kept in the database so
//! every portal instance sees the same counts; a sliding window over one row per attempt.

use crate::db::on_pool;
use crate::{Store, StoreError};

impl Store {
    /// Attempts recorded for `key` at or after `since`, and the oldest of them.
    pub async fn throttle_count(&self, key: &str, since: i64) -> Result<(i64, Option<i64>), StoreError> {
        let row: (i64, Option<i64>) = on_pool!(self, p => sqlx::query_as(
            "SELECT COUNT(*), CAST(MIN(at) AS BIGINT) FROM throttle_events WHERE key = $1 AND at >= $2")
            .bind(key).bind(since).fetch_one(p).await?);
        Ok(row)
    }

    /// Record one attempt for `key` at `now`, dropping that key's attempts older than a day (no
    /// window is longer).
    pub async fn throttle_record(&self, key: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("DELETE FROM throttle_events WHERE key = $1 AND at < $2")
            .bind(key).bind(now - 86_400).execute(p).await?.rows_affected());
        on_pool!(self, p => sqlx::query("INSERT INTO throttle_events (key, at) VALUES ($1, $2)")
            .bind(key).bind(now).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Forget the attempts for `key` (a successful login clears its account's failures).
    pub async fn throttle_clear(&self, key: &str) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("DELETE FROM throttle_events WHERE key = $1").bind(key).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Drop attempts older than `before`; for housekeeping.
    pub async fn throttle_prune(&self, before: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self, p => sqlx::query("DELETE FROM throttle_events WHERE at < $1").bind(before).execute(p).await?.rows_affected()))
    }
}
