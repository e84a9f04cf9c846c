//! Billing end to end: requests through the real gateway on real sockets, metered into usage
//! buckets, finalized into invoices by the ledger, compared with hand-computed figures.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use turnpike_ledger as ledger;
use turnpike_store::clock::{Clock, ManualClock};
use turnpike_store::{NewPlan, NewPlanPrice, Store};
use turnpike_testkit::TestDb;

use crate::{CounterBackend, TestApp};

/// 2027-01-01 00:00:00 UTC.
const JAN1: i64 = 1_798_761_600;
/// 2027-02-01 00:00:00 UTC.
const FEB1: i64 = 1_801_440_000;
/// 2027-03-01 00:00:00 UTC.
const MAR1: i64 = 1_803_859_200;

/// An upstream answering 500 for paths ending in `/fail` (an upstream-made 5xx), 200 otherwise.
async fn flaky_upstream() -> SocketAddr {
    crate::upstreams::serve(|req| async move {
        let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
        if req.uri().path().ends_with("/fail") {
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        res
    })
    .await
}

async fn priced_plan(
    store: &Store,
    api_id: i64,
    slug: &str,
    pricing: &str,
    base_fee: i64,
    billable: &str,
    quota: Option<Option<i64>>,
) -> i64 {
    let plan = store
        .create_plan(
            api_id,
            &NewPlan {
                slug: slug.into(),
                name: slug.into(),
                rate_per_second: 1000,
                burst: 1000,
                monthly_quota: None,
                currency: "usd".into(),
                flat_price_minor: 0,
                unit_price_minor_per_1000: 0,
                is_default: false,
            },
            JAN1 - 86_400,
        )
        .await
        .unwrap();
    let price = NewPlanPrice {
        currency: "usd".into(),
        pricing: pricing.into(),
        trial_days: 0,
        billable: billable.into(),
        base_fee,
        monthly_quota: quota,
    };
    store.set_plan_price(plan.id, &price, JAN1 - 86_400).await.unwrap();
    plan.id
}

/// Flush until the buckets hold every request and every 5xx status (statuses are recorded when
/// the response body ends, which can trail the client by a moment).
async fn flush_all(app: &TestApp, admitted: i64, status_5xx: i64) {
    for _ in 0..200 {
        app.gateway.flush().await.unwrap();
        if app.store.usage_totals_between(0, i64::MAX).await.unwrap() == (admitted, status_5xx) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("usage never reached {admitted} admitted and {status_5xx} 5xx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_at_235959_999_and_one_at_000000_000_land_on_different_invoices_and_the_quota_resets() {
    for counters in CounterBackend::each("billing_month_boundary").await {
        let db = TestDb::sqlite().await;
        let clock = Arc::new(ManualClock::at(JAN1));
        let app = TestApp::start(&db, &counters, clock.clone()).await;
        let echo = app.store.get_api_by_slug("echo").await.unwrap();
        // $1.00 a month including 3 requests, then refused.
        let tiny = priced_plan(
            &app.store,
            echo.id,
            "tiny",
            r#"{"model":"quota","base_fee":100,"included":3,"overage":{"kind":"hard_cap"}}"#,
            100,
            "admitted",
            Some(Some(3)),
        )
        .await;
        let (key, _, app_id) = app.developer_key("edge@example.com").await;
        let sub = app.store.list_subscriptions(app_id).await.unwrap().into_iter().find(|s| s.api_id == echo.id).unwrap();
        assert_eq!(sub.billing_anchor, JAN1);
        assert_eq!(ledger::change_plan(&app.store, sub.id, tiny, JAN1).await.unwrap(), ledger::ChangeOutcome::Now);
        app.gateway.follow().await.unwrap();
        let call = || app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send();

        clock.set(JAN1 + 86_400);
        assert_eq!(call().await.unwrap().status(), 200);
        assert_eq!(call().await.unwrap().status(), 200);
        // 2027-01-31 23:59:59.999: the third request of January, then the quota is spent.
        clock.set(FEB1 - 1);
        clock.advance_micros(999_000);
        assert_eq!(clock.now_micros(), FEB1 * 1_000_000 - 1_000);
        assert_eq!(call().await.unwrap().status(), 200);
        assert_eq!(call().await.unwrap().status(), 429);
        // 2027-02-01 00:00:00.000: a fresh quota at that instant.
        clock.set(FEB1);
        let r = call().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["ratelimit"].to_str().unwrap().contains("\"quota\";r=2;"), "{:?}", r.headers()["ratelimit"]);
        flush_all(&app, 4, 0).await;

        // The worker waits `invoice_settle_seconds` after a period ends (gateways may still be
        // flushing its last requests): nothing is final 5 s after midnight, January is 10 min later.
        assert_eq!(ledger::finalize_settled(&app.store, FEB1 + 5, 600).await.unwrap().created.len(), 0);
        assert_eq!(ledger::finalize_settled(&app.store, FEB1 + 600, 600).await.unwrap().created.len(), 1);
        ledger::finalize_due(&app.store, MAR1).await.unwrap();
        let mut invoices: Vec<_> = app.store.all_invoices().await.unwrap().into_iter().filter(|i| i.subscription_id == sub.id).collect();
        invoices.sort_by_key(|i| i.period_start);
        let got: Vec<(i64, i64, i64, i64)> =
            invoices.iter().map(|i| (i.period_start, i.period_end, i.usage_quantity, i.total_minor)).collect();
        assert_eq!(got, vec![(JAN1, FEB1, 3, 100), (FEB1, MAR1, 1, 100)]);
        // January's usage line is traceable to the buckets of [Jan 1, Feb 1): 3 admitted.
        let lines = app.store.invoice_lines(invoices[0].id).await.unwrap();
        let usage: Vec<_> = lines.iter().filter(|l| l.kind == "usage").collect();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            (usage[0].hour_from, usage[0].hour_to, usage[0].source_admitted, usage[0].quantity),
            (Some(JAN1), Some(FEB1), Some(3), 3)
        );
        assert_eq!(app.store.subscription_usage(sub.id, FEB1 - 3600, FEB1).await.unwrap(), 1, "23:59:59.999 is in January's last hour");
        assert_eq!(app.store.subscription_usage(sub.id, FEB1, FEB1 + 3600).await.unwrap(), 1, "00:00:00.000 is in February's first hour");
        app.stop().await;
    }
}

/// Per developer i (0..20): plan `[G, V, Q][i % 3]`; January `4 + 2i` requests of which `i % 4`
/// fail upstream (500); February `10 + (7i mod 23)` requests of which `(i + 1) % 3` fail.
/// G and V bill every admitted request; Q bills admitted minus 5xx.
fn traffic(i: usize) -> [(usize, usize); 2] {
    [(4 + 2 * i, i % 4), (10 + (i * 7) % 23, (i + 1) % 3)]
}

// Worked out by hand from the prices in the scenario (see the comments there):
// G (graduated, 1–10 free, 11–30 at 5¢, 31+ at 3¢), V (volume, ≤20 at 10¢ each, else all at 6¢),
// Q ($20.00 including 25, then 10¢ per 3 requests, each line rounded half up).
const BILLABLE: [[i64; 20]; 2] = [
    [4, 6, 6, 10, 12, 13, 16, 18, 20, 22, 24, 23, 28, 30, 30, 34, 36, 37, 40, 42],
    [10, 17, 24, 31, 15, 22, 29, 13, 20, 27, 11, 18, 25, 32, 16, 23, 30, 14, 21, 28],
];
const TOTALS: [[i64; 20]; 2] = [
    // e.g. i=14 (Q): 30 billable → $20.00 + 5 × 10¢/3 = 16.67¢ → 17¢ = 2017; i=10 (V): 24 × 6¢ = 144.
    [0, 60, 2000, 0, 120, 2000, 30, 180, 2000, 60, 144, 2000, 90, 180, 2017, 112, 216, 2040, 130, 252],
    // e.g. i=3 (G): 31 → 20 × 5¢ + 1 × 3¢ = 103; i=1 (V): 17 × 10¢ = 170.
    [0, 170, 2000, 103, 150, 2000, 95, 130, 2000, 85, 110, 2000, 75, 192, 2000, 65, 180, 2000, 55, 168],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_developers_two_months_three_price_models_exact_invoices_reports_and_zero_drift() {
    println!("backend: sqlite, counters: local");
    scenario(&TestDb::sqlite().await, &CounterBackend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_scenario_on_postgres_and_redis() {
    let test = "billing_scenario_pg_redis";
    let Some(db) = TestDb::postgres(test).await else { return };
    let Some(redis) = CounterBackend::each(test).await.find(|c| c.name() == "redis") else { return };
    println!("backend: postgres, counters: redis");
    scenario(&db, &redis).await;
}

async fn scenario(db: &TestDb, counters: &CounterBackend) {
    let clock = Arc::new(ManualClock::at(JAN1));
    let app = TestApp::start(db, counters, clock.clone()).await;
    let upstream = flaky_upstream().await;
    let free = turnpike_testkit::default_plan("free", 1000, 1000, None);
    let (api, _) = turnpike_testkit::publish(
        &app.store,
        "metered",
        "Metered",
        &[(&format!("http://{upstream}"), 1)],
        turnpike_store::Visibility::Public,
        &free,
        JAN1 - 86_400,
    )
    .await;
    let g = priced_plan(
        &app.store,
        api,
        "graduated",
        r#"{"model":"graduated","tiers":[{"up_to":10,"unit_price":0},{"up_to":30,"unit_price":5},{"up_to":null,"unit_price":3}]}"#,
        0,
        "admitted",
        None,
    )
    .await;
    let v = priced_plan(
        &app.store,
        api,
        "volume",
        r#"{"model":"volume","tiers":[{"up_to":20,"unit_price":10},{"up_to":null,"unit_price":6}]}"#,
        0,
        "admitted",
        None,
    )
    .await;
    let q = priced_plan(
        &app.store,
        api,
        "quota",
        r#"{"model":"quota","base_fee":2000,"included":25,"overage":{"kind":"metered","unit_price":10,"per":3}}"#,
        2000,
        "admitted_non_5xx",
        Some(None),
    )
    .await;
    app.gateway.follow().await.unwrap();

    let mut devs = Vec::new();
    for i in 0..20 {
        let (key, _, app_id) = app.developer_key(&format!("dev{i:02}@example.com")).await;
        let sub = app.store.list_subscriptions(app_id).await.unwrap().into_iter().find(|s| s.api_id == api).unwrap();
        assert_eq!(ledger::change_plan(&app.store, sub.id, [g, v, q][i % 3], JAN1).await.unwrap(), ledger::ChangeOutcome::Now);
        devs.push((key, sub.id));
    }
    app.gateway.follow().await.unwrap();

    let mut admitted = 0i64;
    for (month, start) in [(0usize, JAN1), (1, FEB1)] {
        for (i, (key, _)) in devs.iter().enumerate() {
            let (n, fails) = traffic(i)[month];
            for k in 0..n {
                // One request an hour per developer, a few seconds apart between developers.
                clock.set(start + 3_600 * (1 + k as i64) + 7 * i as i64);
                let path = if k < fails { "/metered/fail" } else { "/metered/ok" };
                let r = app.http.get(app.gw(path)).bearer_auth(key.expose()).send().await.unwrap();
                assert_eq!(r.status(), if k < fails { 500 } else { 200 }, "dev {i} month {month} request {k}");
                admitted += 1;
            }
        }
    }
    assert_eq!(admitted, 886);
    let fails: usize = (0..20).map(|i| traffic(i)[0].1 + traffic(i)[1].1).sum();
    flush_all(&app, admitted, fails as i64).await;

    // Month ends; the ledger finalizes (the worker's job), twice for good measure.
    clock.set(MAR1 + 60);
    ledger::finalize_due(&app.store, MAR1 + 60).await.unwrap();
    ledger::finalize_due(&app.store, MAR1 + 60).await.unwrap();
    let invoices = app.store.all_invoices().await.unwrap();
    for (i, (_, sub)) in devs.iter().enumerate() {
        for (month, start) in [(0usize, JAN1), (1, FEB1)] {
            let inv = invoices.iter().find(|x| x.subscription_id == *sub && x.period_start == start).expect("invoice");
            assert_eq!(
                (inv.usage_quantity, inv.total_minor),
                (BILLABLE[month][i], TOTALS[month][i]),
                "dev {i} month {month} ({})",
                inv.plan_name
            );
            // Usage lines equal the dashboard's numbers for the period.
            let lines = app.store.invoice_lines(inv.id).await.unwrap();
            let metered =
                app.store.subscription_usage(*sub, start, start + if month == 0 { FEB1 - JAN1 } else { MAR1 - FEB1 }).await.unwrap();
            let (n, _) = traffic(i)[month];
            assert_eq!(metered, n as i64);
            for l in lines.iter().filter(|l| l.kind == "usage") {
                assert_eq!(l.source_admitted, Some(metered));
            }
            let sum: i64 = lines.iter().map(|l| l.amount_minor).sum();
            assert_eq!(sum, inv.total_minor, "lines add up");
        }
    }
    // 20 developers × 2 months × 2 APIs (echo, metered): 80 invoices numbered 1…80 without gaps.
    let mut numbers: Vec<String> = invoices.iter().filter_map(|i| i.number.clone()).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=80).map(|n| format!("TP-{n:06}")).collect::<Vec<_>>());

    let report = ledger::report(&app.store, MAR1 + 60).await.unwrap();
    let month = |label: &str| report.by_month.iter().find(|f| f.label == label).map(|f| (f.calls, f.revenue)).unwrap();
    // Σ of TOTALS rows; calls are billable requests: Σ of BILLABLE rows.
    assert_eq!(month("2027-01"), (451, 13_631));
    assert_eq!(month("2027-02"), (426, 13_578));
    assert_eq!(report.mrr, vec![("usd".to_owned(), 13_578, 13_631)]);
    let plan = |label: &str| report.by_plan.iter().find(|f| f.label == label).map(|f| (f.calls, f.revenue)).unwrap();
    assert_eq!(plan("Metered / graduated"), (320, 900));
    assert_eq!(plan("Metered / volume"), (314, 2_252));
    assert_eq!(plan("Metered / quota"), (243, 24_057));
    let metered = report.by_api.iter().find(|f| f.label == "Metered").unwrap();
    assert_eq!((metered.calls, metered.revenue, metered.invoices), (877, 27_209, 40));
    let top: Vec<(&str, i64)> = report.top_by_revenue.iter().take(3).map(|f| (f.label.as_str(), f.revenue)).collect();
    assert_eq!(top, vec![("dev17@example.com", 4_040), ("dev14@example.com", 4_017), ("dev02@example.com", 4_000)]);
    let top: Vec<(&str, i64)> = report.top_by_calls.iter().take(3).map(|f| (f.label.as_str(), f.calls)).collect();
    assert_eq!(top, vec![("dev19@example.com", 70), ("dev16@example.com", 66), ("dev13@example.com", 62)]);
    // Invoices are due 14 days after their period: January's (due Feb 15) are overdue on Mar 1,
    // every one with something to pay (18 of 20); February's are not yet.
    assert_eq!(report.overdue.len(), 18);
    let later = ledger::report(&app.store, MAR1 + 15 * 86_400).await.unwrap();
    // Both months' open invoices are overdue by then (due Feb 15 and Mar 15): every non-zero one.
    assert_eq!(later.overdue.len(), TOTALS[0].iter().chain(TOTALS[1].iter()).filter(|t| **t > 0).count());
    // Drift: the gateway's buckets against invoiced quantities, invoice by invoice.
    assert_eq!(report.drift_checked, 80);
    assert_eq!((report.drift_total, report.drift.len()), (0, 0));
    app.stop().await;
}
