use serde::Serialize;

use crate::audit::record_audit;
use crate::db::{in_tx, on_pool};
use crate::{Audit, Store, StoreError};

/// A developer's application: owns keys and subscriptions.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct App {
    /// Id.
    pub id: i64,
    /// Owner.
    pub account_id: i64,
    /// Name, unique per account.
    pub name: String,
    /// Created (unix seconds).
    pub created_at: i64,
}

impl Store {
    /// Create an app. A name the account already uses is [`StoreError::Conflict`]. (Seeding and
    /// tests; the portal's action is [`Store::create_app_audited`].)
    pub async fn create_app(&self, account_id: i64, name: &str, now: i64) -> Result<App, StoreError> {
        self.create_app_audited(account_id, name, now, None).await
    }

    /// Create an app and write `audit` (target: the new app) in one transaction.
    pub async fn create_app_audited(&self, account_id: i64, name: &str, now: i64, audit: Option<Audit>) -> Result<App, StoreError> {
        Ok(in_tx!(self, tx => {
            let app: App = sqlx::query_as(
                "INSERT INTO apps (account_id, name, created_at) VALUES ($1, $2, $3) RETURNING id, account_id, name, created_at")
                .bind(account_id).bind(name).bind(now).fetch_one(&mut *tx).await?;
            if let Some(audit) = audit {
                record_audit!(tx, Audit { target: format!("app:{}", app.id), ..audit }, now);
            }
            app
        }))
    }

    /// The account's apps, oldest first.
    pub async fn list_apps(&self, account_id: i64) -> Result<Vec<App>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT id, account_id, name, created_at FROM apps WHERE account_id = $1 ORDER BY id")
            .bind(account_id).fetch_all(p).await?))
    }

    /// An app, only if `account_id` owns it (otherwise [`StoreError::NotFound`]).
    pub async fn get_app(&self, account_id: i64, app_id: i64) -> Result<App, StoreError> {
        on_pool!(self, p => sqlx::query_as(
            "SELECT id, account_id, name, created_at FROM apps WHERE id = $1 AND account_id = $2")
            .bind(app_id).bind(account_id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// Rename an app `account_id` owns. A name the account already uses is
    /// [`StoreError::Conflict`]; someone else's app is [`StoreError::NotFound`]. `audit` is written
    /// in the same transaction.
    pub async fn rename_app(&self, account_id: i64, app_id: i64, name: &str, audit: &Audit, now: i64) -> Result<App, StoreError> {
        Ok(in_tx!(self, tx => {
            let app: Option<App> = sqlx::query_as(
                "UPDATE apps SET name = $3 WHERE id = $1 AND account_id = $2 RETURNING id, account_id, name, created_at")
                .bind(app_id).bind(account_id).bind(name).fetch_optional(&mut *tx).await?;
            let Some(app) = app else { return Err(StoreError::NotFound) };
            record_audit!(tx, audit, now);
            app
        }))
    }
}
