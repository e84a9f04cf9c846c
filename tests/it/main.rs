//! End-to-end tests of the `turnpike` process: the real portal, gateway, store and meter flush on
//! real sockets, on SQLite + in-process counters and on PostgreSQL + Redis.

mod alerts;
mod analytics;
mod apply;
mod billing;
mod browser;
mod cli;
mod cluster;
mod faults;
mod gateway;
mod https;
mod journey;
mod jwt;
mod outages;
mod paths;
mod proxies;
mod rcluster;
mod smuggling;
mod statuses;
mod stripe;
mod teardown;
mod throwaway;
mod tls;
mod tracing;
mod upstreams;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use turnpike::{App, Config, Role};
use turnpike_gateway::Gateway;
use turnpike_store::clock::SharedClock;
use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{Role as AccountRole, Store};
use turnpike_testkit::TestDb;

/// Which counter store a test runs against.
#[derive(Debug, Clone)]
pub enum CounterBackend {
    Local,
    Redis { url: String, prefix: String },
}

impl CounterBackend {
    /// In-process always; Redis too when reachable (loud skip otherwise). Each one's name is
    /// printed as the loop reaches it, so a failure's output says which store it ran on.
    pub async fn each(test: &str) -> impl Iterator<Item = CounterBackend> {
        let mut v = vec![CounterBackend::Local];
        if let Some((url, prefix)) = turnpike_testkit::redis_prefix(test).await {
            v.push(CounterBackend::Redis { url, prefix });
        }
        v.into_iter().inspect(|c| println!("counters: {}", c.name()))
    }
    pub fn name(&self) -> &'static str {
        match self {
            CounterBackend::Local => "local",
            CounterBackend::Redis { .. } => "redis",
        }
    }
}

pub struct TestApp {
    pub store: Store,
    pub gateway: Gateway,
    pub portal_url: String,
    pub gateway_url: String,
    pub metrics_url: String,
    pub http: reqwest::Client,
    pub clock: SharedClock,
    /// The listeners' certificates, when the test configured TLS.
    pub gateway_tls: Option<std::sync::Arc<turnpike_tls::ServerTls>>,
    pub portal_tls: Option<std::sync::Arc<turnpike_tls::ServerTls>>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn start(db: &TestDb, counters: &CounterBackend, clock: SharedClock) -> TestApp {
        Self::start_with(db, counters, clock, |_| {}).await
    }

    pub async fn start_with(db: &TestDb, counters: &CounterBackend, clock: SharedClock, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let _ = tracing_subscriber::fmt().with_env_filter("warn,turnpike=info").with_test_writer().try_init();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = Config {
            database_url: db.url.as_str().into(),
            portal_addr: any,
            gateway_addr: any,
            metrics_addr: any,
            demo_upstream_addr: Some(any),
            flush_interval_ms: 100,
            follow_interval_ms: 100,
            access_log: false,
            ..Config::default()
        };
        if let CounterBackend::Redis { url, prefix } = counters {
            config.redis_url = Some(url.as_str().into());
            config.redis_prefix = prefix.clone();
            // Generous: the whole suite shares 2 cores; production keeps the 250 ms default.
            config.redis_timeout_ms = 3000;
        }
        tweak(&mut config);
        let app = App::build(config, Role::Serve, clock.clone()).await.expect("app builds");
        let (tx, rx) = oneshot::channel();
        let mut t = TestApp {
            store: app.store.clone(),
            gateway: app.gateway.clone().expect("serve runs a gateway"),
            portal_url: app.portal_url.clone(),
            gateway_url: app.gateway_url.clone(),
            metrics_url: format!("http://{}", app.metrics_addr),
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(10)).build().unwrap(),
            clock,
            gateway_tls: app.gateway_tls.clone(),
            portal_tls: app.portal_tls.clone(),
            stop: Some(tx),
            done: None,
        };
        t.done = Some(tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        })));
        t
    }

    /// Stop like SIGTERM would: drain, final flush.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(d) = self.done.take() {
            d.await.expect("app task").expect("clean stop");
        }
    }

    /// A developer with an app subscribed to the public default plans and one key.
    pub async fn developer_key(&self, email: &str) -> (ApiKey, i64, i64) {
        let s = &self.store;
        let now = self.clock.now();
        let acc = s.create_account(&Email::parse(email).unwrap(), "x", AccountRole::Developer, now).await.unwrap();
        let app = s.create_app(acc.id, "app", now).await.unwrap();
        s.subscribe_defaults(app.id, now).await.unwrap();
        let key = ApiKey::generate();
        let rec = s.create_key(app.id, "k", &key, now).await.unwrap();
        // Gateways learn about new keys through the change log.
        self.gateway.follow().await.unwrap();
        (key, rec.id, app.id)
    }

    /// Publish a public API at `/{slug}` with these upstream targets and a default free plan;
    /// returns the API id.
    pub async fn publish(&self, slug: &str, upstreams: &[(&str, u32)]) -> i64 {
        let plan = turnpike_testkit::default_plan("free", 100_000, 100_000, None);
        let (api_id, _) =
            turnpike_testkit::publish(&self.store, slug, slug, upstreams, turnpike_store::Visibility::Public, &plan, self.clock.now())
                .await;
        self.gateway.follow().await.unwrap();
        api_id
    }

    pub fn gw(&self, path: &str) -> String {
        format!("{}{}", self.gateway_url, path)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The text between `start` and `end` in `html`.
pub fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = html.find(start)? + start.len();
    let j = html[i..].find(end)? + i;
    Some(&html[i..j])
}

/// The CSRF token of the first form on a page.
pub fn csrf(html: &str) -> String {
    between(html, "name=\"csrf\" value=\"", "\"").expect("form has a csrf token").to_owned()
}

/// `n` requests of a fail-open plan while its Redis is unusable: each answered 200 within 2 s with
/// its rate-limit headers (served on the gateway's local limits). Returns `n`, the admitted count.
pub async fn served_fail_open<F, Fut>(call: F, n: i64, why: &str) -> i64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    for _ in 0..n {
        let t = std::time::Instant::now();
        let r = call().await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "answered in {:?}", t.elapsed());
        assert_eq!(r.status(), 200, "{why}");
        assert!(r.headers().contains_key("ratelimit"));
    }
    n
}

pub fn system_clock() -> SharedClock {
    Arc::new(turnpike_store::clock::SystemClock)
}
