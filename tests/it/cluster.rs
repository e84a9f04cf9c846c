//! Several real `turnpike gateway` processes sharing PostgreSQL and Redis: quotas and metering
//! stay exact across them, through plan changes and a SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{Role, Store, Visibility};
use turnpike_testkit::TestDb;

use crate::upstreams::{self, Behaviour};

/// A real `turnpike gateway` process configured through the environment.
pub(crate) struct GatewayProcess {
    pub(crate) child: Child,
    pub(crate) url: String,
    /// `http://host:port` of its operations listener (`/readyz`, `/metrics`).
    pub(crate) ops: String,
}

impl GatewayProcess {
    fn start(db_url: &str, redis_url: &str, prefix: &str) -> GatewayProcess {
        Self::start_with(db_url, &[("TURNPIKE_REDIS_URL", redis_url), ("TURNPIKE_REDIS_PREFIX", prefix)])
    }

    pub(crate) fn start_with(db_url: &str, env: &[(&str, &str)]) -> GatewayProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnpike"));
        for (k, _) in std::env::vars() {
            if k.starts_with("TURNPIKE_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .arg("gateway")
            .env("TURNPIKE_DATABASE_URL", db_url)
            .env("TURNPIKE_REDIS_TIMEOUT_MS", "3000")
            .env("TURNPIKE_GATEWAY_ADDR", "127.0.0.1:0")
            .env("TURNPIKE_METRICS_ADDR", "127.0.0.1:0")
            .env("TURNPIKE_FLUSH_INTERVAL_MS", "200")
            .env("TURNPIKE_FOLLOW_INTERVAL_MS", "100")
            .env("TURNPIKE_ACCESS_LOG", "false")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut ops) = (None, None);
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(u) = line.strip_prefix("gateway: ") {
                url = Some(u.to_owned());
            }
            if let Some(u) = line.strip_prefix("metrics: ") {
                ops = u.strip_suffix("/metrics").map(str::to_owned);
            }
            if line == "ready" {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        GatewayProcess { child, url: url.expect("gateway printed its URL"), ops: ops.expect("gateway printed its metrics URL") }
    }

    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
    }

    pub(crate) fn kill(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub(crate) struct Setup {
    pub(crate) store: Store,
    pub(crate) key: ApiKey,
    pub(crate) key_id: i64,
    pub(crate) plan_id: i64,
}

async fn setup(store: &Store, quota: i64) -> Setup {
    setup_with(store, quota, Behaviour::Named("ok")).await
}

pub(crate) async fn setup_with(store: &Store, quota: i64, upstream: Behaviour) -> Setup {
    let up = upstreams::start(upstream).await;
    let plan = turnpike_testkit::default_plan("metered", 1_000_000, 1_000_000, Some(quota));
    let (_, plan_id) = turnpike_testkit::publish(store, "pay", "Pay", &[(&format!("http://{up}"), 1)], Visibility::Public, &plan, 0).await;
    let now = turnpike_store::clock::Clock::now(&turnpike_store::clock::SystemClock);
    let acc = store.create_account(&Email::parse("p@example.com").unwrap(), "x", Role::Developer, now).await.unwrap();
    let app = store.create_app(acc.id, "partner", now).await.unwrap();
    store.subscribe_defaults(app.id, now).await.unwrap();
    let key = ApiKey::generate();
    let rec = store.create_key(app.id, "k", &key, now).await.unwrap();
    Setup { store: store.clone(), key, key_id: rec.id, plan_id }
}

/// Fire `n` requests at `concurrency` spread round-robin over the gateways; counts by outcome.
pub(crate) async fn fire(urls: &[String], key: &str, n: usize, concurrency: usize) -> (usize, usize, usize) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).timeout(Duration::from_secs(20)).build().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, ok, limited, failed, urls, key) =
            (client.clone(), next.clone(), ok.clone(), limited.clone(), failed.clone(), urls.to_vec(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let url = format!("{}/pay/x", urls[i % urls.len()]);
                match client.get(&url).bearer_auth(&key).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) if r.status() == 429 => limited.fetch_add(1, Ordering::Relaxed),
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (ok.load(Ordering::Relaxed), limited.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

pub(crate) async fn settled_total(store: &Store, key_id: i64, want: i64) -> i64 {
    let started = Instant::now();
    loop {
        let got = store.key_usage_total(key_id).await.unwrap().admitted;
        if got == want || started.elapsed() > Duration::from_secs(5) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_an_exact_quota_and_meter_exactly() {
    let Some(db) = TestDb::postgres("two_gateways_share_an_exact_quota").await else { return };
    let Some((redis_url, prefix)) = turnpike_testkit::redis_prefix("two_gateways_share_an_exact_quota").await else { return };
    let s = setup(&db.store, 1_000).await;
    let g1 = GatewayProcess::start(&db.url, &redis_url, &prefix);
    let g2 = GatewayProcess::start(&db.url, &redis_url, &prefix);
    let urls = vec![g1.url.clone(), g2.url.clone()];

    let (ok, limited, failed) = fire(&urls, s.key.expose(), 20_000, 64).await;
    assert_eq!((ok, limited, failed), (1_000, 19_000, 0), "a quota of 1,000 admits exactly 1,000");
    assert_eq!(settled_total(&s.store, s.key_id, 1_000).await, 1_000, "exactly 1,000 in the database");

    // Raising the quota to 1,500 admits exactly 500 more, on both gateways.
    s.store.update_plan_limits(s.plan_id, 1_000_000, 1_000_000, Some(1_500), 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (ok, limited, failed) = fire(&urls, s.key.expose(), 2_000, 32).await;
    assert_eq!((ok, limited, failed), (500, 1_500, 0));
    assert_eq!(settled_total(&s.store, s.key_id, 1_500).await, 1_500);

    // A revoked key is refused by both gateway processes within a second.
    let app_id = s.store.key_auth(&s.key.hash()).await.unwrap().unwrap().app_id;
    s.store.revoke_key(app_id, s.key_id, 0).await.unwrap();
    let revoked = Instant::now();
    let client = reqwest::Client::new();
    for url in &urls {
        loop {
            let st = client.get(format!("{url}/pay/x")).bearer_auth(s.key.expose()).send().await.unwrap().status();
            if st == 403 {
                break;
            }
            assert!(revoked.elapsed() < Duration::from_secs(1), "{url} still answers {st} after 1 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    g1.stop();
    g2.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_gateway_mid_load_loses_no_admitted_count() {
    let Some(db) = TestDb::postgres("sigkill_of_a_gateway_mid_load").await else { return };
    let Some((redis_url, prefix)) = turnpike_testkit::redis_prefix("sigkill_of_a_gateway_mid_load").await else { return };
    let s = setup(&db.store, 1_000_000).await;
    let victim = GatewayProcess::start(&db.url, &redis_url, &prefix);
    let survivor = GatewayProcess::start(&db.url, &redis_url, &prefix);
    let urls = vec![victim.url.clone(), survivor.url.clone()];
    let load = {
        let (urls, key) = (urls.clone(), s.key.expose().to_owned());
        tokio::spawn(async move { fire(&urls, &key, 6_000, 32).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    victim.kill();
    let (ok, _, failed) = load.await.unwrap();
    assert!(ok > 0 && failed > 0, "the kill happened mid-load (ok {ok}, failed {failed})");

    // The truth is what Redis admitted; the survivor's flusher must bring all of it to the database,
    // including what only the killed gateway had counted.
    let mut conn = redis::Client::open(redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*:u:*")).query_async(&mut conn).await.unwrap();
    let mut admitted_in_redis = 0i64;
    for k in keys {
        let v: Option<i64> = redis::cmd("HGET").arg(&k).arg("admitted").query_async(&mut conn).await.unwrap();
        admitted_in_redis += v.unwrap_or(0);
    }
    assert!(admitted_in_redis >= ok as i64, "every 200 the clients saw was counted");
    assert!(admitted_in_redis <= (ok + failed) as i64, "nothing counted that was not sent");
    assert_eq!(settled_total(&s.store, s.key_id, admitted_in_redis).await, admitted_in_redis, "no admitted count lost");
    survivor.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_flushes_the_meter() {
    // SQLite and in-process counters, flushed every minute: only the final flush on SIGTERM can
    // bring these requests to the database.
    let db = TestDb::sqlite().await;
    let s = setup_with(&db.store, 1_000_000, Behaviour::Slow(Duration::from_millis(600))).await;
    let g = GatewayProcess::start_with(&db.url, &[("TURNPIKE_FLUSH_INTERVAL_MS", "60000")]);
    let url = g.url.clone();
    let client = reqwest::Client::new();
    let mut in_flight = Vec::new();
    for _ in 0..30 {
        let (c, u, k) = (client.clone(), format!("{url}/pay/x"), s.key.expose().to_owned());
        in_flight.push(tokio::spawn(async move { c.get(u).bearer_auth(k).send().await.map(|r| r.status().as_u16()) }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = g.child.id();
    let term = tokio::task::spawn_blocking(move || g.stop());
    for t in in_flight {
        assert_eq!(t.await.unwrap().expect("in-flight request completes"), 200);
    }
    term.await.unwrap();
    // New connections are refused once it has stopped.
    assert!(client.get(format!("{url}/pay/x")).send().await.is_err(), "process {pid} still accepting");
    assert_eq!(s.store.key_usage_total(s.key_id).await.unwrap().admitted, 30, "final flush wrote every admitted request");
}
