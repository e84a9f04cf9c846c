//! Measurement (issue 18), not a check: the analytics queries over a year of data for 100 APIs ×
//! 50 operations × 1,000 consumers on PostgreSQL. Ignored by default; run with
//!
//! ```text
//! cargo test -p turnpike-store --test it analytics_perf -- --ignored --nocapture
//! ```
//!
//! Seeded sparsely, the way consumers call APIs: each of the 1,000 consumers calls 2 APIs and 4
//! operations of each (8,000 consumer × operation pairs over 100 APIs and 50 operation names),
//! on about half of the days, with 6 latency buckets per row. A year of that is written to the
//! daily rollup (what whole days are read from; ~1.46 M rows + ~8.8 M bucket rows) and the last
//! 48 hours to the hourly rows (what the partial days at a range's edges are read from), and both
//! summed over consumers into the `analytics_ops_*` rollups.

use std::time::Instant;

use turnpike_store::{AnalyticsFilter, Grouping};
use turnpike_testkit::TestDb;

const DAY: i64 = 86_400;
const NOW: i64 = 1_780_000_000;

const SEED: &[&str] = &[
    "INSERT INTO accounts (email, password_hash, role, created_at) SELECT 'c' || g || '@perf.test', 'x', 'developer', 0 FROM generate_series(1, 1000) g",
    "INSERT INTO apps (account_id, name, created_at) SELECT id, 'app' || id, 0 FROM accounts",
    "INSERT INTO api_keys (app_id, name, display_prefix, key_hash, created_at) SELECT id, 'k', 'tp_live_x', sha256(id::text::bytea), 0 FROM apps",
    "INSERT INTO apis (slug, name, route_prefix, upstreams, visibility, created_at, updated_at)
        SELECT 'perf' || g, 'Perf ' || g, '/perf' || g, '[]', 'public', 0, 0 FROM generate_series(0, 99) g",
    // 8,000 consumer × operation pairs, each on ~half of 365 days.
    "CREATE TEMP TABLE pairs AS SELECT k.id AS key_id, (SELECT id FROM apis ORDER BY id OFFSET ((k.id * 7 + j * 13) % 100) LIMIT 1) AS api_id,
        'GET /r' || ((k.id + j * 3 + o * 11) % 50) || '/{id}' AS operation
     FROM api_keys k CROSS JOIN generate_series(0, 1) j CROSS JOIN generate_series(0, 3) o",
    "INSERT INTO analytics_daily (api_id, day, operation, key_id, requests, status_2xx, status_3xx, status_4xx, status_5xx, latency_us_sum)
     SELECT api_id, d.day, operation, key_id, r, r - r / 20 - r / 50, 0, r / 20, r / 50, r * 20000
     FROM pairs CROSS JOIN LATERAL (SELECT (1780000000 - 1780000000 % 86400) - dd * 86400 AS day, 1 + (abs(hashtext(operation || key_id || dd)) % 400) AS r
        FROM generate_series(1, 365) dd) d
     WHERE abs(hashtext(key_id || operation || d.day)) % 2 = 0",
    "INSERT INTO analytics_latency_daily (api_id, day, operation, key_id, bucket, count)
     SELECT api_id, day, operation, key_id, 100 + b * 4 + key_id % 4, requests / 6 + 1 FROM analytics_daily CROSS JOIN generate_series(0, 5) b",
    "INSERT INTO analytics_hourly (api_id, hour, operation, key_id, source, requests, status_2xx, status_3xx, status_4xx, status_5xx, latency_us_sum, updated_at)
     SELECT api_id, h.hour, operation, key_id, 'gw1', 17, 15, 0, 1, 1, 340000, 0
     FROM pairs CROSS JOIN LATERAL (SELECT (1780000000 - 1780000000 % 3600) - hh * 3600 AS hour FROM generate_series(0, 47) hh) h
     WHERE abs(hashtext(key_id || operation || h.hour)) % 2 = 0",
    "INSERT INTO analytics_latency_hourly (api_id, hour, operation, key_id, source, bucket, count)
     SELECT api_id, hour, operation, key_id, source, 100 + b * 4, 3 FROM analytics_hourly CROSS JOIN generate_series(0, 5) b",
    // The consumer-less rollups the flush maintains beside them.
    "INSERT INTO analytics_ops_daily SELECT api_id, day, operation, SUM(requests), SUM(status_2xx), SUM(status_3xx), SUM(status_4xx),
        SUM(status_5xx), SUM(latency_us_sum) FROM analytics_daily GROUP BY api_id, day, operation",
    "INSERT INTO analytics_ops_latency_daily SELECT api_id, day, operation, bucket, SUM(count) FROM analytics_latency_daily
        GROUP BY api_id, day, operation, bucket",
    "INSERT INTO analytics_ops_hourly SELECT api_id, hour, operation, SUM(requests), SUM(status_2xx), SUM(status_3xx), SUM(status_4xx),
        SUM(status_5xx), SUM(latency_us_sum) FROM analytics_hourly GROUP BY api_id, hour, operation",
    "INSERT INTO analytics_ops_latency_hourly SELECT api_id, hour, operation, bucket, SUM(count) FROM analytics_latency_hourly
        GROUP BY api_id, hour, operation, bucket",
    "ANALYZE",
];

/// p50 and p95 of `n` timings (ms).
fn quantiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    (at(0.5), at(0.95))
}

#[tokio::test]
#[ignore = "a measurement: seeds ~12 M rows on PostgreSQL"]
async fn analytics_perf() {
    let Some(db) = TestDb::postgres("analytics_perf").await else { return };
    // One connection: the seed's pairs are a temporary table.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let started = Instant::now();
    for stmt in SEED {
        sqlx::query(stmt).execute(&mut *conn).await.unwrap();
    }
    drop(conn);
    let rows: (i64, i64) = sqlx::query_as("SELECT (SELECT COUNT(*) FROM analytics_daily), (SELECT COUNT(*) FROM analytics_latency_daily)")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!("seeded in {:.0} s: {} daily rows, {} daily latency rows", started.elapsed().as_secs_f64(), rows.0, rows.1);
    let apis: Vec<(i64,)> = sqlx::query_as("SELECT id FROM apis ORDER BY id").fetch_all(&pool).await.unwrap();
    let end = NOW - NOW % 3600 + 3600;
    let s = &db.store;
    // What the pages ask: an API over 30 days by operation and by consumer, its totals and the
    // period before; all APIs over 24 hours; an API over a whole year by operation.
    let cases: [(&str, i64, Option<Grouping>, bool); 5] = [
        ("API, 30 d, by operation", 30 * DAY, Some(Grouping::Operation), true),
        ("API, 30 d, by consumer", 30 * DAY, Some(Grouping::Consumer), true),
        ("API, 30 d, totals", 30 * DAY, None, true),
        ("all APIs, 24 h, by API", DAY, Some(Grouping::Api), false),
        ("API, 365 d, by operation", 365 * DAY, Some(Grouping::Operation), true),
    ];
    for (name, span, grouping, per_api) in cases {
        let mut ms = Vec::new();
        for i in 0..40 {
            let f =
                AnalyticsFilter { from: end - span, to: end, api_id: per_api.then(|| apis[(i * 37) % apis.len()].0), ..Default::default() };
            let t = Instant::now();
            let lines = match grouping {
                Some(g) => s.analytics(&f, g).await.unwrap().len(),
                None => usize::from(s.analytics_total(&f).await.unwrap().traffic.requests > 0),
            };
            assert!(lines > 0, "{name}");
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (p50, p95) = quantiles(ms);
        println!("{name:<28} p50 {p50:7.1} ms   p95 {p95:7.1} ms");
    }
}
