//! The store suite: every test runs on SQLite and on PostgreSQL as two tests named after the
//! backend (`…::sqlite`, `…::postgres`).

/// Runs `async fn $name(db: TestDb)` as two tests, `$name::sqlite` and `$name::postgres`, so
/// the test list names the backend each ran on. The PostgreSQL one skips loudly when no server
/// answers (and fails under `TURNPIKE_REQUIRE_SERVICES=1`).
#[macro_export]
macro_rules! on_each_backend {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(turnpike_testkit::TestDb::sqlite().await).await
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(db) = turnpike_testkit::TestDb::postgres(concat!(module_path!(), "::", stringify!($name))).await {
                    super::$name(db).await
                }
            }
        }
    };
}

mod accounts;
mod analytics;
mod analytics_perf;
mod credentials;
mod keys_and_apps;
mod sessions;
mod usage;
mod usage_rollup;

use turnpike_store::{Store, Visibility};

pub(crate) const NOW: i64 = 1_780_000_000;

pub(crate) async fn seed_api(store: &Store, slug: &str, visibility: Visibility) -> (i64, i64) {
    turnpike_testkit::publish(store, slug, slug, &[("http://127.0.0.1:1", 1)], visibility, &turnpike_testkit::free_plan(), NOW).await
}
