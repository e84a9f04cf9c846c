//! `tower_sessions::SessionStore` on Turnpike's own `sessions` table, so the portal's sessions
//! live in whichever database the store uses and the schema stays owned by our migrations.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use crate::db::on_pool;
use crate::{Store, StoreError};

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

/// The session data key under which the portal keeps the logged-in account's id; the store copies
/// it into the `account_id` column on every write.
pub const SESSION_ACCOUNT_KEY: &str = "account_id";

fn account_of(record: &Record) -> Option<i64> {
    record.data.get(SESSION_ACCOUNT_KEY).and_then(serde_json::Value::as_i64)
}

impl Store {
    /// Delete every session of `account_id` (on password change or suspension), except `keep`.
    pub async fn delete_account_sessions(&self, account_id: i64, keep: Option<&str>) -> Result<u64, StoreError> {
        Ok(on_pool!(self, p => sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND id <> $2")
            .bind(account_id).bind(keep.unwrap_or("")).execute(p).await?.rows_affected()))
    }
}

#[async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // Retry on the (astronomically unlikely) id collision instead of overwriting a session.
        loop {
            let data = serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
            let inserted = on_pool!(self, p => sqlx::query(
                "INSERT INTO sessions (id, data, expires_at, account_id) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING")
                .bind(record.id.to_string()).bind(data).bind(record.expiry_date.unix_timestamp()).bind(account_of(record))
                .execute(p).await.map_err(backend)?.rows_affected());
            if inserted == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        on_pool!(self, p => sqlx::query(
            "INSERT INTO sessions (id, data, expires_at, account_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, account_id = excluded.account_id")
            .bind(record.id.to_string()).bind(data).bind(record.expiry_date.unix_timestamp()).bind(account_of(record))
            .execute(p).await.map_err(backend)?.rows_affected());
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let row: Option<(String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2")
            .bind(id.to_string()).bind(now).fetch_optional(p).await.map_err(backend)?);
        let Some((data, expires_at)) = row else { return Ok(None) };
        Ok(Some(Record {
            id: *id,
            data: serde_json::from_str(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?,
            expiry_date: time::OffsetDateTime::from_unix_timestamp(expires_at).map_err(|e| session_store::Error::Decode(e.to_string()))?,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        on_pool!(self, p => sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.to_string()).execute(p).await.map_err(backend)?.rows_affected());
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for Store {
    async fn delete_expired(&self) -> session_store::Result<()> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        on_pool!(self, p => sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now).execute(p).await.map_err(backend)?.rows_affected());
        Ok(())
    }
}
