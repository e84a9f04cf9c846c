//! Personal access tokens for the portal's JSON API: `tp_pat_<43 base62 chars>` (256 random
//! bits). Only the SHA-256 of a token is stored; it is shown once, can expire, and is revocable.
//!
//! Also the few app and usage queries the JSON API needs beyond what the pages use.

use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::changes::{record_change, ChangeKind};
use crate::db::{in_tx, on_pool};
use crate::{Store, StoreError};

/// Every personal access token starts with this.
pub const PAT_PREFIX: &str = "tp_pat_";
const PAT_BODY_LEN: usize = 43;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A personal access token's secret. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonalToken(String);

impl std::fmt::Debug for PersonalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PersonalToken({}…)", self.display_prefix())
    }
}

impl PersonalToken {
    /// A new random token.
    pub fn generate() -> PersonalToken {
        let mut rng = rand::rngs::OsRng;
        let body: String = (0..PAT_BODY_LEN).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
        PersonalToken(format!("{PAT_PREFIX}{body}"))
    }

    /// A presented token, if it has the right shape (checked before any lookup).
    pub fn parse(presented: &str) -> Option<PersonalToken> {
        let body = presented.strip_prefix(PAT_PREFIX)?;
        (body.len() == PAT_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| PersonalToken(presented.to_owned()))
    }

    /// SHA-256 of the token: what the database stores.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The part safe to show: the prefix and the first four random characters.
    pub fn display_prefix(&self) -> String {
        self.0[..PAT_PREFIX.len() + 4].to_owned()
    }

    /// The secret itself, to show once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What a personal access token may do. A token holds one or more; the portal session holds all
/// that its account's role allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Scope {
    /// The developer JSON API (`/api/v1/…` outside `/admin`).
    #[serde(rename = "developer")]
    Developer,
    /// Read the admin JSON API (`GET /api/v1/admin/…`). Admin accounts only.
    #[serde(rename = "admin:read")]
    AdminRead,
    /// Change anything through the admin JSON API. Admin accounts only.
    #[serde(rename = "admin:write")]
    AdminWrite,
}

impl Scope {
    /// Every scope, in the order pages list them.
    pub const ALL: [Scope; 3] = [Scope::Developer, Scope::AdminRead, Scope::AdminWrite];

    /// The scope's name, as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Developer => "developer",
            Scope::AdminRead => "admin:read",
            Scope::AdminWrite => "admin:write",
        }
    }

    /// A scope by its name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether only an admin account may hold it.
    pub fn is_admin(self) -> bool {
        matches!(self, Scope::AdminRead | Scope::AdminWrite)
    }
}

/// A token's scopes: a non-empty set, stored space-separated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Scopes(std::collections::BTreeSet<Scope>);

impl Scopes {
    /// The scopes named in `names`; an unknown name, or none at all, is an error naming it.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        let mut set = std::collections::BTreeSet::new();
        for n in names {
            set.insert(Scope::parse(n).ok_or_else(|| format!("unknown scope `{n}` (expected developer, admin:read or admin:write)"))?);
        }
        if set.is_empty() {
            return Err("a token needs at least one scope".into());
        }
        Ok(Scopes(set))
    }

    /// Just `developer`: what tokens could do before scopes existed.
    pub fn developer() -> Scopes {
        Scopes([Scope::Developer].into())
    }

    /// Whether `scope` is among them. `admin:write` includes `admin:read`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.0.contains(&scope) || (scope == Scope::AdminRead && self.0.contains(&Scope::AdminWrite))
    }

    /// Whether any needs an admin account.
    pub fn any_admin(&self) -> bool {
        self.0.iter().any(|s| s.is_admin())
    }

    /// The names, space-separated (as stored).
    pub fn to_text(&self) -> String {
        self.0.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }

    /// Read back what [`Scopes::to_text`] stored.
    pub fn from_text(text: &str) -> Result<Scopes, StoreError> {
        Scopes::parse(text.split_whitespace()).map_err(StoreError::Corrupt)
    }

    /// The scopes, in order.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
}

/// A personal access token as its owner sees it: never the secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PatRecord {
    /// Id.
    pub id: i64,
    /// Owner.
    pub account_id: i64,
    /// Label.
    pub name: String,
    /// First characters of the token, safe to show.
    pub display_prefix: String,
    /// Created (unix seconds).
    pub created_at: i64,
    /// Last API request made with it (unix seconds).
    pub last_used_at: Option<i64>,
    /// Refused from this instant on, if set (unix seconds).
    pub expires_at: Option<i64>,
    /// Revoked at (unix seconds); refused since.
    pub revoked_at: Option<i64>,
    /// What it may do, space-separated ([`Scopes::from_text`]).
    pub scopes: String,
}

impl PatRecord {
    /// Whether the token is accepted at `now`.
    pub fn is_usable(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

const PAT_COLUMNS: &str = "id, account_id, name, display_prefix, created_at, last_used_at, expires_at, revoked_at, scopes";

/// Usage of one key over a range, by status class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct KeyUsage {
    /// Key id.
    pub key_id: i64,
    /// Requests admitted (the billable count).
    pub admitted: i64,
    /// Responses 2xx.
    pub status_2xx: i64,
    /// Responses 3xx.
    pub status_3xx: i64,
    /// Responses 4xx.
    pub status_4xx: i64,
    /// Responses 5xx.
    pub status_5xx: i64,
}

impl Store {
    /// Store a new token's hash for `account_id` and audit it (`actor`: who asked; `None` for the
    /// operator's CLI) in one transaction. **Only a verified account gets tokens**, for the page,
    /// the JSON API and the CLI alike (the rule API keys follow too: `require_credential_holder`):
    /// an unverified or deleted account is [`StoreError::Unverified`]. **Admin scopes only for an
    /// admin account**, checked in the same transaction: otherwise [`StoreError::AdminOnly`].
    /// Either way nothing is stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_pat(
        &self,
        account_id: i64,
        name: &str,
        token: &PersonalToken,
        scopes: &Scopes,
        expires_at: Option<i64>,
        actor: Option<i64>,
        now: i64,
    ) -> Result<PatRecord, StoreError> {
        Ok(in_tx!(self, tx => {
            crate::accounts::require_credential_holder!(tx, account_id);
            if scopes.any_admin() {
                let admin: Option<(i64,)> = sqlx::query_as("SELECT id FROM accounts WHERE id = $1 AND role = 'admin'")
                    .bind(account_id).fetch_optional(&mut *tx).await?;
                if admin.is_none() {
                    return Err(StoreError::AdminOnly);
                }
            }
            let row: PatRecord = sqlx::query_as(&format!(
                "INSERT INTO api_tokens (account_id, name, display_prefix, token_hash, created_at, expires_at, scopes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {PAT_COLUMNS}"))
                .bind(account_id).bind(name).bind(token.display_prefix()).bind(token.hash().to_vec()).bind(now).bind(expires_at)
                .bind(scopes.to_text())
                .fetch_one(&mut *tx).await?;
            let via = if actor.is_none() { " via cli" } else { "" };
            let detail = format!("{} ({}…) scopes: {}{via}", row.name, row.display_prefix, row.scopes);
            crate::audit::record_audit!(tx, crate::Audit::new(actor, "token.create", format!("token:{}", row.id), detail), now);
            row
        }))
    }

    /// The account's tokens, newest first.
    pub async fn list_pats(&self, account_id: i64) -> Result<Vec<PatRecord>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PAT_COLUMNS} FROM api_tokens WHERE account_id = $1 ORDER BY id DESC"))
            .bind(account_id).fetch_all(p).await?))
    }

    /// Revoke one of the account's tokens. Revoking twice keeps the first instant; another
    /// account's token is [`StoreError::NotFound`].
    pub async fn revoke_pat(&self, account_id: i64, token_id: i64, audit: &crate::Audit, now: i64) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let n = sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND account_id = $2")
                .bind(token_id).bind(account_id).bind(now).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            crate::audit::record_audit!(tx, audit, now);
        });
        Ok(())
    }

    /// The owner's account id and the scopes of a usable (not revoked, not expired) token with
    /// this hash, and its last use recorded as `now`.
    pub async fn use_pat(&self, hash: &[u8; 32], now: i64) -> Result<Option<(i64, Scopes)>, StoreError> {
        let row: Option<(i64, i64, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT t.id, t.account_id, t.scopes FROM api_tokens t JOIN accounts a ON a.id = t.account_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)
               AND a.email_verified_at IS NOT NULL AND a.deleted_at IS NULL")
            .bind(hash.to_vec()).bind(now).fetch_optional(p).await?);
        let Some((id, account_id, scopes)) = row else { return Ok(None) };
        let scopes = Scopes::from_text(&scopes)?;
        on_pool!(self, p => sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)")
            .bind(id).bind(now).execute(p).await?.rows_affected());
        Ok(Some((account_id, scopes)))
    }

    /// Delete an app `account_id` owns, with its keys and subscriptions. Gateways are told about
    /// every key, so they refuse them at once. An app with metered usage or invoices is
    /// [`StoreError::Conflict`]: billing history is never deleted.
    pub async fn delete_app(&self, account_id: i64, app_id: i64, audit: &crate::Audit, now: i64) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let hashes: Vec<(Vec<u8>,)> = sqlx::query_as(
                "SELECT k.key_hash FROM api_keys k JOIN apps a ON a.id = k.app_id WHERE a.id = $1 AND a.account_id = $2")
                .bind(app_id).bind(account_id).fetch_all(&mut *tx).await?;
            // Metered usage and invoices are the owner's books: an app with any is kept (revoke its
            // keys or cancel its subscriptions instead).
            let history: Option<(i64,)> = sqlx::query_as(
                "SELECT CAST(1 AS BIGINT) FROM apps a WHERE a.id = $1 AND a.account_id = $2 AND (
                    EXISTS (SELECT 1 FROM usage_hourly u JOIN api_keys k ON k.id = u.key_id WHERE k.app_id = a.id)
                    OR EXISTS (SELECT 1 FROM invoices i JOIN subscriptions s ON s.id = i.subscription_id WHERE s.app_id = a.id))")
                .bind(app_id).bind(account_id).fetch_optional(&mut *tx).await?;
            if history.is_some() {
                return Err(StoreError::Conflict);
            }
            let n = sqlx::query("DELETE FROM apps WHERE id = $1 AND account_id = $2")
                .bind(app_id).bind(account_id).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            for (hash,) in hashes {
                record_change!(tx, ChangeKind::Key, hex::encode(hash), now);
            }
            record_change!(tx, ChangeKind::App, app_id.to_string(), now);
            crate::audit::record_audit!(tx, audit, now);
        });
        Ok(())
    }

    /// Per-key usage of an app's keys in `[from, to)` (hours), over all counter sources; keys
    /// without traffic are absent.
    pub async fn app_key_usage(&self, app_id: i64, from: i64, to: i64) -> Result<Vec<KeyUsage>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT u.key_id,
                    CAST(COALESCE(SUM(u.admitted), 0) AS BIGINT) AS admitted,
                    CAST(COALESCE(SUM(u.status_2xx), 0) AS BIGINT) AS status_2xx,
                    CAST(COALESCE(SUM(u.status_3xx), 0) AS BIGINT) AS status_3xx,
                    CAST(COALESCE(SUM(u.status_4xx), 0) AS BIGINT) AS status_4xx,
                    CAST(COALESCE(SUM(u.status_5xx), 0) AS BIGINT) AS status_5xx
             FROM usage_hourly u JOIN api_keys k ON k.id = u.key_id
             WHERE k.app_id = $1 AND u.hour >= $2 AND u.hour < $3 GROUP BY u.key_id ORDER BY u.key_id")
            .bind(app_id).bind(from).bind(to).fetch_all(p).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_hide() {
        let t = PersonalToken::generate();
        assert_eq!(PersonalToken::parse(t.expose()), Some(t.clone()));
        assert_ne!(t, PersonalToken::generate());
        assert!(!format!("{t:?}").contains(&t.expose()[12..]));
        for bad in ["", "tp_pat_", "tp_live_abc", &format!("{}!", &t.expose()[..t.expose().len() - 1]), &format!("{}a", t.expose())] {
            assert_eq!(PersonalToken::parse(bad), None, "{bad}");
        }
    }
}
