/// Errors from the store. `Conflict` is a unique-constraint violation, mapped from the database
/// rather than checked beforehand, so concurrent writers cannot race past it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist (or is not visible to the caller).
    #[error("not found")]
    NotFound,
    /// A unique constraint rejected the write; nothing was stored.
    #[error("already exists")]
    Conflict,
    /// The row changed since the caller read it (a concurrent write won); nothing was stored.
    /// Read it again and decide anew.
    #[error("changed meanwhile")]
    Stale,
    /// The account's email is not verified (or the account is deleted): it may not create
    /// credentials (personal access tokens, API keys) yet; nothing was stored.
    #[error("email not verified")]
    Unverified,
    /// Admin scopes were asked for a token of an account that is not an admin; nothing was stored.
    #[error("admin scopes need an admin account")]
    AdminOnly,
    /// The database URL is not one Turnpike understands.
    #[error("unsupported database url (expected postgres://… or sqlite:…)")]
    UnsupportedUrl,
    /// A stored value could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database did not answer within the caller's deadline.
    #[error("database timed out")]
    Timeout,
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(e),
        }
    }
}
