use serde::Serialize;

use crate::accounts::AccountStatus;
use crate::audit::record_audit;
use crate::changes::{record_change, ChangeKind};
use crate::db::{in_tx, on_pool};
use crate::domain::{ApiKey, KeyHash};
use crate::{Audit, Store, StoreError};

/// A key's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Usable (until `expires_at`, if set).
    Active,
    /// Revoked by its owner: refused.
    Revoked,
    /// Suspended by an admin: refused.
    Suspended,
}

impl KeyStatus {
    fn parse(s: &str) -> KeyStatus {
        match s {
            "active" => KeyStatus::Active,
            "suspended" => KeyStatus::Suspended,
            _ => KeyStatus::Revoked,
        }
    }
}

/// A key as its owner sees it: never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRecord {
    /// Id.
    pub id: i64,
    /// Owning app.
    pub app_id: i64,
    /// Label.
    pub name: String,
    /// First characters of the key, safe to show.
    pub display_prefix: String,
    /// State.
    pub status: KeyStatus,
    /// Created (unix seconds).
    pub created_at: i64,
    /// Last request seen by a gateway (unix seconds).
    pub last_used_at: Option<i64>,
    /// End of the rotation grace period, if any.
    pub expires_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: i64,
    app_id: i64,
    name: String,
    display_prefix: String,
    status: String,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
}

impl From<KeyRow> for KeyRecord {
    fn from(r: KeyRow) -> Self {
        KeyRecord {
            id: r.id,
            app_id: r.app_id,
            name: r.name,
            display_prefix: r.display_prefix,
            status: KeyStatus::parse(&r.status),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
        }
    }
}

/// What the gateway needs to decide on a key.
#[derive(Debug, Clone)]
pub struct KeyAuth {
    /// Key id.
    pub key_id: i64,
    /// App id.
    pub app_id: i64,
    /// Owner's account id.
    pub account_id: i64,
    /// Safe-to-log prefix.
    pub display_prefix: String,
    /// Key state.
    pub status: KeyStatus,
    /// Owner's state.
    pub account_status: AccountStatus,
    /// Expiry (rotation grace), unix seconds.
    pub expires_at: Option<i64>,
}

const KEY_COLUMNS: &str = "id, app_id, name, display_prefix, status, created_at, last_used_at, expires_at";

impl Store {
    /// Store a new key's hash for `app_id` (the operator's seeding and the tests; the portal's
    /// action is [`Store::create_key_as`]).
    pub async fn create_key(&self, app_id: i64, name: &str, key: &ApiKey, now: i64) -> Result<KeyRecord, StoreError> {
        self.insert_key(None, app_id, name, key, None, now).await
    }

    /// Store a new key's hash for app `app_id` of `account_id` and `audit` (target: the new key)
    /// in one transaction, if the account may hold credentials (a verified email address, not
    /// deleted: the rule personal access tokens follow too); otherwise [`StoreError::Unverified`]
    /// and nothing is stored.
    pub async fn create_key_as(
        &self,
        account_id: i64,
        app_id: i64,
        name: &str,
        key: &ApiKey,
        audit: Audit,
        now: i64,
    ) -> Result<KeyRecord, StoreError> {
        self.insert_key(Some(account_id), app_id, name, key, Some(audit), now).await
    }

    async fn insert_key(
        &self,
        holder: Option<i64>,
        app_id: i64,
        name: &str,
        key: &ApiKey,
        audit: Option<Audit>,
        now: i64,
    ) -> Result<KeyRecord, StoreError> {
        let hash = key.hash();
        let row: KeyRow = in_tx!(self, tx => {
            if let Some(account_id) = holder {
                crate::accounts::require_credential_holder!(tx, account_id);
            }
            let row: KeyRow = sqlx::query_as(&format!(
                "INSERT INTO api_keys (app_id, name, display_prefix, key_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING {KEY_COLUMNS}"))
                .bind(app_id).bind(name).bind(key.display_prefix()).bind(hash.0.to_vec()).bind(now)
                .fetch_one(&mut *tx).await?;
            record_change!(tx, ChangeKind::Key, hash.to_hex(), now);
            if let Some(audit) = audit {
                record_audit!(tx, Audit { target: format!("key:{}", row.id), ..audit }, now);
            }
            row
        });
        Ok(row.into())
    }

    /// Every key of `account_id`'s apps, by app, newest first within each.
    pub async fn account_keys(&self, account_id: i64) -> Result<Vec<KeyRecord>, StoreError> {
        let columns: Vec<String> = KEY_COLUMNS.split(", ").map(|c| format!("k.{c}")).collect();
        let rows: Vec<KeyRow> = on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {} FROM api_keys k JOIN apps a ON a.id = k.app_id WHERE a.account_id = $1 ORDER BY k.app_id, k.id DESC",
            columns.join(", ")))
            .bind(account_id).fetch_all(p).await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The app's keys, newest first.
    pub async fn list_keys(&self, app_id: i64) -> Result<Vec<KeyRecord>, StoreError> {
        let rows: Vec<KeyRow> = on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE app_id = $1 ORDER BY id DESC"))
            .bind(app_id).fetch_all(p).await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Revoke a key of `app_id`; gateways refuse it once they see the change (seeding and tests;
    /// the portal's action is [`Store::revoke_key_audited`]).
    pub async fn revoke_key(&self, app_id: i64, key_id: i64, now: i64) -> Result<(), StoreError> {
        self.revoke_key_audited(app_id, key_id, now, None).await
    }

    /// Revoke a key of `app_id` and write `audit`, in one transaction.
    pub async fn revoke_key_audited(&self, app_id: i64, key_id: i64, now: i64, audit: Option<Audit>) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let hash: Option<(Vec<u8>,)> = sqlx::query_as(
                "UPDATE api_keys SET status = 'revoked' WHERE id = $1 AND app_id = $2 RETURNING key_hash")
                .bind(key_id).bind(app_id).fetch_optional(&mut *tx).await?;
            let Some((hash,)) = hash else { return Err(StoreError::NotFound) };
            record_change!(tx, ChangeKind::Key, hex::encode(hash), now);
            if let Some(audit) = &audit {
                record_audit!(tx, audit, now);
            }
        });
        Ok(())
    }

    /// The stored hash of key `id`, for credentials that name a key instead of presenting it
    /// (a JWT's consumer claim).
    pub async fn key_hash_by_id(&self, id: i64) -> Result<Option<KeyHash>, StoreError> {
        let row: Option<(Vec<u8>,)> =
            on_pool!(self, p => sqlx::query_as("SELECT key_hash FROM api_keys WHERE id = $1").bind(id).fetch_optional(p).await?);
        Ok(row.and_then(|(h,)| <[u8; 32]>::try_from(h.as_slice()).ok()).map(KeyHash))
    }

    /// Rename a key of `app_id` and write `audit`, in one transaction.
    pub async fn rename_key(&self, app_id: i64, key_id: i64, name: &str, audit: &Audit, now: i64) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let n = sqlx::query("UPDATE api_keys SET name = $3 WHERE id = $1 AND app_id = $2")
                .bind(key_id).bind(app_id).bind(name).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            record_audit!(tx, audit, now);
        });
        Ok(())
    }

    /// Rotate an active key of `app_id`: store `new_key` under the same name and let the old key
    /// expire `grace_secs` from `now` (0: at once). An earlier expiry the old key already had is
    /// kept. Both hashes go to the change log so gateways drop what they cached.
    /// A key that is revoked, suspended or already expired is [`StoreError::NotFound`]. `audit`
    /// is written in the same transaction.
    pub async fn rotate_key(
        &self,
        app_id: i64,
        key_id: i64,
        new_key: &ApiKey,
        grace_secs: i64,
        audit: &Audit,
        now: i64,
    ) -> Result<KeyRecord, StoreError> {
        let expires_at = now.saturating_add(grace_secs.max(0));
        let new_hash = new_key.hash();
        let row: KeyRow = in_tx!(self, tx => {
            let old: Option<(String, Vec<u8>)> = sqlx::query_as(
                "UPDATE api_keys SET expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < $3 THEN expires_at ELSE $3 END
                 WHERE id = $1 AND app_id = $2 AND status = 'active' AND (expires_at IS NULL OR expires_at > $4)
                 RETURNING name, key_hash")
                .bind(key_id).bind(app_id).bind(expires_at).bind(now).fetch_optional(&mut *tx).await?;
            let Some((name, old_hash)) = old else { return Err(StoreError::NotFound) };
            let row: KeyRow = sqlx::query_as(&format!(
                "INSERT INTO api_keys (app_id, name, display_prefix, key_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING {KEY_COLUMNS}"))
                .bind(app_id).bind(&name).bind(new_key.display_prefix()).bind(new_hash.0.to_vec()).bind(now)
                .fetch_one(&mut *tx).await?;
            record_change!(tx, ChangeKind::Key, hex::encode(old_hash), now);
            record_change!(tx, ChangeKind::Key, new_hash.to_hex(), now);
            record_audit!(tx, audit, now);
            row
        });
        Ok(row.into())
    }

    /// One key of `app_id`.
    pub async fn get_key(&self, app_id: i64, key_id: i64) -> Result<KeyRecord, StoreError> {
        let row: Option<KeyRow> = on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND app_id = $2"))
            .bind(key_id).bind(app_id).fetch_optional(p).await?);
        row.map(Into::into).ok_or(StoreError::NotFound)
    }

    /// Look a key up by hash, with its owner's state.
    pub async fn key_auth(&self, hash: &KeyHash) -> Result<Option<KeyAuth>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            key_id: i64,
            app_id: i64,
            account_id: i64,
            display_prefix: String,
            status: String,
            account_status: String,
            expires_at: Option<i64>,
        }
        let row: Option<Row> = on_pool!(self, p => sqlx::query_as(
            "SELECT k.id AS key_id, k.app_id, a.account_id, k.display_prefix, k.status, acc.status AS account_status, k.expires_at
             FROM api_keys k JOIN apps a ON a.id = k.app_id JOIN accounts acc ON acc.id = a.account_id
             WHERE k.key_hash = $1")
            .bind(hash.0.to_vec()).fetch_optional(p).await?);
        Ok(row.map(|r| KeyAuth {
            key_id: r.key_id,
            app_id: r.app_id,
            account_id: r.account_id,
            display_prefix: r.display_prefix,
            status: KeyStatus::parse(&r.status),
            account_status: if r.account_status == "active" { AccountStatus::Active } else { AccountStatus::Suspended },
            expires_at: r.expires_at,
        }))
    }

    /// Record the latest use of keys (batched by the gateway's flusher).
    pub async fn touch_keys(&self, uses: &[(i64, i64)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        in_tx!(self, tx => {
            for (key_id, at) in uses {
                sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)")
                    .bind(key_id).bind(at).execute(&mut *tx).await?;
            }
        });
        Ok(())
    }
}
