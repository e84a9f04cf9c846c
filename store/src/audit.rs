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

/// The audit row of an action, written by the store in the same transaction as the change it
/// records: if either write fails, neither is kept. For an action that creates a row, the store
/// sets `target` to the new row (`key:42`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Acting account, if any (None: the system or the CLI).
    pub actor_id: Option<i64>,
    /// e.g. `key.create`.
    pub action: &'static str,
    /// e.g. `key:42`.
    pub target: String,
    /// Free text; never a secret.
    pub detail: String,
}

impl Audit {
    /// `actor_id` did `action` to `target`.
    pub fn new(actor_id: Option<i64>, action: &'static str, target: impl Into<String>, detail: impl Into<String>) -> Audit {
        Audit { actor_id, action, target: target.into(), detail: detail.into() }
    }
}

/// Insert `$audit` (an [`Audit`]) inside the caller's transaction.
macro_rules! record_audit {
    ($tx:expr, $audit:expr, $now:expr) => {{
        let audit: &$crate::Audit = &$audit;
        sqlx::query("INSERT INTO audit_log (at, actor_id, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind($now)
            .bind(audit.actor_id)
            .bind(audit.action)
            .bind(&audit.target)
            .bind(&audit.detail)
            .execute(&mut *$tx)
            .await?
    }};
}
pub(crate) use record_audit;

impl Store {
    /// Append to the audit log (for events that change nothing else; an action's row goes
    /// through [`Audit`] in the action's own transaction).
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
