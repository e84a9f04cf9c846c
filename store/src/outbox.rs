use serde::Serialize;

use crate::db::on_pool;
use crate::{Store, StoreError};

/// An email waiting to be (or already) sent.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OutboxMessage {
    /// Id.
    pub id: i64,
    /// e.g. `verify_email`.
    pub kind: String,
    /// Address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Queue an email on `$conn` (a pool, or the caller's transaction so the email goes out only if
/// the change that causes it commits); evaluates to the message id.
macro_rules! queue_email {
    ($conn:expr, $kind:expr, $recipient:expr, $subject:expr, $body:expr, $now:expr) => {{
        let id: (i64,) =
            sqlx::query_as("INSERT INTO outbox (kind, recipient, subject, body, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
                .bind($kind)
                .bind($recipient)
                .bind($subject)
                .bind($body)
                .bind($now)
                .fetch_one($conn)
                .await?;
        id.0
    }};
}
pub(crate) use queue_email;

impl Store {
    /// Queue an email; the mailer worker delivers it.
    pub async fn enqueue_email(&self, kind: &str, recipient: &str, subject: &str, body: &str, now: i64) -> Result<i64, StoreError> {
        Ok(on_pool!(self, p => queue_email!(p, kind, recipient, subject, body, now)))
    }

    /// Oldest unsent messages.
    pub async fn pending_emails(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT id, kind, recipient, subject, body FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1")
            .bind(limit).fetch_all(p).await?))
    }

    /// Mark delivered.
    pub async fn mark_email_sent(&self, id: i64, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("UPDATE outbox SET sent_at = $2 WHERE id = $1").bind(id).bind(now).execute(p).await?.rows_affected());
        Ok(())
    }
}

impl Store {
    /// Every message ever queued for `recipient`, sent or not, oldest first (tests follow the
    /// links in them; operators can look up what was mailed).
    pub async fn emails_to(&self, recipient: &str) -> Result<Vec<OutboxMessage>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT id, kind, recipient, subject, body FROM outbox WHERE recipient = $1 ORDER BY id")
            .bind(recipient).fetch_all(p).await?))
    }
}
