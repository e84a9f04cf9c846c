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

    /// The same entry about `target` (for a row the store creates: `key:42`).
    pub fn on(&self, target: impl Into<String>) -> Audit {
        Audit { target: target.into(), ..self.clone() }
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

/// Insert `$audit` (an `Option<&Audit>` or `Option<Audit>`) when there is one.
macro_rules! record_audit_opt {
    ($tx:expr, $audit:expr, $now:expr) => {{
        if let Some(audit) = $audit {
            $crate::audit::record_audit!($tx, audit, $now);
        }
    }};
}
pub(crate) use record_audit_opt;

impl Store {
    /// Append to the audit log, on its own. Only for **events that change nothing else**: a
    /// login, a refused login, a signup attempt with a taken address, a password-reset request
    /// (`login`, `login.refused`, `signup.existing_email`, `password.reset_requested`) and the
    /// CLI's seeding. An action that changes something writes its row through [`Audit`] in the
    /// action's own transaction, so the change and its row are kept or lost together.
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
