//! Single-use, expiring, purpose-bound tokens mailed to developers: email verification, password
//! reset, email change. The token itself (32 random bytes, hex) only ever exists in the email;
//! the database keeps its SHA-256, so a database leak yields no usable link.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::{in_tx, on_pool};
use crate::{Audit, Store, StoreError};

/// What a token may be used for. A token of one purpose is refused for any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Prove control of the signup address.
    VerifyEmail,
    /// Set a new password without the old one.
    ResetPassword,
    /// Move the account to `new_email` (the token was sent there).
    ChangeEmail,
}

impl TokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
            TokenPurpose::ChangeEmail => "change_email",
        }
    }

    /// How long a token of this purpose stays valid, seconds.
    pub fn ttl(self) -> i64 {
        match self {
            TokenPurpose::VerifyEmail | TokenPurpose::ChangeEmail => 24 * 3600,
            TokenPurpose::ResetPassword => 3600,
        }
    }
}

/// A freshly issued token. `Debug` never prints the secret.
pub struct IssuedToken(String);

impl IssuedToken {
    /// The secret, for the link in the email only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedToken([redacted])")
    }
}

/// What a valid token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The account it was issued for.
    pub account_id: i64,
    /// For [`TokenPurpose::ChangeEmail`]: the address to move to.
    pub new_email: Option<String>,
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

impl Store {
    /// Issue a token for `account_id`, valid for [`TokenPurpose::ttl`] from `now`.
    pub async fn issue_token(
        &self,
        account_id: i64,
        purpose: TokenPurpose,
        new_email: Option<&str>,
        now: i64,
    ) -> Result<IssuedToken, StoreError> {
        self.issue_token_audited(account_id, purpose, new_email, None, now).await
    }

    /// [`Store::issue_token`] and `audit`, in one transaction.
    pub async fn issue_token_audited(
        &self,
        account_id: i64,
        purpose: TokenPurpose,
        new_email: Option<&str>,
        audit: Option<&Audit>,
        now: i64,
    ) -> Result<IssuedToken, StoreError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        in_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO account_tokens (account_id, purpose, token_hash, new_email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(account_id).bind(purpose.as_str()).bind(token_hash(&token)).bind(new_email).bind(now).bind(now + purpose.ttl())
                .execute(&mut *tx).await?;
            crate::audit::record_audit_opt!(tx, audit, now);
        });
        Ok(IssuedToken(token))
    }

    /// Whether `token` is currently valid for `purpose`, without using it (for the GET page that
    /// shows the confirm button).
    pub async fn peek_token(&self, token: &str, purpose: TokenPurpose, now: i64) -> Result<Option<TokenGrant>, StoreError> {
        let row: Option<(i64, Option<String>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT account_id, new_email FROM account_tokens WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3")
            .bind(token_hash(token)).bind(purpose.as_str()).bind(now).fetch_optional(p).await?);
        Ok(row.map(|(account_id, new_email)| TokenGrant { account_id, new_email }))
    }

    /// Use `token` for `purpose`: at most one caller ever gets `Some` for a token (the update is
    /// conditional on `used_at IS NULL`), and only before it expires.
    pub async fn consume_token(&self, token: &str, purpose: TokenPurpose, now: i64) -> Result<Option<TokenGrant>, StoreError> {
        let row: Option<(i64, Option<String>)> = on_pool!(self, p => sqlx::query_as(
            "UPDATE account_tokens SET used_at = $3
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
             RETURNING account_id, new_email")
            .bind(token_hash(token)).bind(purpose.as_str()).bind(now).fetch_optional(p).await?);
        Ok(row.map(|(account_id, new_email)| TokenGrant { account_id, new_email }))
    }

    /// Use an email-verification `token` and mark its account's email verified, audited
    /// (`email.verify`), in one transaction. The account's id, or `None` for a dead link (nothing
    /// changes).
    pub async fn verify_email(&self, token: &str, now: i64) -> Result<Option<i64>, StoreError> {
        Ok(in_tx!(self, tx => {
            let row: Option<(i64,)> = sqlx::query_as(
                "UPDATE account_tokens SET used_at = $3
                 WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
                 RETURNING account_id")
                .bind(token_hash(token)).bind(TokenPurpose::VerifyEmail.as_str()).bind(now).fetch_optional(&mut *tx).await?;
            if let Some((id,)) = row {
                sqlx::query("UPDATE accounts SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1")
                    .bind(id).bind(now).execute(&mut *tx).await?;
                crate::audit::record_audit!(tx, Audit::new(Some(id), "email.verify", format!("account:{id}"), ""), now);
            }
            row.map(|(id,)| id)
        }))
    }

    /// Void every unused token of `purpose` for the account (e.g. older reset links once one
    /// was used).
    pub async fn void_tokens(&self, account_id: i64, purpose: TokenPurpose, now: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self, p => sqlx::query(
            "UPDATE account_tokens SET used_at = $3 WHERE account_id = $1 AND purpose = $2 AND used_at IS NULL")
            .bind(account_id).bind(purpose.as_str()).bind(now).execute(p).await?.rows_affected()))
    }
}
