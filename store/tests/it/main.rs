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
mod keys_and_apps;
mod sessions;
mod usage;

use turnpike_store::{NewApi, NewPlan, Store, Upstream, Visibility};

pub(crate) const NOW: i64 = 1_780_000_000;

pub(crate) async fn seed_api(store: &Store, slug: &str, visibility: Visibility) -> (i64, i64) {
    let api = store
        .create_api(
            &NewApi {
                slug: slug.into(),
                name: slug.into(),
                description: String::new(),
                route_prefix: format!("/{slug}"),
                host: None,
                upstreams: vec![Upstream { url: "http://127.0.0.1:1".into(), weight: 1 }],
                openapi: None,
                visibility,
            },
            NOW,
        )
        .await
        .unwrap();
    let plan = store
        .create_plan(
            api.id,
            &NewPlan {
                slug: "free".into(),
                name: "Free".into(),
                rate_per_second: 10,
                burst: 20,
                monthly_quota: Some(1000),
                currency: "usd".into(),
                flat_price_minor: 0,
                unit_price_minor_per_1000: 0,
                is_default: true,
            },
            NOW,
        )
        .await
        .unwrap();
    (api.id, plan.id)
}
