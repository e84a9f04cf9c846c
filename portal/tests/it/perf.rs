//! Measurements, ignored by default (they seed a million rows). Run with
//! `cargo test -p turnpike-portal --test it perf -- --ignored --nocapture`; it prints p50/p95
//! of `GET /dashboard` per database, the test process's CPU per request and each read's cost.
//!
//! Last run (2026-12-06 05:20 UTC, release build: `cargo test --release -p turnpike-portal --test
//! it perf -- --ignored --nocapture`, the shared 2-core machine at load average 4-5): SQLite p50
//! 19.1 ms, p95 40.9 ms (18 ms CPU per request, SQLite included); PostgreSQL p50 26.0 ms, p95
//! 39.2 ms (4 ms portal CPU per request): the goal (p95 < 50 ms) is met on both, with the page's
//! independent reads run at once. Before that (load 9-11): SQLite p95 80.0 ms, PostgreSQL p95
//! 124.8 ms. Before the daily rollup: SQLite p50 1.0 s, p95 1.2 s; PostgreSQL p50 544 ms, p95
//! 699 ms. More in the README ("Dashboard latency").

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use turnpike_store::clock::hour_start;
use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{Store, Visibility};

use crate::helpers::{element_text, seed_api, TestApp, NOW};

const APPS: usize = 50;
const APIS: usize = 3;
const HOURS: i64 = 365 * 24;

/// `APPS` apps of `email`, each subscribed to `APIS` public APIs with one key, and a year of
/// hourly usage rows ending at `NOW` for every key × API (one source): 1,314,000 rows.
async fn seed(app: &TestApp, email: &str) {
    let store: &Store = &app.store;
    for i in 0..APIS {
        seed_api(store, &format!("api{i}"), &format!("API {i}"), Visibility::Public).await;
    }
    let account = store.find_account_by_email(&Email::parse(email).unwrap()).await.unwrap().unwrap().0;
    for i in 0..APPS {
        let a = store.create_app(account.id, &format!("app {i}"), NOW - HOURS * 3600).await.unwrap();
        store.subscribe_defaults(a.id, NOW - HOURS * 3600).await.unwrap();
        store.create_key(a.id, "main", &ApiKey::generate(), NOW - HOURS * 3600).await.unwrap();
    }
    let first = hour_start(NOW) - (HOURS - 1) * 3600;
    let rows = "SELECT k.id, s.api_id, s.id, $1 + h.x * 3600, 'gw1', 10, 9, 0, 0, 1, 100, 1000, 50, $1
                FROM h, api_keys k JOIN subscriptions s ON s.app_id = k.app_id";
    let insert = "INSERT INTO usage_hourly (key_id, api_id, subscription_id, hour, source, admitted, status_2xx, status_3xx,
                  status_4xx, status_5xx, bytes_in, bytes_out, latency_ms_sum, updated_at)";
    if app.store.backend() == turnpike_store::Backend::Sqlite {
        let sql = format!("WITH RECURSIVE h(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM h WHERE x < {}) {insert} {rows}", HOURS - 1);
        let pool = sqlx::SqlitePool::connect(&app.db_url).await.unwrap();
        sqlx::query(&sql).bind(first).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let sql = format!("WITH h(x) AS (SELECT generate_series(0, {})) {insert} {rows}", HOURS - 1);
        let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
        sqlx::query(&sql).bind(first).execute(&pool).await.unwrap();
        pool.close().await;
    }
    // Rows written behind the store's back: derive the daily rollup as the flusher's upserts do.
    store.rebuild_usage_daily().await.unwrap();
    analyze(app).await;
}

async fn analyze(app: &TestApp) {
    if app.store.backend() == turnpike_store::Backend::Sqlite {
        let pool = sqlx::SqlitePool::connect(&app.db_url).await.unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
        pool.close().await;
    }
}

/// User + system CPU time of this process in clock ticks (1/100 s on Linux), 0 where
/// `/proc/self/stat` is not readable.
fn process_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// What each of the dashboard's reads costs, to see where the time goes.
async fn store_timings(app: &TestApp) {
    let s = &app.store;
    let account = s.find_account_by_email(&Email::parse("ada@example.com").unwrap()).await.unwrap().unwrap().0;
    let from = turnpike_portal::format::month_start(NOW);
    let f = turnpike_store::UsageFilter { account_id: account.id, ..Default::default() };
    let subs = s.account_subscriptions(account.id).await.unwrap();
    let windows: Vec<(i64, i64, i64)> = subs.iter().map(|x| (x.id, from, from + 31 * 86_400)).collect();
    macro_rules! time {
        ($name:literal, $e:expr) => {{
            let t = Instant::now();
            let _ = $e.await.unwrap();
            println!("  {} {:.1?}", $name, t.elapsed());
        }};
    }
    time!("account_usage", s.account_usage(account.id, from));
    time!("account_usage_by_app", s.account_usage_by_app(account.id, from));
    time!("account_keys", s.account_keys(account.id));
    time!("calls_by_hour", s.calls_by_hour(&f, hour_start(NOW) - 47 * 3600, hour_start(NOW) + 3600));
    time!("usage_by_day", s.usage_by_day(&f, from, from + 31 * 86_400));
    time!("subscriptions_usage", s.subscriptions_usage(&windows));
    time!("list_apis", s.list_apis());
    time!("list_all_plans", s.list_all_plans());
}

#[tokio::test]
#[ignore = "a measurement: seeds 1.3 million usage rows"]
async fn dashboard_latency_for_50_apps_3_apis_and_a_year_of_hourly_buckets() {
    for app in crate::helpers::each("perf_dashboard").await {
        let dev = app.developer("ada@example.com").await;
        let started = Instant::now();
        seed(&app, "ada@example.com").await;
        println!("{}: seeded in {:.1?}", app.store.backend(), started.elapsed());
        let mut times = Vec::new();
        let mut cpu_start = 0;
        for i in 0..40 {
            if i == 1 {
                cpu_start = process_cpu_ticks();
            }
            let t = Instant::now();
            let res = app.get(&dev, "/dashboard").await;
            assert_eq!(res.status(), StatusCode::OK);
            let html = res.text().await.unwrap();
            let elapsed = t.elapsed();
            if i == 0 {
                // 50 apps × 3 APIs × 10 calls for every hour of this month so far.
                let hours = (hour_start(NOW) - turnpike_portal::format::month_start(NOW)) / 3600 + 1;
                let expected = (APPS * APIS) as i64 * 10 * hours;
                assert_eq!(element_text(&html, "calls-this-month").map(|s| s.replace(',', "")), Some(expected.to_string()));
                continue; // warm-up
            }
            times.push(elapsed);
        }
        // CPU of this process (portal, client and, on SQLite, the database) per request: unlike
        // the wall clock it does not grow while other builds hold the machine's cores.
        let cpu_ms = (process_cpu_ticks() - cpu_start) * 10 / times.len() as u64;
        times.sort();
        store_timings(&app).await;
        println!(
            "{}: GET /dashboard over {} requests: p50 {:.1?}, p95 {:.1?}, max {:.1?}; test process CPU ≈ {cpu_ms} ms per request",
            app.store.backend(),
            times.len(),
            percentile(&times, 50),
            percentile(&times, 95),
            times[times.len() - 1]
        );
    }
}
