use serde::Serialize;

use crate::audit::{record_audit, record_audit_opt};
use crate::changes::{record_change, ChangeKind};
use crate::db::{in_tx, on_pool};
use crate::domain::Email;
use crate::{Audit, Store, StoreError};

/// Who an account is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Consumes APIs.
    Developer,
    /// Publishes APIs and runs the business.
    Admin,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }
}

/// Whether an account may use the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Normal.
    Active,
    /// Suspended by an admin: no login, keys refused.
    Suspended,
}

/// A developer or admin account.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    /// Id.
    pub id: i64,
    /// Normalised email.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Status.
    pub status: AccountStatus,
    /// When the email was verified.
    pub email_verified_at: Option<i64>,
    /// Created (unix seconds).
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: i64,
    email: String,
    password_hash: String,
    role: String,
    status: String,
    email_verified_at: Option<i64>,
    created_at: i64,
}

impl AccountRow {
    fn into_account(self) -> Result<(Account, String), StoreError> {
        let role = match self.role.as_str() {
            "admin" => Role::Admin,
            "developer" => Role::Developer,
            other => return Err(StoreError::Corrupt(format!("role {other}"))),
        };
        let status = match self.status.as_str() {
            "active" => AccountStatus::Active,
            _ => AccountStatus::Suspended,
        };
        Ok((
            Account {
                id: self.id,
                email: self.email,
                role,
                status,
                email_verified_at: self.email_verified_at,
                created_at: self.created_at,
            },
            self.password_hash,
        ))
    }
}

/// Refuse (with [`StoreError::Unverified`], from the enclosing function) unless account
/// `$account_id` may hold new credentials. **The one rule for API keys and personal access
/// tokens alike**: only an account whose email address is verified, and that is not deleted, gets
/// working credentials (a pre-registered address must not before its owner confirms it). Checked
/// inside the transaction that creates the credential, so a deletion cannot slip in between.
macro_rules! require_credential_holder {
    ($tx:expr, $account_id:expr) => {{
        let holder: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM accounts WHERE id = $1 AND email_verified_at IS NOT NULL AND deleted_at IS NULL")
                .bind($account_id)
                .fetch_optional(&mut *$tx)
                .await?;
        if holder.is_none() {
            return Err($crate::StoreError::Unverified);
        }
    }};
}
pub(crate) use require_credential_holder;

const ACCOUNT_COLUMNS: &str = "id, email, password_hash, role, status, email_verified_at, created_at";

impl Store {
    /// Create an account. A taken email is [`StoreError::Conflict`] and stores nothing.
    pub async fn create_account(&self, email: &Email, password_hash: &str, role: Role, now: i64) -> Result<Account, StoreError> {
        self.create_account_audited(email, password_hash, role, None, now).await
    }

    /// Create an account and write `audit` in one transaction (target: the new account; actor,
    /// when `None`, the new account itself: a signup).
    pub async fn create_account_audited(
        &self,
        email: &Email,
        password_hash: &str,
        role: Role,
        audit: Option<&Audit>,
        now: i64,
    ) -> Result<Account, StoreError> {
        let row: AccountRow = in_tx!(self, tx => {
            let row: AccountRow = sqlx::query_as(&format!(
                "INSERT INTO accounts (email, password_hash, role, created_at) VALUES ($1, $2, $3, $4) RETURNING {ACCOUNT_COLUMNS}"))
                .bind(email.as_str()).bind(password_hash).bind(role.as_str()).bind(now)
                .fetch_one(&mut *tx).await?;
            let audit = audit.map(|a| Audit { actor_id: a.actor_id.or(Some(row.id)), ..a.on(format!("account:{}", row.id)) });
            record_audit_opt!(tx, audit, now);
            row
        });
        Ok(row.into_account()?.0)
    }

    /// The account and its password hash, by email.
    pub async fn find_account_by_email(&self, email: &Email) -> Result<Option<(Account, String)>, StoreError> {
        let row: Option<AccountRow> = on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = $1"))
            .bind(email.as_str()).fetch_optional(p).await?);
        row.map(AccountRow::into_account).transpose()
    }

    /// The account by id.
    pub async fn get_account(&self, id: i64) -> Result<Account, StoreError> {
        let row: AccountRow = on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"))
            .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        Ok(row.into_account()?.0)
    }

    /// Number of admin accounts.
    pub async fn count_admins(&self) -> Result<i64, StoreError> {
        let n: (i64,) = on_pool!(self, p => sqlx::query_as(
            "SELECT COUNT(*) FROM accounts WHERE role = 'admin'").fetch_one(p).await?);
        Ok(n.0)
    }

    /// Number of accounts.
    pub async fn count_accounts(&self) -> Result<i64, StoreError> {
        let n: (i64,) = on_pool!(self, p => sqlx::query_as("SELECT COUNT(*) FROM accounts").fetch_one(p).await?);
        Ok(n.0)
    }

    /// Mark the email verified (seeding and tests; the link's action is [`Store::verify_email`]).
    pub async fn mark_email_verified(&self, id: i64, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "UPDATE accounts SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1")
            .bind(id).bind(now).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Suspend or reactivate; gateways drop the account's cached keys.
    pub async fn set_account_status(&self, id: i64, status: AccountStatus, now: i64) -> Result<(), StoreError> {
        self.set_account_status_audited(id, status, None, now).await
    }

    /// Suspend or reactivate and write `audit`, in one transaction.
    pub async fn set_account_status_audited(
        &self,
        id: i64,
        status: AccountStatus,
        audit: Option<&Audit>,
        now: i64,
    ) -> Result<(), StoreError> {
        let s = match status {
            AccountStatus::Active => "active",
            AccountStatus::Suspended => "suspended",
        };
        in_tx!(self, tx => {
            let n = sqlx::query("UPDATE accounts SET status = $2 WHERE id = $1")
                .bind(id).bind(s).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            record_change!(tx, ChangeKind::Account, id.to_string(), now);
            record_audit_opt!(tx, audit, now);
        });
        Ok(())
    }
}

impl Store {
    /// Set a new password and end everything the old one could have handed out. Sessions of the
    /// account end first (all but `keep_session`, the one that changed it: a failure after this
    /// leaves the user logged out, never the reverse); then, in one transaction, the hash is
    /// replaced, **every personal access token is revoked** (an audit row each), every unused
    /// password-reset and email-change link is voided, and the event is audited. Returns how many
    /// tokens were revoked. A deleted or unknown account is [`StoreError::NotFound`].
    pub async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        event: PasswordEvent,
        keep_session: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.delete_account_sessions(id, keep_session).await?;
        let target = format!("account:{id}");
        Ok(in_tx!(self, tx => {
            let n = sqlx::query("UPDATE accounts SET password_hash = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id).bind(password_hash).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            let revoked: Vec<(i64, String)> = sqlx::query_as(
                "UPDATE api_tokens SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL RETURNING id, display_prefix")
                .bind(id).bind(now).fetch_all(&mut *tx).await?;
            for (token_id, prefix) in &revoked {
                let detail = format!("{prefix}… on {}", event.as_str());
                crate::audit::record_audit!(tx, crate::Audit::new(Some(id), "token.revoke", format!("token:{token_id}"), detail), now);
            }
            sqlx::query("UPDATE account_tokens SET used_at = $2
                         WHERE account_id = $1 AND used_at IS NULL AND purpose IN ('reset_password', 'change_email')")
                .bind(id).bind(now).execute(&mut *tx).await?;
            let detail = format!("{} personal access tokens revoked", revoked.len());
            crate::audit::record_audit!(tx, crate::Audit::new(Some(id), event.audit_action(), target.as_str(), detail), now);
            revoked.len() as u64
        }))
    }

    /// Move the account to `email` and mark it verified (the caller proved control of it); every
    /// unused password-reset and email-change link (sent to the old address, or for another new
    /// one) is voided in the same transaction, and the change audited. An address another account
    /// holds is [`StoreError::Conflict`] and changes nothing.
    pub async fn change_email(&self, id: i64, email: &Email, now: i64) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let n = sqlx::query("UPDATE accounts SET email = $2, email_verified_at = $3 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id).bind(email.as_str()).bind(now).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("UPDATE account_tokens SET used_at = $2
                         WHERE account_id = $1 AND used_at IS NULL AND purpose IN ('reset_password', 'change_email')")
                .bind(id).bind(now).execute(&mut *tx).await?;
            crate::audit::record_audit!(tx, crate::Audit::new(Some(id), "email.change", format!("account:{id}"), ""), now);
        });
        Ok(())
    }

    /// Soft-delete an account: revoke every key of every app (with change-log records, so
    /// gateways refuse them), anonymise the email, make the password unusable, suspend, set
    /// `deleted_at`, void its mailed tokens. Apps, usage and invoices stay for the books.
    /// `audit` is written in the same transaction.
    pub async fn delete_account(&self, id: i64, audit: &Audit, now: i64) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let n = sqlx::query(
                "UPDATE accounts SET email = $2, password_hash = '!', status = 'suspended', deleted_at = $3
                 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id).bind(format!("deleted-{id}@deleted.invalid")).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            let revoked: Vec<(Vec<u8>,)> = sqlx::query_as(
                "UPDATE api_keys SET status = 'revoked'
                 WHERE status <> 'revoked' AND app_id IN (SELECT id FROM apps WHERE account_id = $1)
                 RETURNING key_hash")
                .bind(id).fetch_all(&mut *tx).await?;
            for (hash,) in revoked {
                record_change!(tx, ChangeKind::Key, hex::encode(hash), now);
            }
            sqlx::query("UPDATE account_tokens SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL")
                .bind(id).bind(now).execute(&mut *tx).await?;
            record_change!(tx, ChangeKind::Account, id.to_string(), now);
            record_audit!(tx, audit, now);
        });
        Ok(())
    }
}

/// Why a password is being set ([`Store::set_password`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordEvent {
    /// Through an emailed reset link (the old password is not known).
    Reset,
    /// By the logged-in owner, with the current password.
    Change,
}

impl PasswordEvent {
    fn as_str(self) -> &'static str {
        match self {
            PasswordEvent::Reset => "password reset",
            PasswordEvent::Change => "password change",
        }
    }
    fn audit_action(self) -> &'static str {
        match self {
            PasswordEvent::Reset => "password.reset",
            PasswordEvent::Change => "password.change",
        }
    }
}

impl Store {
    /// The account's password hash (for re-authentication).
    pub async fn password_hash(&self, id: i64) -> Result<String, StoreError> {
        let row: Option<(String,)> = on_pool!(self, p => sqlx::query_as("SELECT password_hash FROM accounts WHERE id = $1")
            .bind(id).fetch_optional(p).await?);
        row.map(|r| r.0).ok_or(StoreError::NotFound)
    }
}
