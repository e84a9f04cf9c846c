//! Failure is explicit: a Redis outage fails closed within its timeout and shows in /readyz;
//! h2c clients are served.

use std::time::{Duration, Instant};

use turnpike_store::clock::Clock;
use turnpike_testkit::TestDb;

use crate::throwaway::OwnRedis;
use crate::{system_clock, CounterBackend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_closed_within_the_timeout_and_readyz_says_so() {
    let Some(mut redis) = OwnRedis::start("a_redis_outage_fails_closed") else { return };
    let db = TestDb::sqlite().await;
    let counters = CounterBackend::Redis { url: redis.url(), prefix: "fault".into() };
    let app = TestApp::start_with(&db, &counters, system_clock(), |c| c.redis_timeout_ms = 300).await;
    let (key, key_id, _) = app.developer_key("f@example.com").await;
    let call = || app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send();
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(app.http.get(format!("{}/readyz", app.metrics_url)).send().await.unwrap().status(), 200);
    // This Redis keeps nothing on disk: settle the one admitted request before killing it.
    app.gateway.flush().await.unwrap();

    redis.kill();
    for _ in 0..5 {
        let t = Instant::now();
        let r = call().await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "answered in {:?}", t.elapsed());
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], "unavailable");
    }
    let ready = app.http.get(format!("{}/readyz", app.metrics_url)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("counters"));
    // Nothing was admitted while Redis was down: exactly the one request before it is billed.
    app.stop().await;
    assert_eq!(db.store.key_usage_total(key_id).await.unwrap().admitted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_its_scripts_gets_the_admission_script_again() {
    let Some(redis) = OwnRedis::start("a_redis_that_lost_its_scripts") else { return };
    let db = TestDb::sqlite().await;
    let counters = CounterBackend::Redis { url: format!("redis://127.0.0.1:{}/", redis.port), prefix: "noscript".into() };
    let app = TestApp::start(&db, &counters, system_clock()).await;
    let (key, key_id, _) = app.developer_key("ns@example.com").await;
    let call = || app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send();
    assert_eq!(call().await.unwrap().status(), 200);
    // A restarted or failed-over Redis has an empty script cache: the next admission meets
    // NOSCRIPT, loads the script again and is answered, counted once.
    let mut conn =
        redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port)).unwrap().get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
    for _ in 0..3 {
        assert_eq!(call().await.unwrap().status(), 200);
    }
    app.stop().await;
    assert_eq!(db.store.key_usage_total(key_id).await.unwrap().admitted, 4);
}

/// A Redis without persistence that restarts mid-hour begins its buckets again from zero. The
/// meter writes absolute values and keeps the larger of two snapshots of one row, so before
/// buckets carried their incarnation, the 3 requests after the restart hid behind the 5 flushed
/// before it (the database read 5, not 8) until the new count passed the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_restarts_empty_mid_hour_loses_no_count() {
    let Some(mut redis) = OwnRedis::start("a_redis_that_restarts_empty") else { return };
    let db = TestDb::sqlite().await;
    // One hour for the whole test: both incarnations count into the same hour's bucket.
    let clock = std::sync::Arc::new(turnpike_store::clock::ManualClock::at(1_790_002_800));
    let counters = CounterBackend::Redis { url: redis.url(), prefix: "empty".into() };
    let app = TestApp::start(&db, &counters, clock.clone()).await;
    let (key, key_id, _) = app.developer_key("empty@example.com").await;
    let call = || {
        clock.advance_micros(200_000);
        app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send()
    };
    for _ in 0..5 {
        assert_eq!(call().await.unwrap().status(), 200);
    }
    app.gateway.flush().await.unwrap();
    assert_eq!(db.store.key_usage_total(key_id).await.unwrap().admitted, 5);

    redis.restart(); // no persistence: every counter and bucket is gone
    let mut admitted = 5;
    let started = Instant::now();
    while admitted < 8 {
        // The first requests may meet the reconnect (503); only 200s count.
        if call().await.unwrap().status() == 200 {
            admitted += 1;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "Redis did not come back");
    }
    app.gateway.flush().await.unwrap();
    assert_eq!(db.store.key_usage_total(key_id).await.unwrap().admitted, 8, "the new incarnation's 3 add to the 5 before");
    // Flushing again, and the final flush, change nothing.
    app.gateway.flush().await.unwrap();
    app.stop().await;
    assert_eq!(db.store.key_usage_total(key_id).await.unwrap().admitted, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start(&db, &CounterBackend::Local, system_clock()).await;
    let (key, _, _) = app.developer_key("h2@example.com").await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let r = h2.get(app.gw("/echo/over-h2")).bearer_auth(key.expose()).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("ratelimit"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["path"], "/over-h2");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_decisions_and_time() {
    let db = TestDb::sqlite().await;
    let clock = std::sync::Arc::new(turnpike_store::clock::ManualClock::at(1_790_000_000));
    let app = TestApp::start(&db, &CounterBackend::Local, clock).await;
    let (key, _, _) = app.developer_key("metrics@example.com").await;
    let scrape = || async { app.http.get(format!("{}/metrics", app.metrics_url)).send().await.unwrap().text().await.unwrap() };
    let value = |text: &str, series: &str| -> f64 {
        text.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };
    let before = scrape().await;
    // The free plan's burst is 20 with a stopped clock: 20 admitted, 5 rate limited.
    for _ in 0..25 {
        app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send().await.unwrap();
    }
    let after = scrape().await;
    let delta = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(delta("turnpike_gateway_requests_total{api=\"echo\",plan=\"free\",status=\"2xx\"}"), 20.0, "{after}");
    assert_eq!(delta("turnpike_gateway_requests_total{api=\"echo\",plan=\"free\",status=\"4xx\"}"), 5.0);
    // Counters are process-wide (other tests in this binary add to them): at least ours.
    assert!(delta("turnpike_limiter_decisions_total{decision=\"admitted\"}") >= 20.0);
    assert!(delta("turnpike_limiter_decisions_total{decision=\"rate_limited\"}") >= 5.0);
    assert!(delta("turnpike_gateway_upstream_seconds_count") >= 20.0);
    assert!(delta("turnpike_gateway_overhead_seconds_count") >= 25.0);
    assert!(after.contains("turnpike_gateway_overhead_seconds_bucket{le=\"0.001\"}"));
    assert!(after.contains("turnpike_key_cache_hits_total"));
    app.stop().await;
}

/// Raise this process's soft limit on open files to `want` if it is lower; false when the hard
/// limit does not allow it.
fn raise_fd_limit(want: u64) -> bool {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    if now.current.is_none_or(|c| c >= want) {
        return true;
    }
    if now.maximum.is_some_and(|h| h < want) {
        return false;
    }
    setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: now.maximum }).is_ok()
}

/// 500 connections that never finish their request headers, three ways: 200 stop part-way
/// through them, 200 trickle a byte every 200 ms (the header deadline is for the whole head, not
/// per read), 100 connect and send nothing at all. Normal requests are still answered in under a
/// second, and after the header timeout every one of the 500 has been answered 408 or closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_neither_block_others_nor_stay_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The 500 client sockets and the gateway's 500 live in this one test process.
    if !raise_fd_limit(4096) {
        turnpike_testkit::skip("file descriptors", "slowloris_connections", "the hard RLIMIT_NOFILE is below 4096");
        return;
    }
    let db = TestDb::sqlite().await;
    let app = TestApp::start_with(&db, &CounterBackend::Local, system_clock(), |c| c.header_read_timeout_ms = 1_000).await;
    let (key, _, _) = app.developer_key("slow@example.com").await;
    let addr = app.gateway_url.trim_start_matches("http://").to_owned();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    let mut tricklers = Vec::new();
    for i in 0..500 {
        let (r, mut w) = tokio::net::TcpStream::connect(&addr).await.unwrap().into_split();
        match i % 5 {
            0 | 1 => {
                w.write_all(b"GET /echo/x HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
                writers.push(w);
            }
            2 | 3 => {
                w.write_all(b"GET /echo/x HTTP/1.1\r\nHost: x\r\nX-Trickle: ").await.unwrap();
                tricklers.push(tokio::spawn(async move {
                    while w.write_all(b"a").await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }));
            }
            // Kept open without a byte (dropping the write half would send FIN).
            _ => writers.push(w),
        }
        readers.push(r);
    }
    let opened = Instant::now();
    // Normal requests are still answered promptly.
    for _ in 0..20 {
        let t = Instant::now();
        let r = app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(t.elapsed() < Duration::from_secs(1), "took {:?}", t.elapsed());
    }
    // After the header timeout (1 s, plus as much again for a connection's first bytes) every
    // slow connection has been answered 408 or closed.
    tokio::time::sleep(Duration::from_millis(2_500).saturating_sub(opened.elapsed())).await;
    let reads = readers.into_iter().enumerate().map(|(i, mut r)| async move {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(3), r.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Ok(()),
            Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 408") => Ok(()),
            Ok(Ok(n)) => Err(format!("connection {i} (kind {}) read {:?}", i % 5, String::from_utf8_lossy(&buf[..n]))),
            Err(_) => Err(format!("connection {i} (kind {}) still open", i % 5)),
        }
    });
    let results = futures_util::future::join_all(reads).await;
    let open: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(results.len() - open.len(), 500, "{} of 500 still open, e.g. {:?}", open.len(), open.iter().take(3).collect::<Vec<_>>());
    drop(writers);
    for t in tricklers {
        tokio::time::timeout(Duration::from_secs(2), t).await.expect("trickler stops once its connection is closed").unwrap();
    }
    app.stop().await;
}

/// A plan that fails open keeps serving on local limits for its grace, then fails closed; when
/// Redis answers again, what was admitted meanwhile is added to the shared quota, and the
/// database has every admitted request exactly once (Redis executed none of the timed-out
/// scripts late: they carry a deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_open_plan_runs_on_local_limits_for_its_grace_then_reconciles() {
    let Some(redis) = OwnRedis::start("a_fail_open_plan_runs_on_local_limits") else { return };
    let db = TestDb::sqlite().await;
    let clock = std::sync::Arc::new(turnpike_store::clock::ManualClock::at(1_790_000_000));
    let url = redis.url();
    let counters = CounterBackend::Redis { url: url.clone(), prefix: "failopen".into() };
    let app = TestApp::start_with(&db, &counters, clock.clone(), |c| c.redis_timeout_ms = 300).await;
    let (key, key_id, _) = app.developer_key("open@example.com").await;
    let plan = app.store.default_plans().await.unwrap().into_iter().next().expect("the seeded free plan");
    app.store.set_plan_failure_policy(plan.id, Some(60), clock.now()).await.unwrap();
    app.gateway.follow().await.unwrap();
    let mut admitted = 0;
    let call = || {
        // Slower than the plan's rate, so only the quota and the outage decide.
        clock.advance_micros(200_000);
        app.http.get(app.gw("/echo/x")).bearer_auth(key.expose()).send()
    };
    for _ in 0..3 {
        assert_eq!(call().await.unwrap().status(), 200);
        admitted += 1;
    }

    // Redis stalls (every command waits) for 4 s: each request gives up on it after 300 ms and
    // is admitted on local limits instead.
    let mut admin = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let paused_at = Instant::now();
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(4000).arg("ALL").query_async(&mut admin).await.unwrap();
    admitted += crate::served_fail_open(&call, 4, "fail-open plan is served during the outage").await;
    // Past the plan's grace the outage fails closed.
    clock.set(clock.now() + 61);
    let r = call().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");

    // Redis is back: served through it again, and the shared quota counter catches up with the
    // four requests admitted locally (reconciliation runs in the background).
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(paused_at.elapsed()) + Duration::from_millis(200)).await;
    assert_eq!(call().await.unwrap().status(), 200);
    admitted += 1;
    let quota_key: Vec<String> = redis::cmd("KEYS").arg("failopen:*:q:*").query_async(&mut admin).await.unwrap();
    assert_eq!(quota_key.len(), 1, "{quota_key:?}");
    let started = Instant::now();
    loop {
        let used: i64 = redis::cmd("GET").arg(&quota_key[0]).query_async(&mut admin).await.unwrap();
        if used == admitted {
            break;
        }
        assert!(used < admitted, "the shared quota counted {used}, more than the {admitted} admitted");
        assert!(started.elapsed() < Duration::from_secs(5), "quota counter stuck at {used}, expected {admitted}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
    // Every admitted request is in the database exactly once, summed over the Redis source and
    // the gateway's fail-open source.
    assert_eq!(db.store.key_usage_total(key_id).await.unwrap().admitted, admitted);
}
