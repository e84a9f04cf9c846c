use serde::Serialize;

use crate::db::on_pool;
use crate::{Store, StoreError};

/// One audited action.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    /// Id.
    pub id: i64,
    /// When (unix seconds).
    pub at: i64,
    /// Acting account, if any (None: the system or the CLI).
    pub actor_id: Option<i64>,
    /// e.g. `key.create`.
    pub action: String,
    /// e.g. `key:42`.
    pub target: String,
    /// Free text; never a secret.
    pub detail: String,
}

/// Append to the audit log inside an open transaction (`in_tx!`), so the row commits or rolls
/// back with the change it records.
macro_rules! audit_tx {
    ($tx:expr, $actor:expr, $action:expr, $target:expr, $detail:expr, $now:expr) => {
        sqlx::query("INSERT INTO audit_log (at, actor_id, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind($now)
            .bind($actor)
            .bind($action)
            .bind($target)
            .bind($detail)
            .execute(&mut *$tx)
            .await?
    };
}
pub(crate) use audit_tx;

impl Store {
    /// Append to the audit log.
    pub async fn audit(&self, actor_id: Option<i64>, action: &str, target: &str, detail: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("INSERT INTO audit_log (at, actor_id, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(now).bind(actor_id).bind(action).bind(target).bind(detail).execute(p).await?.rows_affected());
        Ok(())
    }

    /// The newest `limit` audit entries.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT id, at, actor_id, action, target, detail FROM audit_log ORDER BY id DESC LIMIT $1")
            .bind(limit).fetch_all(p).await?))
    }
}
