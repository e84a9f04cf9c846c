//! The daily rollup (`usage_daily`) is derived from the hourly buckets: every figure read through
//! it equals the sum of `usage_hourly` over the same range, whatever order, repetition and
//! staleness the flushes came in.

use std::collections::HashMap;

use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{HourUsage, Role, Store, UsageCounts, UsageFilter, UsageRow, Visibility};
use turnpike_testkit::TestDb;

use crate::{seed_api, NOW};

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// A fixed-seed generator (xorshift): the same rows on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        i64::try_from(self.0 % n).unwrap()
    }
}

/// `hours` summed into slots of a day counted from `from`: the reference for `usage_by_day`.
fn by_day_from_hours(hours: &[HourUsage], from: i64) -> Vec<HourUsage> {
    let mut slots: Vec<HourUsage> = Vec::new();
    for h in hours {
        let slot = from + (h.hour - from) / DAY * DAY;
        match slots.last_mut() {
            Some(last) if last.hour == slot => last.counts.add(&h.counts),
            _ => slots.push(HourUsage { hour: slot, counts: h.counts }),
        }
    }
    slots
}

struct Fixture {
    account: i64,
    apps: Vec<i64>,
    subs: Vec<i64>,
    /// Every flush, in order: `(source, rows)`.
    flushes: Vec<(&'static str, Vec<UsageRow>)>,
}

/// Two apps × one key × two APIs; 40 days of hourly rows from two sources, flushed in batches,
/// some batches again (same values) and some as stale snapshots (smaller values); one key ×
/// API changes subscription at 13:00 on some day.
async fn flush_history(s: &Store) -> Fixture {
    let apis = [seed_api(s, "one", Visibility::Public).await.0, seed_api(s, "two", Visibility::Public).await.0];
    let acc = s.create_account(&Email::parse("roll@example.com").unwrap(), "h", Role::Developer, NOW).await.unwrap();
    let (mut apps, mut keys, mut subs) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..2 {
        let app = s.create_app(acc.id, &format!("app{i}"), NOW).await.unwrap();
        s.subscribe_defaults(app.id, NOW).await.unwrap();
        let key = s.create_key(app.id, "k", &ApiKey::generate(), NOW).await.unwrap();
        for sub in s.list_subscriptions(app.id).await.unwrap() {
            keys.push((key.id, sub.api_id, sub.id));
            subs.push(sub.id);
        }
        apps.push(app.id);
    }
    assert_eq!(keys.len(), 2 * apis.len());
    let switch_at = NOW - NOW % DAY - 9 * DAY + 13 * HOUR;
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let first = NOW - NOW % HOUR - 40 * DAY;
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    for hour in (first..=NOW).step_by(usize::try_from(HOUR).unwrap()) {
        for &(key_id, api_id, sub) in &keys {
            if rng.below(4) == 0 {
                continue; // an hour without traffic
            }
            // The first key × API moved to another subscription (a plan change) mid-day.
            let subscription_id = if (key_id, api_id) == (keys[0].0, keys[0].1) && hour >= switch_at { sub + 1000 } else { sub };
            let admitted = rng.below(50);
            let e4 = rng.below(admitted as u64 + 1);
            batch.push(UsageRow {
                key_id,
                api_id,
                subscription_id,
                hour,
                admitted,
                status_2xx: admitted - e4,
                status_4xx: e4,
                bytes_in: rng.below(10_000),
                latency_ms_sum: rng.below(5_000),
                generation: rng.below(2),
                ..Default::default()
            });
        }
        if batch.len() >= 40 {
            let source = if rng.below(2) == 0 { "gw1" } else { "gw2" };
            flushes.push((source, batch.clone()));
            if rng.below(3) == 0 {
                flushes.push((source, batch.clone())); // re-flushed
            }
            if rng.below(3) == 0 {
                // A stale snapshot arriving late: absolute values never go down.
                flushes.push((source, batch.iter().map(|r| UsageRow { admitted: r.admitted / 2, status_4xx: 0, ..r.clone() }).collect()));
            }
            batch.clear();
        }
    }
    flushes.push(("gw1", batch));
    for (source, rows) in &flushes {
        s.upsert_usage(source, rows, NOW).await.unwrap();
    }
    Fixture { account: acc.id, apps, subs, flushes }
}

/// Every figure read from the rollup, for comparing before and after a rebuild.
async fn rollup_figures(s: &Store, fx: &Fixture, windows: &[(i64, i64)]) -> Vec<String> {
    let mut out = Vec::new();
    let f = UsageFilter { account_id: fx.account, ..Default::default() };
    for &(from, to) in windows {
        out.push(format!("{:?}", s.usage_by_day(&f, from, to).await.unwrap()));
        out.push(format!("{:?}", s.account_usage_by_app(fx.account, from).await.unwrap()));
    }
    out
}

crate::on_each_backend!(daily_rollup_equals_the_hourly_sum_for_every_range);
async fn daily_rollup_equals_the_hourly_sum_for_every_range(db: TestDb) {
    let s = &db.store;
    let fx = flush_history(s).await;
    let midnight = NOW - NOW % DAY;
    // Aligned and unaligned edges, ranges within one day, across the subscription change, empty.
    let windows = [
        (midnight - 30 * DAY, midnight + DAY),
        (midnight - 30 * DAY, NOW),
        (midnight - 9 * DAY, midnight - 8 * DAY),
        (midnight - 9 * DAY + 5 * HOUR, midnight - 2 * DAY + 7 * HOUR + 1),
        (midnight - 3 * DAY + 1, midnight - 3 * DAY + 4 * HOUR),
        (midnight - 41 * DAY - 7 * HOUR, NOW + DAY),
        (midnight, midnight),
    ];
    let mut checked = 0;
    for &(from, to) in &windows {
        // The whole account, one app, one key, one API.
        let filters = [
            UsageFilter { account_id: fx.account, ..Default::default() },
            UsageFilter { account_id: fx.account, app_id: Some(fx.apps[1]), ..Default::default() },
        ];
        for f in filters {
            let hours = s.usage_by_hour(&f, from, to).await.unwrap();
            let days = s.usage_by_day(&f, from, to).await.unwrap();
            let calls: Vec<(i64, i64, i64)> =
                s.calls_by_hour(&f, from, to).await.unwrap().iter().map(|h| (h.hour, h.calls, h.errors)).collect();
            assert_eq!(calls, hours.iter().map(|h| (h.hour, h.counts.admitted, h.counts.errors())).collect::<Vec<_>>());
            assert_eq!(days, by_day_from_hours(&hours, from), "usage_by_day over [{from}, {to})");
            checked += days.len();
        }
        // Per app since `from`: the hourly per-key sums, added up per app.
        let mut expected: HashMap<i64, (i64, i64)> = HashMap::new();
        for &app in &fx.apps {
            for (_, calls, errors) in s.app_usage_by_key(app, from).await.unwrap() {
                let e = expected.entry(app).or_default();
                e.0 += calls;
                e.1 += errors;
            }
        }
        let got: HashMap<i64, (i64, i64)> =
            s.account_usage_by_app(fx.account, from).await.unwrap().into_iter().map(|(a, c, e)| (a, (c, e))).collect();
        assert_eq!(got, expected, "account_usage_by_app since {from}");
        // Each subscription (and the one moved to mid-day) in the window: the hourly figure.
        let mut sids = fx.subs.clone();
        sids.push(fx.subs[0] + 1000);
        let windows: Vec<(i64, i64, i64)> = sids.iter().map(|&sid| (sid, from, to)).collect();
        let used = s.subscriptions_usage(&windows).await.unwrap();
        for &sid in &sids {
            assert_eq!(
                used.get(&sid).copied().unwrap_or(0),
                s.subscription_usage(sid, from, to).await.unwrap(),
                "subscription {sid} over [{from}, {to})"
            );
        }
    }
    assert!(checked > 30, "the ranges hold usage ({checked} day slots)");
    let total: UsageCounts = s
        .usage_by_day(&UsageFilter { account_id: fx.account, ..Default::default() }, midnight - 50 * DAY, NOW + DAY)
        .await
        .unwrap()
        .iter()
        .fold(UsageCounts::default(), |mut t, d| {
            t.add(&d.counts);
            t
        });
    assert!(total.admitted > 0 && total.errors() > 0 && total.bytes_in > 0 && total.latency_ms_sum > 0);

    // Rebuilding the rollup from scratch, or flushing the history again, changes nothing.
    let before = rollup_figures(s, &fx, &windows).await;
    s.rebuild_usage_daily().await.unwrap();
    assert_eq!(rollup_figures(s, &fx, &windows).await, before, "a rebuild from the hourly rows agrees");
    for (source, rows) in fx.flushes.iter().rev() {
        s.upsert_usage(source, rows, NOW).await.unwrap();
    }
    assert_eq!(rollup_figures(s, &fx, &windows).await, before, "the same absolute values flushed again, newest first");
}
