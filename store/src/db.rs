use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::StoreError;

/// Which database is behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (production).
    Postgres,
    /// SQLite file (embedded default).
    Sqlite,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        })
    }
}

#[derive(Clone)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Run the same generic sqlx code against whichever pool the store holds.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::db::Pool::Postgres($pool) => $body,
            $crate::db::Pool::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Begin a transaction on either backend, run `$body` with `$tx` bound to it, commit.
macro_rules! in_tx {
    ($store:expr, $tx:ident => $body:expr) => {
        match &$store.pool {
            $crate::db::Pool::Postgres(p) => {
                let mut $tx = p.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::db::Pool::Sqlite(p) => {
                let mut $tx = p.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}
pub(crate) use in_tx;

/// The database: a connection pool for PostgreSQL or SQLite. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
}

// Hand-written so that connection options (which hold the password) never reach a log.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.backend())
    }
}

fn migration(version: i64, name: &'static str, sql: &'static str) -> Migration {
    Migration::new(version, name.into(), MigrationType::Simple, sql.into(), false)
}

fn migrator(backend: Backend) -> Migrator {
    // One entry per file, in order; each area of the product owns its file. The test
    // `every_migration_file_is_listed` fails when a file in migrations/ is missing here.
    macro_rules! embedded {
        ($dir:literal) => {
            vec![
                migration(1, "schema v1", include_str!(concat!("../../migrations/", $dir, "/0001_schema_v1.sql"))),
                migration(2, "accounts", include_str!(concat!("../../migrations/", $dir, "/0002_accounts.sql"))),
                migration(3, "admin", include_str!(concat!("../../migrations/", $dir, "/0003_admin.sql"))),
                migration(4, "api tokens", include_str!(concat!("../../migrations/", $dir, "/0004_api_tokens.sql"))),
                migration(5, "billing", include_str!(concat!("../../migrations/", $dir, "/0005_billing.sql"))),
                migration(6, "gateway", include_str!(concat!("../../migrations/", $dir, "/0006_gateway.sql"))),
                migration(7, "stripe", include_str!(concat!("../../migrations/", $dir, "/0007_stripe.sql"))),
                migration(8, "ledger revision", include_str!(concat!("../../migrations/", $dir, "/0008_ledger_revision.sql"))),
                migration(13, "session account", include_str!(concat!("../../migrations/", $dir, "/0013_session_account.sql"))),
                migration(14, "usage daily", include_str!(concat!("../../migrations/", $dir, "/0014_usage_daily.sql"))),
                migration(20, "stripe mirror", include_str!(concat!("../../migrations/", $dir, "/0020_stripe_mirror.sql"))),
                migration(30, "alerts and webhooks", include_str!(concat!("../../migrations/", $dir, "/0030_alerts_webhooks.sql"))),
                migration(35, "token scopes", include_str!(concat!("../../migrations/", $dir, "/0035_token_scopes.sql"))),
                migration(36, "stripe credit notes", include_str!(concat!("../../migrations/", $dir, "/0036_stripe_credit_notes.sql"))),
                migration(40, "analytics", include_str!(concat!("../../migrations/", $dir, "/0040_analytics.sql"))),
            ]
        };
    }
    let migrations = match backend {
        Backend::Postgres => embedded!("postgres"),
        Backend::Sqlite => embedded!("sqlite"),
    };
    // The fields are what `sqlx::migrate!` fills in; built by hand so the SQL is embedded in the
    // binary without compiling sqlx's query macros (sqlx is pinned to 0.8.6).
    Migrator { migrations: migrations.into(), ignore_missing: false, locking: true, no_tx: false }
}

impl Store {
    /// Connect to `postgres://…` or `sqlite:…` (the SQLite file is created if missing).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            Pool::Postgres(PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(5)).connect_with(opts).await?)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // 1 MiB of page cache per connection instead of 2 MiB: the hot data lives in the
                // gateway's own caches, and eight connections' caches add up in RSS.
                .pragma("cache_size", "-1024");
            Pool::Sqlite(SqlitePoolOptions::new().max_connections(8).acquire_timeout(Duration::from_secs(10)).connect_with(opts).await?)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        Ok(Store { pool })
    }

    /// Apply pending migrations. Safe to run concurrently from several processes.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let m = migrator(self.backend());
        match &self.pool {
            Pool::Postgres(p) => m.run(p).await?,
            Pool::Sqlite(p) => m.run(p).await?,
        }
        Ok(())
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// One round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await?.rows_affected());
        Ok(())
    }

    /// Close all connections.
    pub async fn close(&self) {
        on_pool!(self, p => p.close().await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(version, sql)` of every `NNNN_name.sql` in `migrations/{dir}`, by version.
    fn files(dir: &str) -> Vec<(i64, String)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(dir);
        let mut out: Vec<(i64, String)> = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .map(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).expect("UTF-8 name").to_owned();
                let version = name.split('_').next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name}: no NNNN_ prefix"));
                (version, std::fs::read_to_string(&p).expect("readable migration"))
            })
            .collect();
        out.sort_by_key(|(v, _)| *v);
        out
    }

    /// A new file left off the hand-written list would be silently skipped by `migrate`: the
    /// list must be exactly the directory, file for file and byte for byte.
    #[test]
    fn every_migration_file_is_listed() {
        for (backend, dir) in [(Backend::Postgres, "postgres"), (Backend::Sqlite, "sqlite")] {
            let listed: Vec<(i64, String)> = migrator(backend).iter().map(|m| (m.version, m.sql.to_string())).collect();
            let on_disk = files(dir);
            let versions = |v: &[(i64, String)]| v.iter().map(|(n, _)| *n).collect::<Vec<_>>();
            assert_eq!(versions(&listed), versions(&on_disk), "migrations/{dir} and the list in store/src/db.rs differ");
            assert!(listed == on_disk, "migrations/{dir}: a listed migration's SQL is not its file's");
        }
        assert_eq!(files("postgres").len(), files("sqlite").len(), "both backends have the same migrations");
    }
}
