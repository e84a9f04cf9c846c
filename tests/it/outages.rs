//! Outages of what the gateway depends on, on servers each test starts itself: Redis killed or
//! restarted mid-load, PostgreSQL stopped for 30 s, upstreams that refuse, stall or reset. Every
//! test counts: what the clients saw, what the counter store holds and what the database bills.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use turnpike_store::clock::{Clock, ManualClock};
use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{Role, Store, Visibility};
use turnpike_testkit::TestDb;

use crate::cluster::GatewayProcess;
use crate::throwaway::{OwnPostgres, OwnRedis};
use crate::upstreams::{self, Behaviour};
use crate::{system_clock, CounterBackend, TestApp};

/// What one request of a load task saw.
#[derive(Debug, Clone)]
struct Shot {
    sent: Instant,
    done: Instant,
    /// 0: no HTTP answer at all (connection error or the client's own 10 s timeout).
    status: u16,
    retry_after: Option<String>,
    /// The problem's `code` (non-2xx answers).
    code: Option<String>,
}

/// Concurrent clients calling one URL in a loop until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Shot>>>,
}

impl Load {
    fn start(url: String, key: &str, tasks: usize) -> Load {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let tasks = (0..tasks)
            .map(|_| {
                let (client, url, key, stop, ok) = (client.clone(), url.clone(), key.to_owned(), stop.clone(), ok.clone());
                tokio::spawn(async move {
                    let mut shots = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let (status, retry_after, code) = match client.get(&url).bearer_auth(&key).send().await {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                                let body = r.bytes().await.unwrap_or_default();
                                let code = (status != 200)
                                    .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
                                    .flatten()
                                    .and_then(|v| v["code"].as_str().map(str::to_owned));
                                if status == 200 {
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                (status, retry_after, code)
                            }
                            Err(_) => (0, None, None),
                        };
                        shots.push(Shot { sent, done: Instant::now(), status, retry_after, code });
                    }
                    shots
                })
            })
            .collect();
        Load { stop, ok, tasks }
    }

    /// Wait until `n` more requests than now have been answered 200.
    async fn wait_for_more_ok(&self, n: usize, limit: Duration) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        let started = Instant::now();
        while self.ok.load(Ordering::Relaxed) < target {
            assert!(started.elapsed() < limit, "fewer than {n} requests admitted in {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop, and collect every shot; a task that does not finish is a hang.
    async fn finish(self) -> Vec<Shot> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            let shots = tokio::time::timeout(Duration::from_secs(20), t).await.expect("a load task hung").unwrap();
            all.extend(shots);
        }
        all
    }
}

/// Every answer is 200 or a prompt 503 problem (`unavailable`, `Retry-After: 1`); after `down`
/// no request waits longer than 2 s for its answer. Returns the number of 200s and the number of
/// 503s to requests sent before `down` (their admission script may have run just before Redis
/// went away, with the reply lost).
fn check_outage_answers(shots: &[Shot], down: Instant) -> (i64, i64) {
    let mut ok = 0;
    let mut unknown_fate = 0;
    for s in shots {
        match s.status {
            200 => ok += 1,
            503 => {
                assert_eq!(s.code.as_deref(), Some("unavailable"), "{s:?}");
                assert_eq!(s.retry_after.as_deref(), Some("1"), "{s:?}");
                if s.sent < down {
                    unknown_fate += 1;
                }
            }
            _ => panic!("unexpected answer {s:?}"),
        }
        if s.done > down {
            let waited = s.done - s.sent.max(down);
            assert!(waited < Duration::from_secs(2), "answered {waited:?} after Redis went down: {s:?}");
        }
    }
    (ok, unknown_fate)
}

/// Admitted counts in Redis under `prefix`: the sum over the usage buckets, and every quota
/// counter.
async fn redis_counts(url: &str, prefix: &str) -> (i64, Vec<i64>) {
    let mut c = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let buckets: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*:u:*")).query_async(&mut c).await.unwrap();
    let mut admitted = 0;
    for b in buckets {
        let v: Option<i64> = redis::cmd("HGET").arg(&b).arg("admitted").query_async(&mut c).await.unwrap();
        admitted += v.unwrap_or(0);
    }
    let quotas: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*:q:*")).query_async(&mut c).await.unwrap();
    let mut used = Vec::new();
    for q in quotas {
        used.push(redis::cmd("GET").arg(&q).query_async::<i64>(&mut c).await.unwrap());
    }
    (admitted, used)
}

/// The key's admitted total in the database once it stops changing at `want` (or whatever it is
/// after 15 s).
async fn settled_total(store: &Store, key_id: i64, want: i64) -> i64 {
    let started = Instant::now();
    loop {
        let got = store.key_usage_total(key_id).await.unwrap().admitted;
        if got == want || started.elapsed() > Duration::from_secs(15) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Call until the gateway admits through the (restarted) counter store again; every answer
/// meanwhile is a 503.
async fn until_admitted(app: &TestApp, path: &str, key: &ApiKey) -> usize {
    let started = Instant::now();
    let mut refused = 0;
    loop {
        let r = app.http.get(app.gw(path)).bearer_auth(key.expose()).send().await.unwrap();
        match r.status().as_u16() {
            200 => return refused,
            503 => refused += 1,
            s => panic!("unexpected {s}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "Redis is back but the gateway still answers 503");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fail-closed plan under load while Redis is `kill -9`ed: nothing hangs, every answer after
/// the kill is a 503 within 2 s, and once Redis is back (from its append-only file) every
/// request Redis admitted is in the database exactly once.
///
/// Redis runs with `appendfsync always`: a Redis that keeps nothing on disk loses the counts
/// admitted since the last flush with it (documented in docs/operations.md), so only a
/// persistent Redis can be held to "exactly".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_fails_closed_within_2s_and_loses_no_admitted_count() {
    let Some(mut redis) = OwnRedis::start_aof("redis_killed_mid_load") else { return };
    let db = TestDb::sqlite().await;
    let counters = CounterBackend::Redis { url: redis.url(), prefix: "kill".into() };
    let app = TestApp::start_with(&db, &counters, system_clock(), |c| c.redis_timeout_ms = 500).await;
    let up = upstreams::start(Behaviour::Named("ok")).await;
    app.publish("svc", &[(&format!("http://{up}"), 1)]).await;
    let (key, key_id, _) = app.developer_key("kill@example.com").await;

    let load = Load::start(app.gw("/svc/x"), key.expose(), 8);
    load.wait_for_more_ok(50, Duration::from_secs(20)).await;
    redis.kill();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let ready = app.http.get(format!("{}/readyz", app.metrics_url)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("counters"));
    let shots = load.finish().await;

    let (ok, unknown_fate) = check_outage_answers(&shots, down);
    let after = shots.iter().filter(|s| s.sent >= down).count();
    assert!(after >= 8, "requests were sent while Redis was down ({after})");
    assert!(shots.iter().filter(|s| s.sent >= down).all(|s| s.status == 503), "nothing is admitted without Redis");

    // Redis comes back with its counters; the meter writes what it could not write meanwhile.
    redis.restart();
    let refused = until_admitted(&app, "/svc/x", &key).await;
    let ok = ok + 1;
    let (in_redis, quota) = redis_counts(&redis.url(), "kill").await;
    assert_eq!(quota, vec![in_redis], "the quota counter holds exactly what the buckets hold");
    assert_eq!(settled_total(&db.store, key_id, in_redis).await, in_redis, "the database holds exactly what Redis admitted");
    // Every 200 is counted; beyond them at most the requests that were waiting for Redis when it
    // died (their script may have run, the reply was lost: the gateway answered 503).
    assert!(in_redis >= ok && in_redis <= ok + unknown_fate, "admitted {in_redis}, 200s {ok}, 503s of unknown fate {unknown_fate}");
    eprintln!(
        "redis kill: {} requests, {ok} admitted, {in_redis} counted, {unknown_fate} answered 503 while in flight at the kill, {refused} 503 after the restart",
        shots.len()
    );
    app.stop().await;
    assert_eq!(db.store.key_usage_total(key_id).await.unwrap().admitted, in_redis);
}

/// Redis shut down and restarted on the same port while the load goes on: requests are refused
/// (503, promptly) only while it is down, then admitted again; no admitted request is lost or
/// counted twice: admitted in Redis == the quota counter == the database, and that is every 200
/// the clients saw plus at most the requests in flight at the shutdown (answered 503; their
/// script may have run before Redis went away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_with_aof_mid_load_loses_and_doubles_nothing() {
    let Some(mut redis) = OwnRedis::start_aof("redis_restarted_with_aof_mid_load") else { return };
    let db = TestDb::sqlite().await;
    let counters = CounterBackend::Redis { url: redis.url(), prefix: "restart".into() };
    let app = TestApp::start_with(&db, &counters, system_clock(), |c| c.redis_timeout_ms = 500).await;
    let up = upstreams::start(Behaviour::Named("ok")).await;
    app.publish("svc", &[(&format!("http://{up}"), 1)]).await;
    let (key, key_id, _) = app.developer_key("restart@example.com").await;

    let load = Load::start(app.gw("/svc/x"), key.expose(), 8);
    load.wait_for_more_ok(50, Duration::from_secs(20)).await;
    redis.shutdown().await;
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart();
    let back = Instant::now();
    load.wait_for_more_ok(50, Duration::from_secs(10)).await;
    let shots = load.finish().await;

    let (ok, unknown_fate) = check_outage_answers(&shots, down);
    let refused = shots.iter().filter(|s| s.status == 503).count();
    assert!(refused >= 1, "some request met the outage");
    assert!(shots.iter().any(|s| s.sent > back && s.status == 200), "admitted again after the restart");
    let (in_redis, quota) = redis_counts(&redis.url(), "restart").await;
    assert_eq!(quota, vec![in_redis], "the quota counter holds exactly what the buckets hold");
    assert!(in_redis >= ok && in_redis <= ok + unknown_fate, "admitted {in_redis}, 200s {ok}, 503s of unknown fate {unknown_fate}");
    assert_eq!(settled_total(&db.store, key_id, in_redis).await, in_redis, "the database holds exactly what Redis admitted");
    eprintln!(
        "redis restart: {} requests, {ok} admitted, {in_redis} counted, {refused} refused ({unknown_fate} in flight at the shutdown)",
        shots.len()
    );
    app.stop().await;
    assert_eq!(db.store.key_usage_total(key_id).await.unwrap().admitted, in_redis);
}

/// A fail-open plan when Redis is really gone (killed, connection refused, not just stalled):
/// served on local limits for its grace, 503 after it; when Redis is restarted on the same port
/// the shared quota counter catches up with what was admitted locally, and the database holds
/// every admitted request exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_open_plan_survives_a_redis_kill_and_reconciles_after_the_restart() {
    let Some(mut redis) = OwnRedis::start_aof("a_fail_open_plan_survives_a_redis_kill") else { return };
    let db = TestDb::sqlite().await;
    let clock = Arc::new(ManualClock::at(1_790_000_000));
    let counters = CounterBackend::Redis { url: redis.url(), prefix: "openkill".into() };
    let app = TestApp::start_with(&db, &counters, clock.clone(), |c| c.redis_timeout_ms = 500).await;
    let up = upstreams::start(Behaviour::Named("ok")).await;
    let api_id = app.publish("svc", &[(&format!("http://{up}"), 1)]).await;
    let plan = app.store.default_plans().await.unwrap().into_iter().find(|p| p.api_id == api_id).unwrap();
    app.store.set_plan_failure_policy(plan.id, Some(60), clock.now()).await.unwrap();
    let (key, key_id, _) = app.developer_key("openkill@example.com").await;
    let call = || {
        clock.advance_micros(100_000);
        app.http.get(app.gw("/svc/x")).bearer_auth(key.expose()).send()
    };
    let mut admitted = 0;
    for _ in 0..3 {
        assert_eq!(call().await.unwrap().status(), 200);
        admitted += 1;
    }

    redis.kill();
    admitted += crate::served_fail_open(&call, 5, "fail-open plan is served while Redis is down").await;
    clock.set(clock.now() + 61);
    let t = Instant::now();
    let r = call().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "answered in {:?}", t.elapsed());
    assert_eq!(r.status(), 503, "past the grace the plan fails closed");
    assert_eq!(r.headers()["retry-after"], "1");

    redis.restart();
    until_admitted(&app, "/svc/x", &key).await;
    admitted += 1;
    let started = Instant::now();
    loop {
        let (_, quota) = redis_counts(&redis.url(), "openkill").await;
        assert_eq!(quota.len(), 1, "{quota:?}");
        if quota[0] == admitted {
            break;
        }
        assert!(quota[0] < admitted, "the shared quota counted {}, more than the {admitted} admitted", quota[0]);
        assert!(started.elapsed() < Duration::from_secs(10), "quota counter stuck at {}, expected {admitted}", quota[0]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
    assert_eq!(db.store.key_usage_total(key_id).await.unwrap().admitted, admitted);
}

/// PostgreSQL stopped for 30 s under a paced load: every call of the cached key is served (also
/// after its cache entry's safety-net TTL ran out mid-outage), an unknown key is refused with a
/// prompt 503, /readyz stays 200 but says `degraded: database`, the failing meter flushes are retried, and once the
/// database is back it holds exactly the number of 200s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_30s_cached_keys_served_and_the_meter_catches_up_exactly() {
    let pg = match OwnPostgres::start() {
        Ok(pg) => pg,
        Err(why) => {
            turnpike_testkit::skip("postgresql server binaries", "postgres_stopped_for_30s", &why);
            return;
        }
    };
    let db = TestDb::existing(&pg.url()).await;
    let clock = Arc::new(ManualClock::at(1_790_000_000));
    let app = TestApp::start_with(&db, &CounterBackend::Local, clock.clone(), |_| {}).await;
    let up = upstreams::start(Behaviour::Named("ok")).await;
    app.publish("svc", &[(&format!("http://{up}"), 1)]).await;
    let (key, key_id, _) = app.developer_key("pg@example.com").await;
    let call = |k: &ApiKey| app.http.get(app.gw("/svc/x")).bearer_auth(k.expose()).send();
    assert_eq!(call(&key).await.unwrap().status(), 200);
    let mut served = 1;
    app.gateway.flush().await.unwrap();
    assert_eq!(db.store.key_usage_total(key_id).await.unwrap().admitted, 1);

    pg.stop();
    let stopped = Instant::now();
    let flushes_before = app.gateway.stats().flushes;
    let unknown = ApiKey::generate();
    let mut checked_unknown = false;
    let mut ttl_passed = false;
    while stopped.elapsed() < Duration::from_secs(30) {
        // Half-way, the key's cache entry outlives its 60 s safety-net TTL.
        if !ttl_passed && stopped.elapsed() > Duration::from_secs(15) {
            clock.set(clock.now() + 61);
            ttl_passed = true;
        }
        let t = Instant::now();
        let r = call(&key).await.unwrap();
        assert_eq!(r.status(), 200, "cached key served {:?} into the outage", stopped.elapsed());
        assert!(t.elapsed() < Duration::from_secs(2), "answered in {:?}", t.elapsed());
        served += 1;
        // By now the change-log poll has found the database failing (the pool gives up on it
        // within its 5 s acquire timeout).
        if !checked_unknown && stopped.elapsed() > Duration::from_secs(8) {
            // An unknown key cannot be told from a valid one without the database.
            for _ in 0..2 {
                let t = Instant::now();
                let r = call(&unknown).await.unwrap();
                assert!(t.elapsed() < Duration::from_secs(2), "unknown key answered in {:?}", t.elapsed());
                assert_eq!(r.status(), 503);
                let v: serde_json::Value = r.json().await.unwrap();
                assert_eq!(v["code"], "unavailable");
            }
            let t = Instant::now();
            let ready = app.http.get(format!("{}/readyz", app.metrics_url)).send().await.unwrap();
            assert!(t.elapsed() < Duration::from_secs(2), "/readyz answered in {:?}", t.elapsed());
            // Degraded but ready: taking every gateway out of rotation would turn a database
            // outage into a full one while cached keys can still be served.
            assert_eq!(ready.status(), 200);
            let text = ready.text().await.unwrap();
            assert!(text.contains("degraded: database"), "{text}");
            let metrics = app.http.get(format!("{}/metrics", app.metrics_url)).send().await.unwrap().text().await.unwrap();
            assert!(metrics.contains("turnpike_database_up 0"), "the follower saw the outage");
            checked_unknown = true;
        }
        clock.advance_micros(100_000);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ttl_passed && checked_unknown);
    assert_eq!(app.gateway.stats().flushes, flushes_before, "no flush can succeed without the database");

    pg.start_again().unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    assert_eq!(settled_total(&db.store, key_id, served).await, served, "the backlog drains: every 200 exactly once");
    let ready = app.http.get(format!("{}/readyz", app.metrics_url)).send().await.unwrap();
    assert_eq!((ready.status().as_u16(), ready.text().await.unwrap()), (200, "ready".to_owned()));
    // Further flushes (and the final one) change nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop().await;
    assert_eq!(db.store.key_usage_total(key_id).await.unwrap().admitted, served);
}

/// The upstream behaviours of the upstream-failure test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing listens.
    Refused,
    /// Answers after 10 s, far past the gateway's 300 ms `upstream_timeout_ms`.
    Slow,
    /// Reads the request, then resets the connection.
    ResetBeforeHeaders,
    /// Sends the headers and 100 of 1,000 body bytes, then resets.
    ResetMidBody,
    /// Answers 200 `ok`.
    Fine,
}

const FAULTS: [Fault; 4] = [Fault::Refused, Fault::Slow, Fault::ResetBeforeHeaders, Fault::ResetMidBody];

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// One request to the API in front of `fault`, checked: the right answer, promptly.
async fn call_fault(client: &reqwest::Client, base: &str, key: &str, fault: Fault) {
    let slug = match fault {
        Fault::Refused => "refused",
        Fault::Slow => "slow",
        Fault::ResetBeforeHeaders => "reset-early",
        Fault::ResetMidBody => "reset-mid",
        Fault::Fine => "fine",
    };
    let t = Instant::now();
    let r = client.get(format!("{base}/{slug}/x")).bearer_auth(key).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.bytes().await;
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "{fault:?} answered in {took:?}");
    let code = |body: &bytes::Bytes| serde_json::from_slice::<serde_json::Value>(body).unwrap()["code"].as_str().unwrap().to_owned();
    match fault {
        Fault::Refused | Fault::ResetBeforeHeaders => {
            assert_eq!(status, 502, "{fault:?}");
            assert_eq!(code(&body.unwrap()), "bad_gateway");
        }
        Fault::Slow => {
            assert_eq!(status, 504);
            assert_eq!(code(&body.unwrap()), "gateway_timeout");
            assert!(took >= Duration::from_millis(300), "{took:?}");
        }
        // The status line was already forwarded: the client's connection is cut, not hung.
        Fault::ResetMidBody => {
            assert_eq!(status, 200);
            assert!(body.is_err(), "a body the upstream broke off must not look complete: {body:?}");
        }
        Fault::Fine => {
            assert_eq!(status, 200);
            assert_eq!(&body.unwrap()[..], b"ok");
        }
    }
}

/// 1,000 requests to upstreams that refuse, time out or reset (250 each) beside 100 good ones,
/// through a real `turnpike gateway` process: each gets its prompt 502/504 or a cut connection,
/// the process's open file descriptors return to where they were, and the meter counts every
/// one as admitted and 5xx, so under the default `admitted_non_5xx` rule only the good requests
/// are billable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_answer_promptly_leak_no_descriptors_and_are_not_billed() {
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let targets = [
        ("refused", upstreams::refused().await),
        ("slow", upstreams::start(Behaviour::Slow(Duration::from_secs(10))).await),
        ("reset-early", upstreams::start_reset(false).await),
        ("reset-mid", upstreams::start_reset(true).await),
        ("fine", upstreams::start(Behaviour::Named("ok")).await),
    ];
    let plan = turnpike_testkit::default_plan("metered", 1_000_000, 1_000_000, None);
    let mut apis = Vec::new();
    for (slug, addr) in &targets {
        let (api, _) = turnpike_testkit::publish(store, slug, slug, &[(&format!("http://{addr}"), 1)], Visibility::Public, &plan, 0).await;
        apis.push(api);
    }
    let now = Clock::now(&turnpike_store::clock::SystemClock);
    let acc = store.create_account(&Email::parse("up@example.com").unwrap(), "x", Role::Developer, now).await.unwrap();
    let app = store.create_app(acc.id, "partner", now).await.unwrap();
    store.subscribe_defaults(app.id, now).await.unwrap();
    let key = ApiKey::generate();
    let key_id = store.create_key(app.id, "k", &key, now).await.unwrap().id;
    let subs = store.entitlements(app.id).await.unwrap();
    let sub_of = |api: i64| subs.iter().find(|e| e.api_id == api).unwrap().subscription_id;

    let g = GatewayProcess::start_with(&db.url, &[("TURNPIKE_UPSTREAM_TIMEOUT_MS", "300")]);
    let pid = g.child.id();
    // A new connection per request: idle client connections would be descriptors of the gateway.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(10)).build().unwrap();
    for f in FAULTS.iter().chain([&Fault::Fine]) {
        call_fault(&client, &g.url, key.expose(), *f).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = open_fds(pid);

    // 25 clients share the 1,000 fault requests; one more sends the good ones one after another
    // (so the gateway keeps the single pooled connection to that upstream it had at the baseline).
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..25 {
        let (client, next, base, key) = (client.clone(), next.clone(), g.url.clone(), key.expose().to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= 1_000 {
                    break;
                }
                call_fault(&client, &base, &key, FAULTS[i % 4]).await;
            }
        }));
    }
    {
        let (client, base, key) = (client.clone(), g.url.clone(), key.expose().to_owned());
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                call_fault(&client, &base, &key, Fault::Fine).await;
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t).await.expect("requests hung").unwrap();
    }
    drop(client);

    // Every connection of those requests closes; the tolerance covers a second SQLite pool
    // connection (database, WAL and shared-memory files) that a flush overlapping a
    // change-log poll may open; a leak of even one descriptor per hundred requests is 10.
    let started = Instant::now();
    let mut now_open = open_fds(pid);
    while now_open > baseline + 3 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now_open = open_fds(pid);
    }
    eprintln!("gateway descriptors: {baseline} before, {now_open} after 1,100 requests");
    assert!(now_open <= baseline + 3, "descriptors leaked: {baseline} before, {now_open} after");

    g.stop();
    // Admitted and 5xx per API (each is its own subscription), over every source.
    for (api, (slug, _)) in apis.iter().zip(&targets) {
        let (admitted, s5) = store.subscription_usage_totals(sub_of(*api), 0, i64::MAX).await.unwrap();
        if *slug == "fine" {
            assert_eq!((admitted, s5), (101, 0), "{slug}");
        } else {
            assert_eq!((admitted, s5), (251, 251), "{slug}: admitted and answered 5xx, so never billable");
        }
    }
    let total = store.key_usage_total(key_id).await.unwrap();
    assert_eq!((total.admitted, total.errors), (1_105, 1_004));
}
