//! Gateway behaviour over real sockets, on each counter backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use turnpike_store::clock::{Clock, ManualClock};
use turnpike_store::domain::ApiKey;
use turnpike_store::NewPlan;
use turnpike_testkit::TestDb;

use crate::{system_clock, CounterBackend, TestApp};

async fn problem(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], status);
    (status, v["code"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_problem_json_and_bad_checksums_cost_no_lookup() {
    for counters in CounterBackend::each("refusals_are_problem_json").await {
        let db = TestDb::sqlite().await;
        let app = TestApp::start(&db, &counters, system_clock()).await;

        let (status, code) = problem(app.http.get(app.gw("/nope")).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (404, "no_route"));
        let (status, code) = problem(app.http.get(app.gw("/echo/x")).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (401, "missing_key"));

        // A real key with one character changed: the checksum fails, the database is not asked.
        let good = ApiKey::generate();
        let mut typo = good.expose().to_owned();
        let c = if typo.as_bytes()[20] == b'A' { "B" } else { "A" };
        typo.replace_range(20..21, c);
        let before = app.gateway.stats();
        let (status, code) = problem(app.http.get(app.gw("/echo/x")).header("x-api-key", &typo).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (401, "invalid_key"));
        let after = app.gateway.stats();
        assert_eq!(after.key_lookups, before.key_lookups, "no lookup for a bad checksum");
        assert_eq!(after.refused_without_lookup, before.refused_without_lookup + 1);

        // A well-formed unknown key is looked up once, then remembered as unknown.
        for _ in 0..3 {
            let (status, _) = problem(app.http.get(app.gw("/echo/x")).bearer_auth(good.expose()).send().await.unwrap()).await;
            assert_eq!(status, 401);
        }
        assert_eq!(app.gateway.stats().key_lookups, before.key_lookups + 1);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_stripped_and_trusted_headers_injected() {
    for counters in CounterBackend::each("credentials_are_stripped").await {
        let db = TestDb::sqlite().await;
        let app = TestApp::start(&db, &counters, system_clock()).await;
        let (key, _, app_id) = app.developer_key("h@example.com").await;
        for (name, value) in [("authorization", format!("Bearer {}", key.expose())), ("x-api-key", key.expose().to_owned())] {
            let r = app
                .http
                .get(app.gw("/echo/a/b"))
                .header(name, &value)
                .header("x-turnpike-consumer", "admin")
                .header("x-turnpike-plan", "enterprise")
                .header("x-request-id", "req-123")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["x-request-id"], "req-123");
            let v: serde_json::Value = r.json().await.unwrap();
            let h = &v["headers"];
            assert!(h.get(name).is_none(), "{name} must not reach the upstream");
            assert!(!v.to_string().contains(key.expose()), "the key must not reach the upstream");
            assert_eq!(h["x-turnpike-consumer"], format!("app-{app_id}"));
            assert_eq!(h["x-turnpike-plan"], "free");
            assert_eq!(h["x-request-id"], "req-123");
            assert_eq!(h["x-forwarded-for"], "127.0.0.1");
            assert!(h["forwarded"].as_str().unwrap().starts_with("for=127.0.0.1;proto=http"));
            assert_eq!(v["path"], "/a/b");
        }
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_headers_count_down_then_429() {
    for counters in CounterBackend::each("ratelimit_headers_count_down_then_429").await {
        let db = TestDb::sqlite().await;
        // A stopped clock makes the token bucket deterministic: burst 20 and no refill.
        let clock = Arc::new(ManualClock::at(1_790_000_000));
        let app = TestApp::start(&db, &counters, clock.clone()).await;
        let (key, key_id, _) = app.developer_key("r@example.com").await;
        for i in 1..=20 {
            let r = app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send().await.unwrap();
            assert_eq!(r.status(), 200, "request {i}");
            let rl = r.headers()["ratelimit"].to_str().unwrap();
            assert!(rl.starts_with(&format!("\"burst\";r={};", 20 - i)), "request {i}: {rl}");
            assert!(rl.contains(&format!("\"quota\";r={};", 1000 - i)), "request {i}: {rl}");
            assert_eq!(r.headers()["ratelimit-policy"].to_str().unwrap().split(", ").next().unwrap(), "\"burst\";q=20;w=2");
        }
        let r = app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send().await.unwrap();
        assert_eq!(r.headers()["retry-after"], "1");
        let (status, code) = problem(r).await;
        assert_eq!((status, code.as_str()), (429, "rate_limited"));
        // A tenth of a second refills one request (10/s).
        clock.advance_micros(100_000);
        let r = app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // Rejected requests were not counted: exactly 21 admitted.
        app.gateway.flush().await.unwrap();
        assert_eq!(app.store.key_usage_total(key_id).await.unwrap().admitted, 21);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_is_exact_and_resets_on_the_calendar_month() {
    for counters in CounterBackend::each("quota_is_exact_and_resets_on_the_calendar_month").await {
        let db = TestDb::sqlite().await;
        // 2027-01-31 10:00 UTC: the period ends on Feb 28 10:00, not 30 days later.
        let anchor = 1_801_389_600;
        let clock = Arc::new(ManualClock::at(anchor));
        let app = TestApp::start(&db, &counters, clock.clone()).await;
        let echo = app.store.get_api_by_slug("echo").await.unwrap();
        let tiny = app
            .store
            .create_plan(
                echo.id,
                &NewPlan {
                    slug: "tiny".into(),
                    name: "Tiny".into(),
                    rate_per_second: 1000,
                    burst: 1000,
                    monthly_quota: Some(5),
                    currency: "usd".into(),
                    flat_price_minor: 0,
                    unit_price_minor_per_1000: 0,
                    is_default: false,
                },
                anchor,
            )
            .await
            .unwrap();
        let (key, key_id, app_id) = app.developer_key("q@example.com").await;
        app.store.subscribe(app_id, tiny.id, anchor).await.unwrap();
        app.gateway.follow().await.unwrap();
        let call = || app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send();
        for _ in 0..5 {
            assert_eq!(call().await.unwrap().status(), 200);
        }
        let r = call().await.unwrap();
        let feb28 = 1_803_808_800; // 2027-02-28 10:00 UTC
        assert_eq!(r.headers()["retry-after"].to_str().unwrap(), (feb28 - anchor).to_string());
        assert_eq!(problem(r).await, (429, "quota_exceeded".into()));

        // The last second of the 28-day period is still January's period...
        clock.set(feb28 - 1);
        assert_eq!(call().await.unwrap().status(), 429);
        // ...and the calendar month boundary opens a fresh quota.
        clock.set(feb28);
        let r = call().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["ratelimit"].to_str().unwrap().contains("\"quota\";r=4;"));
        app.gateway.flush().await.unwrap();
        assert_eq!(app.store.key_usage_total(key_id).await.unwrap().admitted, 6);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_metered_exactly_and_flushes_are_idempotent() {
    for counters in CounterBackend::each("concurrent_requests_are_metered_exactly").await {
        let Some(db) = TestDb::postgres("concurrent_requests_are_metered_exactly").await else {
            return;
        };
        println!("backend: postgres, counters: {}", counters.name());
        let clock = Arc::new(ManualClock::at(1_790_000_000));
        // 200 admissions at once on a CI box whose two cores the rest of the suite also uses
        // (throwaway PostgreSQL clusters starting, Redis killed and restarted): Redis gets 30 s
        // to answer, so a starved moment is not mistaken for an outage (fail-closed 503s; CI saw
        // 0 of 200 admitted once). Exactness is what this test checks, not the timeout.
        let app = TestApp::start_with(&db, &counters, clock.clone(), |c| c.redis_timeout_ms = 30_000).await;
        let (key, key_id, _) = app.developer_key("m@example.com").await;
        // 200 concurrent requests against burst 20: exactly the admitted ones are billed.
        let lookups_before = app.gateway.stats().key_lookups;
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let http = app.http.clone();
            let url = app.gw("/echo/x");
            let k = key.expose().to_owned();
            tasks.push(tokio::spawn(async move { http.get(url).bearer_auth(k).send().await.unwrap().status().as_u16() }));
        }
        let mut statuses = std::collections::BTreeMap::new();
        for t in tasks {
            *statuses.entry(t.await.unwrap()).or_insert(0) += 1;
        }
        let ok = statuses.get(&200).copied().unwrap_or(0);
        assert_eq!(ok, 20, "burst of 20 with a stopped clock; statuses: {statuses:?}");
        // The cold key was looked up once, not by each of the 200 concurrent requests.
        assert_eq!(app.gateway.stats().key_lookups, lookups_before + 1);
        app.gateway.flush().await.unwrap();
        app.gateway.flush().await.unwrap();
        let t = app.store.key_usage_total(key_id).await.unwrap();
        assert_eq!(t.admitted, 20);
        // Stopping flushes again; totals stay exact.
        let store = app.store.clone();
        app.stop().await;
        assert_eq!(store.key_usage_total(key_id).await.unwrap().admitted, 20);
        let _ = clock.now();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_within_a_second() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start(&db, &CounterBackend::Local, system_clock()).await;
    let (key, key_id, app_id) = app.developer_key("v@example.com").await;
    assert_eq!(app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send().await.unwrap().status(), 200);
    app.store.revoke_key(app_id, key_id, 0).await.unwrap();
    let revoked_at = Instant::now();
    loop {
        let r = app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send().await.unwrap();
        if r.status() == 403 {
            assert_eq!(problem(r).await.1, "key_disabled");
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(1), "still admitted after 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}
