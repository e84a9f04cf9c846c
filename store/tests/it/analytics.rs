//! Owners' analytics: flushes are idempotent per source and add up over sources; every report
//! (any range, any grouping) equals the sum of the stored rows; percentiles from the merged
//! histograms are within the histogram's stated error of the exact ones from raw latencies.

use std::collections::HashMap;

use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::histogram::{bucket_of, RELATIVE_ERROR};
use turnpike_store::{AnalyticsFilter, AnalyticsRow, Grouping, Role, Store, Traffic, Visibility};
use turnpike_testkit::TestDb;

use crate::{seed_api, NOW};

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// A fixed-seed generator (xorshift): the same data on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Two APIs, two apps with a key each; returns `(api ids, (key id, app id) pairs)`.
async fn fixture(s: &Store) -> (Vec<i64>, Vec<(i64, i64)>) {
    let apis = vec![seed_api(s, "one", Visibility::Public).await.0, seed_api(s, "two", Visibility::Public).await.0];
    let acc = s.create_account(&Email::parse("owner@example.com").unwrap(), "h", Role::Developer, NOW).await.unwrap();
    let mut keys = Vec::new();
    for i in 0..2 {
        let app = s.create_app(acc.id, &format!("app{i}"), NOW).await.unwrap();
        keys.push((s.create_key(app.id, "k", &ApiKey::generate(), NOW).await.unwrap().id, app.id));
    }
    (apis, keys)
}

/// One raw call: key, API, operation, hour, status, latency (µs).
type Call<'a> = (i64, i64, &'a str, i64, u16, u64);

/// Key, API, operation, hour.
type Cell = (i64, i64, String, i64);

/// Raw latencies (µs) grouped as a gateway would: one row per cell and source.
fn rows_from(raw: &[Call]) -> Vec<AnalyticsRow> {
    let mut cells: HashMap<Cell, (Traffic, Vec<u64>)> = HashMap::new();
    for &(key_id, api_id, op, hour, status, us) in raw {
        let c = cells.entry((key_id, api_id, op.to_owned(), hour)).or_default();
        c.0.requests += 1;
        match status {
            200..=299 => c.0.status_2xx += 1,
            400..=499 => c.0.status_4xx += 1,
            _ => c.0.status_5xx += 1,
        }
        c.0.latency_us_sum += us as i64;
        c.1.push(us);
    }
    cells
        .into_iter()
        .map(|((key_id, api_id, operation, hour), (traffic, lat))| {
            let mut counts: HashMap<usize, i64> = HashMap::new();
            for us in lat {
                *counts.entry(bucket_of(us)).or_default() += 1;
            }
            let mut latency: Vec<(i32, i64)> = counts.into_iter().map(|(b, c)| (b as i32, c)).collect();
            latency.sort_unstable();
            AnalyticsRow { key_id, api_id, operation, hour, traffic, latency }
        })
        .collect()
}

/// The exact nearest-rank percentile of `v` (sorted).
fn exact(v: &[u64], permille: u64) -> u64 {
    let rank = (v.len() as u64 * permille).div_ceil(1000).max(1);
    v[rank as usize - 1]
}

crate::on_each_backend!(flushes_are_idempotent_and_sources_add_up);
async fn flushes_are_idempotent_and_sources_add_up(db: TestDb) {
    let s = &db.store;
    let (apis, keys) = fixture(s).await;
    let hour = NOW - NOW % HOUR;
    let raw: Vec<_> =
        (0..50u64).map(|i| (keys[0].0, apis[0], "GET /a/{id}", hour, if i % 10 == 0 { 500 } else { 200 }, 100 + i * 7)).collect();
    let rows = rows_from(&raw);
    s.upsert_analytics("gw1", &rows, NOW).await.unwrap();
    s.upsert_analytics("gw1", &rows, NOW).await.unwrap();
    // A stale snapshot of the same source changes nothing.
    let stale: Vec<AnalyticsRow> = rows_from(&raw[..10]);
    s.upsert_analytics("gw1", &stale, NOW).await.unwrap();
    let f = AnalyticsFilter { from: hour - DAY, to: hour + HOUR, ..Default::default() };
    let total = s.analytics_total(&f).await.unwrap();
    assert_eq!((total.traffic.requests, total.traffic.status_5xx), (50, 5));
    // Another gateway's rows add up.
    s.upsert_analytics("gw2", &rows, NOW).await.unwrap();
    let total = s.analytics_total(&f).await.unwrap();
    assert_eq!((total.traffic.requests, total.traffic.status_5xx), (100, 10));
    let mut sorted: Vec<u64> = raw.iter().map(|r| r.5).collect();
    sorted.sort_unstable();
    let p50 = total.latency.p50.unwrap() as f64;
    assert!((p50 - exact(&sorted, 500) as f64).abs() <= exact(&sorted, 500) as f64 * RELATIVE_ERROR, "{p50}");
    // The whole-day read (daily rollup) says the same as the hourly rows.
    let day = hour - hour % DAY;
    let by_day = s.analytics_total(&AnalyticsFilter { from: day, to: day + DAY, ..Default::default() }).await.unwrap();
    let by_hour = s.analytics_total(&AnalyticsFilter { from: day, to: day + DAY - 1, ..Default::default() }).await.unwrap();
    assert_eq!(by_day, by_hour);
    assert_eq!(by_day.traffic.requests, 100);
}

crate::on_each_backend!(percentiles_match_raw_latencies_for_any_range_and_grouping);
/// Property test with a fixed seed: random latency distributions (log-uniform, bimodal, a few
/// outliers) over 3 days, 2 APIs × 3 operations × 2 consumers × 2 sources; for several ranges
/// and every grouping, each line's counts equal the raw calls in it and its p50/p95/p99 are
/// within [`RELATIVE_ERROR`] of the exact nearest-rank percentiles of its raw latencies.
async fn percentiles_match_raw_latencies_for_any_range_and_grouping(db: TestDb) {
    let s = &db.store;
    let (apis, keys) = fixture(s).await;
    let mut rng = Rng(0x0018_5eed_0fa1);
    let ops = ["GET /users/{id}", "GET /users/me", "unmatched"];
    let start = NOW - NOW % DAY - 2 * DAY;
    let mut raw = Vec::new();
    for h in 0..72 {
        for _ in 0..rng.below(40) {
            let us = match rng.below(3) {
                0 => 10u64.pow(rng.below(6) as u32 + 1) + rng.below(1000),
                1 => 200 + rng.below(300),
                _ => 80_000 + rng.below(2_000_000),
            };
            let status = [200, 200, 200, 404, 503][rng.below(5) as usize];
            let key = keys[rng.below(2) as usize].0;
            raw.push((key, apis[rng.below(2) as usize], ops[rng.below(3) as usize], start + h * HOUR, status, us));
        }
    }
    // Split over two sources, flushed in hour order with one re-flush each.
    let (a, b): (Vec<_>, Vec<_>) = raw.iter().enumerate().partition(|(i, _)| i % 3 == 0);
    for (source, part) in [("gw1", a), ("gw2", b)] {
        let part: Vec<_> = part.into_iter().map(|(_, r)| *r).collect();
        let rows = rows_from(&part);
        s.upsert_analytics(source, &rows, NOW).await.unwrap();
        s.upsert_analytics(source, &rows, NOW).await.unwrap();
    }
    let app_of = |key: i64| keys.iter().find(|k| k.0 == key).unwrap().1;
    let windows = [
        (start, start + 3 * DAY),
        (start + 5 * HOUR, start + 2 * DAY + 7 * HOUR),
        (start + DAY, start + 2 * DAY),
        (start + 3 * HOUR, start + 9 * HOUR),
    ];
    for (from, to) in windows {
        for grouping in [Grouping::Total, Grouping::Api, Grouping::Operation, Grouping::Consumer] {
            let f = AnalyticsFilter { from, to, ..Default::default() };
            let lines = s.analytics(&f, grouping).await.unwrap();
            let mut expect: HashMap<(i64, String), Vec<&Call>> = HashMap::new();
            for r in raw.iter().filter(|r| r.3 >= from && r.3 < to) {
                let k = match grouping {
                    Grouping::Total => (0, String::new()),
                    Grouping::Api => (r.1, if r.1 == apis[0] { "one" } else { "two" }.to_owned()),
                    Grouping::Operation => (r.1, r.2.to_owned()),
                    Grouping::Consumer => (app_of(r.0), format!("app{}", if app_of(r.0) == keys[0].1 { 0 } else { 1 })),
                };
                expect.entry(k).or_default().push(r);
            }
            assert_eq!(lines.len(), expect.len(), "{grouping:?} {from}..{to}");
            for line in &lines {
                let calls = &expect[&(line.id, line.label.clone())];
                assert_eq!(line.traffic.requests, calls.len() as i64);
                assert_eq!(line.traffic.errors(), calls.iter().filter(|c| c.4 >= 400).count() as i64);
                let mut lat: Vec<u64> = calls.iter().map(|c| c.5).collect();
                lat.sort_unstable();
                for (got, permille) in [(line.latency.p50, 500), (line.latency.p95, 950), (line.latency.p99, 990)] {
                    let (got, want) = (got.unwrap() as f64, exact(&lat, permille) as f64);
                    assert!((got - want).abs() <= want * RELATIVE_ERROR, "{grouping:?} p{permille}: {got} vs exact {want}");
                }
            }
        }
    }
    // A developer's own view: only their keys (every key here is theirs), by operation.
    let (acc, _) = s.find_account_by_email(&Email::parse("owner@example.com").unwrap()).await.unwrap().unwrap();
    let mine = AnalyticsFilter { from: start, to: start + 3 * DAY, account_id: Some(acc.id), ..Default::default() };
    let all = AnalyticsFilter { account_id: None, ..mine.clone() };
    assert_eq!(s.analytics(&mine, Grouping::Operation).await.unwrap(), s.analytics(&all, Grouping::Operation).await.unwrap());
    let series = s.analytics_series(&all, DAY).await.unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(series.iter().map(|x| x.traffic.requests).sum::<i64>(), raw.len() as i64);
}
