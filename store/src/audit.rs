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
