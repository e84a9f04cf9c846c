//! The change log that gateways follow to invalidate caches and reload routes.

use crate::db::on_pool;
use crate::{Store, StoreError};

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A key was created, revoked, rotated or suspended; `ref_id` is its hash in hex.
    Key,
    /// An app's subscriptions changed; `ref_id` is the app id.
    App,
    /// An account was suspended or reactivated; `ref_id` is the account id.
    Account,
    /// An API or its plans changed; `ref_id` is the API id.
    Api,
}

impl ChangeKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Key => "key",
            ChangeKind::App => "app",
            ChangeKind::Account => "account",
            ChangeKind::Api => "api",
        }
    }
    fn parse(s: &str) -> Option<ChangeKind> {
        Some(match s {
            "key" => ChangeKind::Key,
            "app" => ChangeKind::App,
            "account" => ChangeKind::Account,
            "api" => ChangeKind::Api,
            _ => return None,
        })
    }
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// Monotonic position in the log.
    pub version: i64,
    /// What changed.
    pub kind: ChangeKind,
    /// Which one.
    pub ref_id: String,
}

/// Append to the change log inside the caller's transaction.
macro_rules! record_change {
    ($tx:expr, $kind:expr, $ref_id:expr, $now:expr) => {
        sqlx::query("INSERT INTO change_log (kind, ref_id, at) VALUES ($1, $2, $3)")
            .bind($kind.as_str())
            .bind($ref_id)
            .bind($now)
            .execute(&mut *$tx)
            .await?
    };
}
pub(crate) use record_change;

impl Store {
    /// Changes after `version`, oldest first, at most `limit`.
    pub async fn changes_since(&self, version: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        self.changes_after(version, i64::MAX, limit).await
    }

    /// Changes after `version` or written at or after `at` (re-read to catch late commits),
    /// oldest first, at most `limit`.
    pub async fn changes_after(&self, version: i64, at: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        let rows: Vec<(i64, String, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT version, kind, ref_id FROM change_log WHERE version > $1 OR at >= $2 ORDER BY version LIMIT $3")
            .bind(version).bind(at).bind(limit).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .filter_map(|(version, kind, ref_id)| Some(Change { version, kind: ChangeKind::parse(&kind)?, ref_id }))
            .collect())
    }

    /// The newest version in the log (0 when empty).
    pub async fn latest_change(&self) -> Result<i64, StoreError> {
        let v: (i64,) = on_pool!(self, p => sqlx::query_as(
            "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM change_log").fetch_one(p).await?);
        Ok(v.0)
    }

    /// Record a change outside any other write (e.g. an admin "reload").
    pub async fn record_change(&self, kind: ChangeKind, ref_id: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("INSERT INTO change_log (kind, ref_id, at) VALUES ($1, $2, $3)")
            .bind(kind.as_str()).bind(ref_id).bind(now).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Drop log entries older than `before` (unix seconds), keeping the newest.
    pub async fn prune_changes(&self, before: i64) -> Result<u64, StoreError> {
        let r = on_pool!(self, p => sqlx::query(
            "DELETE FROM change_log WHERE at < $1 AND version < (SELECT MAX(version) FROM change_log)")
            .bind(before).execute(p).await?.rows_affected());
        Ok(r)
    }
}
