//! Queries of the admin console: overview counts, developer search, suspending single keys and
//! the filtered audit log.

use serde::Serialize;

use crate::audit::AuditEntry;
use crate::changes::{record_change, ChangeKind};
use crate::db::{in_tx, on_pool};
use crate::{Store, StoreError};

/// Headline numbers for the admin overview.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct AdminCounts {
    /// Developer accounts (admins excluded).
    pub developers: i64,
    /// Apps.
    pub apps: i64,
    /// Keys with status `active`.
    pub active_keys: i64,
    /// APIs, any visibility.
    pub apis: i64,
}

/// A row of the developer list.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeveloperRow {
    /// Account id.
    pub id: i64,
    /// Email.
    pub email: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Created (unix seconds).
    pub created_at: i64,
    /// Number of apps.
    pub apps: i64,
    /// Number of active keys.
    pub active_keys: i64,
}

/// One page of results and whether there is another.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// Whether rows follow this page.
    pub has_more: bool,
}

impl<T> Page<T> {
    fn from_probe(mut rows: Vec<T>, per_page: i64) -> Page<T> {
        let limit = usize::try_from(per_page).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        Page { rows, has_more }
    }
}

/// What the audit log page filters on.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact action, e.g. `api.update`; or a prefix ending in `.`, e.g. `key.`.
    pub action: Option<String>,
    /// Acting account id.
    pub actor_id: Option<i64>,
    /// Exact target, e.g. `api:3`.
    pub target: Option<String>,
    /// Only entries at or after (unix seconds).
    pub since: Option<i64>,
    /// Only entries before (unix seconds).
    pub until: Option<i64>,
}

/// An audit entry with the actor's email.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    /// The entry.
    #[sqlx(flatten)]
    pub entry: AuditEntry,
    /// The actor's email, if the actor still exists.
    pub actor_email: Option<String>,
}

/// Escape `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store {
    /// Developers, apps, active keys and APIs.
    pub async fn admin_counts(&self) -> Result<AdminCounts, StoreError> {
        let (developers, apps, active_keys, apis): (i64, i64, i64, i64) = on_pool!(self, p => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM accounts WHERE role = 'developer'),
                    (SELECT COUNT(*) FROM apps),
                    (SELECT COUNT(*) FROM api_keys WHERE status = 'active'),
                    (SELECT COUNT(*) FROM apis)")
            .fetch_one(p).await?);
        Ok(AdminCounts { developers, apps, active_keys, apis })
    }

    /// Developer accounts whose email contains `query` (case-insensitive; all when empty), newest
    /// first, `per_page` from `offset`.
    pub async fn search_developers(&self, query: &str, offset: i64, per_page: i64) -> Result<Page<DeveloperRow>, StoreError> {
        let pattern = format!("%{}%", like_escape(&query.trim().to_lowercase()));
        let rows: Vec<DeveloperRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT acc.id, acc.email, acc.status, acc.created_at,
                    (SELECT COUNT(*) FROM apps a WHERE a.account_id = acc.id) AS apps,
                    (SELECT COUNT(*) FROM api_keys k JOIN apps a ON a.id = k.app_id
                      WHERE a.account_id = acc.id AND k.status = 'active') AS active_keys
             FROM accounts acc
             WHERE acc.role = 'developer' AND LOWER(acc.email) LIKE $1 ESCAPE '\\'
             ORDER BY acc.id DESC LIMIT $2 OFFSET $3")
            .bind(pattern).bind(per_page + 1).bind(offset.max(0)).fetch_all(p).await?);
        Ok(Page::from_probe(rows, per_page))
    }

    /// Suspend (`Suspended`) or reactivate (`Active`) one key. Revoked keys stay revoked
    /// ([`StoreError::NotFound`]). Gateways drop the key from their caches at once.
    /// `audit` is written in the same transaction.
    pub async fn set_key_suspended(&self, key_id: i64, suspended: bool, audit: &crate::Audit, now: i64) -> Result<(), StoreError> {
        let (from, to) = if suspended { ("active", "suspended") } else { ("suspended", "active") };
        in_tx!(self, tx => {
            let hash: Option<(Vec<u8>,)> = sqlx::query_as(
                "UPDATE api_keys SET status = $2 WHERE id = $1 AND status IN ($2, $3) RETURNING key_hash")
                .bind(key_id).bind(to).bind(from).fetch_optional(&mut *tx).await?;
            let Some((hash,)) = hash else { return Err(StoreError::NotFound) };
            record_change!(tx, ChangeKind::Key, hex::encode(hash), now);
            crate::audit::record_audit!(tx, audit, now);
        });
        Ok(())
    }

    /// The app and owner of a key: `(app_id, account_id)`.
    pub async fn key_owner(&self, key_id: i64) -> Result<(i64, i64), StoreError> {
        on_pool!(self, p => sqlx::query_as(
            "SELECT k.app_id, a.account_id FROM api_keys k JOIN apps a ON a.id = k.app_id WHERE k.id = $1")
            .bind(key_id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// Audit entries matching `filter`, newest first, `per_page` from `offset`.
    pub async fn search_audit(&self, filter: &AuditFilter, offset: i64, per_page: i64) -> Result<Page<AuditRow>, StoreError> {
        // A trailing `.` asks for a family of actions (`key.` → key.create, key.revoke, …).
        let action = filter.action.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(|a| {
            if a.ends_with('.') {
                format!("{}%", like_escape(a))
            } else {
                like_escape(a)
            }
        });
        let rows: Vec<AuditRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT l.id, l.at, l.actor_id, l.action, l.target, l.detail, acc.email AS actor_email
             FROM audit_log l LEFT JOIN accounts acc ON acc.id = l.actor_id
             WHERE ($1 IS NULL OR l.action LIKE $1 ESCAPE '\\') AND ($2 IS NULL OR l.actor_id = $2)
               AND ($3 IS NULL OR l.target = $3) AND ($4 IS NULL OR l.at >= $4) AND ($5 IS NULL OR l.at < $5)
             ORDER BY l.id DESC LIMIT $6 OFFSET $7")
            .bind(action).bind(filter.actor_id).bind(filter.target.as_deref()).bind(filter.since).bind(filter.until)
            .bind(per_page + 1).bind(offset.max(0)).fetch_all(p).await?);
        Ok(Page::from_probe(rows, per_page))
    }

    /// Every distinct audited action, for the filter's choices.
    pub async fn audit_actions(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            on_pool!(self, p => sqlx::query_as("SELECT DISTINCT action FROM audit_log ORDER BY action").fetch_all(p).await?);
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }
}
