//! Test support shared by every crate's integration tests.
//!
//! Tests that need PostgreSQL or Redis use the servers on their standard loopback ports
//! (override with `TURNPIKE_TEST_POSTGRES_URL` / `TURNPIKE_TEST_REDIS_URL`). Where none answers,
//! the test prints a loud `SKIPPED` line and passes, unless `TURNPIKE_REQUIRE_SERVICES=1`, in which
//! case the skip is a failure.

use std::sync::atomic::{AtomicU32, Ordering};

use rand::Rng;
use sqlx::Connection;
use turnpike_store::{Backend, Store};

/// Admin URL of the PostgreSQL server used by tests.
pub fn postgres_admin_url() -> String {
    std::env::var("TURNPIKE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// URL of the Redis server used by tests.
pub fn redis_url() -> String {
    std::env::var("TURNPIKE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// Whether a missing service must fail the test.
pub fn services_required() -> bool {
    std::env::var("TURNPIKE_REQUIRE_SERVICES").map(|v| v == "1" || v == "true").unwrap_or(false)
}

/// Report a missing service: a failure when services are required, a loud skip otherwise.
pub fn skip(service: &str, test: &str, why: &str) {
    if services_required() {
        panic!("{service} is required (TURNPIKE_REQUIRE_SERVICES=1) but unreachable for {test}: {why}");
    }
    // Written to the stderr handle, not with eprintln!, which the test harness captures: a skip
    // must be visible even when the test passes.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED [{service}] {test}: {why} (set TURNPIKE_REQUIRE_SERVICES=1 to fail instead) ***\n");
}

/// A fresh, migrated database that disappears when dropped.
pub struct TestDb {
    /// The store connected to it.
    pub store: Store,
    /// Its URL (for starting other processes on it).
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// A temporary SQLite file.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/turnpike.db", dir.path().display());
        let store = Store::connect(&url).await.expect("open sqlite");
        store.migrate().await.expect("migrate sqlite");
        TestDb { store, url, pg_name: None, _dir: Some(dir) }
    }

    /// A new database on the test PostgreSQL server, or `None` (after a loud skip) if it is down.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let admin = postgres_admin_url();
        let mut conn = match tokio::time::timeout(std::time::Duration::from_secs(5), sqlx::PgConnection::connect(&admin)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                skip("postgres", test, &e.to_string());
                return None;
            }
            Err(_) => {
                skip("postgres", test, "connect timed out");
                return None;
            }
        };
        let name =
            format!("tp_test_{}_{}_{:08x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), rand::thread_rng().gen::<u32>());
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
        let _ = conn.close().await;
        let (base, _) = admin.rsplit_once('/').expect("admin url has a database");
        let url = format!("{base}/{name}");
        let store = Store::connect(&url).await.expect("connect test database");
        store.migrate().await.expect("migrate postgres");
        Some(TestDb { store, url, pg_name: Some(name), _dir: None })
    }

    /// The database at `url` (a server the test runs itself), migrated; left as it is when
    /// dropped.
    pub async fn existing(url: &str) -> TestDb {
        let store = Store::connect(url).await.expect("connect");
        store.migrate().await.expect("migrate");
        TestDb { store, url: url.to_owned(), pg_name: None, _dir: None }
    }

    /// Both backends (PostgreSQL only if reachable), for suites that must pass on each.
    pub async fn each(test: &str) -> Vec<TestDb> {
        let mut v = vec![TestDb::sqlite().await];
        if let Some(pg) = TestDb::postgres(test).await {
            v.push(pg);
        }
        v
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        // Drop runs inside the test's (blocked) runtime, so the pool cannot be closed politely;
        // FORCE terminates its connections. The cleanup runs on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await;
                }
            });
        })
        .join();
    }
}

/// A unique key prefix on the test Redis, or `None` (after a loud skip) if Redis is down.
pub async fn redis_prefix(test: &str) -> Option<(String, String)> {
    let url = redis_url();
    let ok = async {
        let client = redis::Client::open(url.as_str())?;
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), ok).await {
        Ok(Ok(_)) => Some((url, format!("tptest{}x{:08x}", std::process::id(), rand::thread_rng().gen::<u32>()))),
        Ok(Err(e)) => {
            skip("redis", test, &e.to_string());
            None
        }
        Err(_) => {
            skip("redis", test, "connect timed out");
            None
        }
    }
}

/// A plan given to new apps automatically, free of charge.
pub fn default_plan(slug: &str, rate_per_second: i64, burst: i64, monthly_quota: Option<i64>) -> turnpike_store::NewPlan {
    turnpike_store::NewPlan {
        slug: slug.into(),
        name: slug.into(),
        rate_per_second,
        burst,
        monthly_quota,
        currency: "usd".into(),
        flat_price_minor: 0,
        unit_price_minor_per_1000: 0,
        is_default: true,
    }
}

/// The seeded demo's Free plan: 10/s, burst 20, 1,000 a month.
pub fn free_plan() -> turnpike_store::NewPlan {
    turnpike_store::NewPlan { name: "Free".into(), ..default_plan("free", 10, 20, Some(1000)) }
}

/// Publish an API at `/{slug}` in front of `upstreams` (url, weight) with one plan; returns the
/// API and plan ids.
pub async fn publish(
    store: &Store,
    slug: &str,
    name: &str,
    upstreams: &[(&str, u32)],
    visibility: turnpike_store::Visibility,
    plan: &turnpike_store::NewPlan,
    now: i64,
) -> (i64, i64) {
    let api = store
        .create_api(
            &turnpike_store::NewApi {
                slug: slug.into(),
                name: name.into(),
                description: format!("{name} returns what you send."),
                route_prefix: format!("/{slug}"),
                host: None,
                upstreams: upstreams.iter().map(|(url, weight)| turnpike_store::Upstream { url: (*url).into(), weight: *weight }).collect(),
                openapi: Some(r#"{"openapi":"3.1.0","info":{"title":"x","version":"1"},"paths":{}}"#.into()),
                visibility,
            },
            now,
        )
        .await
        .expect("create api");
    let plan = store.create_plan(api.id, plan, now).await.expect("create plan");
    (api.id, plan.id)
}

/// A fake Stripe HTTP server for the Stripe bridge tests.
pub mod fake_stripe;
