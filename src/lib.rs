//! The `turnpike` binary's library: configuration, wiring of the roles, first-start seeding and
//! the operational endpoints. `main.rs` only parses the command line and calls into this.

pub mod alerts;
pub mod config;
pub mod echo;
pub mod listen;
mod mailer;
mod ops;
pub mod seed;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use turnpike_gateway::{Counters, Gateway, LocalCounters, RedisCounters};
use turnpike_store::clock::SharedClock;
use turnpike_store::Store;

pub use config::Config;

/// Which parts of Turnpike this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Portal, gateway and background workers in one process (the default).
    Serve,
    /// Only the gateway (and its meter flusher).
    Gateway,
    /// Only the portal.
    Portal,
    /// Only the background workers (mailer, housekeeping).
    Worker,
}

impl Role {
    fn gateway(self) -> bool {
        matches!(self, Role::Serve | Role::Gateway)
    }
    fn portal(self) -> bool {
        matches!(self, Role::Serve | Role::Portal)
    }
    fn workers(self) -> bool {
        matches!(self, Role::Serve | Role::Worker)
    }
}

/// A built, bound, not yet running Turnpike process.
pub struct App {
    /// The database.
    pub store: Store,
    /// The gateway, when this role runs one.
    pub gateway: Option<Gateway>,
    /// Bound portal address.
    pub portal_addr: Option<SocketAddr>,
    /// Bound gateway address.
    pub gateway_addr: Option<SocketAddr>,
    /// Bound metrics/health address.
    pub metrics_addr: SocketAddr,
    /// Public portal URL.
    pub portal_url: String,
    /// Public gateway URL.
    pub gateway_url: String,
    /// What first-start seeding created, if it ran.
    pub seeded: Option<seed::Seeded>,
    /// The gateway listener's certificate, when it serves TLS (reloaded on SIGHUP and when
    /// its files change).
    pub gateway_tls: Option<Arc<turnpike_tls::ServerTls>>,
    /// The portal listener's certificate, when it serves TLS.
    pub portal_tls: Option<Arc<turnpike_tls::ServerTls>>,
    /// The OTLP span exporter, when `otlp_endpoint` is set (flushed on shutdown; tests flush it
    /// to wait for spans).
    pub otlp: Option<turnpike_gateway::otlp::Exporter>,
    portal_listener: Option<TcpListener>,
    gateway_listener: Option<TcpListener>,
    /// SIGHUP, listened for from `build` on (before "ready"), so an early signal reloads the
    /// certificates instead of ending the process.
    #[cfg(unix)]
    sighup: Option<tokio::signal::unix::Signal>,
    metrics_listener: TcpListener,
    clock: SharedClock,
    config: Config,
    role: Role,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("role", &self.role).field("portal", &self.portal_addr).field("gateway", &self.gateway_addr).finish()
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for the {what} (set {what}_addr)"))
}

/// Connect to the database named by the configuration and apply migrations.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(cfg.database_url.expose()).await.context("cannot open the database (database_url)")?;
    store.migrate().await.context("database migration failed")?;
    Ok(store)
}

/// Start the demo upstream (when configured) and seed an empty database with it.
async fn seed_demo(config: &Config, store: &Store, clock: &SharedClock) -> anyhow::Result<Option<seed::Seeded>> {
    let echo_url = match config.demo_upstream_addr {
        Some(addr) => {
            let l = bind(addr, "demo_upstream").await?;
            let url = format!("http://{}", l.local_addr()?);
            tokio::spawn(echo::serve(l));
            Some(url)
        }
        None => None,
    };
    Ok(seed::seed_if_empty(store, echo_url.as_deref(), clock.now()).await?)
}

/// The gateway's counter store: Redis (standalone or Cluster) when configured, else in process.
async fn connect_counters(config: &Config) -> anyhow::Result<Counters> {
    let timeout = Duration::from_millis(config.redis_timeout_ms);
    Ok(match &config.redis_url {
        Some(_) if config.redis_cluster => Counters::Redis(Arc::new(
            RedisCounters::connect_cluster(&config.redis_seeds(), &config.redis_prefix, timeout)
                .await
                .context("cannot connect to the Redis Cluster (redis_url, redis_cluster)")?,
        )),
        Some(url) => Counters::Redis(Arc::new(
            RedisCounters::connect(url.expose(), &config.redis_prefix, timeout).await.context("cannot connect to Redis (redis_url)")?,
        )),
        None => Counters::Local(Arc::new(LocalCounters::new(format!("proc-{:016x}", rand::random::<u64>())))),
    })
}

/// Portal requests as OTLP SERVER spans: a valid incoming `traceparent` is continued (the
/// caller's span is the parent, its sampled flag decides), else a new trace sampled by
/// `trace_sample_ratio`.
fn portal_spans(exporter: turnpike_gateway::otlp::Exporter) -> turnpike_portal::telemetry::SpanSink {
    let sampled = turnpike_gateway::trace::ratio_sampler(exporter.sample_ratio());
    turnpike_portal::telemetry::SpanSink(Arc::new(move |r: &turnpike_portal::telemetry::RequestRecord<'_>| {
        if let Some(span) = portal_span(r, sampled) {
            exporter.export(span);
        }
    }))
}

/// The span of one portal request, `None` when not sampled.
fn portal_span(
    r: &turnpike_portal::telemetry::RequestRecord<'_>,
    sampled: impl Fn(&[u8; 16]) -> bool,
) -> Option<turnpike_gateway::otlp::SpanData> {
    use turnpike_gateway::otlp::{SpanData, SpanKind, Value};
    use turnpike_gateway::trace::{TraceParent, SAMPLED};
    let (fresh, span_id) = SpanData::new_ids();
    let (trace_id, parent_id) = match r.traceparent.and_then(TraceParent::parse) {
        Some(tp) if tp.flags & SAMPLED == 0 => return None,
        Some(tp) => (tp.trace_id, Some(tp.parent_id)),
        None if sampled(&fresh) => (fresh, None),
        None => return None,
    };
    let end = turnpike_gateway::otlp::unix_nanos();
    Some(SpanData {
        trace_id,
        span_id,
        parent_id,
        name: format!("{} {}", r.method, r.route),
        kind: SpanKind::Server,
        start_unix_nanos: end.saturating_sub(u64::try_from(r.latency.as_nanos()).unwrap_or(u64::MAX)),
        end_unix_nanos: end,
        attributes: vec![
            ("http.request.method", Value::Str(r.method.to_owned())),
            ("http.route", Value::Str(r.route.to_owned())),
            ("http.response.status_code", Value::Int(r.status.into())),
            ("turnpike.request_id", Value::Str(r.request_id.to_owned())),
        ],
        events: Vec::new(),
        error: r.status >= 500,
        scope: "turnpike-portal",
    })
}

impl App {
    /// Open the database, migrate, seed an empty one, bind every listener of `role`.
    pub async fn build(config: Config, role: Role, clock: SharedClock) -> anyhow::Result<App> {
        let _ = ops::prometheus();
        let store = open_store(&config).await?;
        // Refuse a bad smtp_url / mail_from at start, not when the first email is due.
        mailer::Transport::from_config(&config)?;
        let metrics_listener = bind(config.metrics_addr, "metrics").await?;
        let portal_listener = if role.portal() { Some(bind(config.portal_addr, "portal").await?) } else { None };
        let gateway_listener = if role.gateway() { Some(bind(config.gateway_addr, "gateway").await?) } else { None };
        let portal_addr = portal_listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let gateway_addr = gateway_listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let load_tls = |listener: &str, serves: bool| -> anyhow::Result<Option<Arc<turnpike_tls::ServerTls>>> {
            match config.listener_tls(listener)? {
                Some(files) if serves => Ok(Some(turnpike_tls::ServerTls::load(files).with_context(|| format!("{listener} TLS"))?)),
                _ => Ok(None),
            }
        };
        let gateway_tls = load_tls("gateway", role.gateway())?;
        let portal_tls = load_tls("portal", role.portal())?;
        let scheme = |tls: &Option<_>| if tls.is_some() { "https" } else { "http" };
        let portal_url =
            config.portal_url.clone().unwrap_or_else(|| format!("{}://{}", scheme(&portal_tls), portal_addr.unwrap_or(config.portal_addr)));
        let gateway_url = config
            .gateway_url
            .clone()
            .unwrap_or_else(|| format!("{}://{}", scheme(&gateway_tls), gateway_addr.unwrap_or(config.gateway_addr)));

        let seeded = if role == Role::Serve && config.seed_demo { seed_demo(&config, &store, &clock).await? } else { None };

        let otlp = match &config.otlp_endpoint {
            Some(e) => Some(turnpike_gateway::otlp::Exporter::start(e, &config.otlp_service_name, config.trace_sample_ratio)?),
            None => None,
        };
        let gateway = if role.gateway() {
            let counters = connect_counters(&config).await?;
            let mut gc = config.gateway(&portal_url)?;
            gc.tls = gateway_tls.clone();
            gc.otlp = otlp.clone();
            Some(Gateway::new(gc, store.clone(), counters, clock.clone()).await?)
        } else {
            None
        };

        Ok(App {
            store,
            gateway,
            portal_addr,
            gateway_addr,
            metrics_addr: metrics_listener.local_addr()?,
            portal_url,
            gateway_url,
            seeded,
            #[cfg(unix)]
            sighup: if gateway_tls.is_some() || portal_tls.is_some() {
                Some(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("cannot listen for SIGHUP")?)
            } else {
                None
            },
            gateway_tls,
            portal_tls,
            otlp,
            portal_listener,
            gateway_listener,
            metrics_listener,
            clock,
            config,
            role,
        })
    }

    /// Run until `shutdown` resolves; then stop accepting, drain, flush the meter and return.
    pub async fn run_until_stopped(mut self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();

        tasks.spawn(ops::upkeep(stop_rx.clone()));

        let stripe = stripe_bridge(&self.config, &self.portal_url)?;
        if let (Some(listener), true) = (self.portal_listener.take(), self.role.portal()) {
            self.spawn_portal(&mut tasks, listener, stripe.clone(), stop_rx.clone())?;
        }

        // Certificates: reloaded on SIGHUP, and when their files change.
        let certs: Vec<_> = [&self.gateway_tls, &self.portal_tls].into_iter().flatten().cloned().collect();
        if !certs.is_empty() {
            if self.config.tls_reload_interval_ms > 0 {
                for c in &certs {
                    c.watch_files(Duration::from_millis(self.config.tls_reload_interval_ms), stop_rx.clone());
                }
            }
            #[cfg(unix)]
            if let Some(hup) = self.sighup.take() {
                tasks.spawn(reload_on_sighup(hup, certs, stop_rx.clone()));
            }
        }

        let mut gateway_workers = None;
        if let (Some(gw), Some(listener)) = (self.gateway.clone(), self.gateway_listener.take()) {
            gateway_workers = Some(gw.spawn_workers(stop_rx.clone()));
            let mut rx = stop_rx.clone();
            tasks.spawn(async move {
                let _ = gw
                    .serve(listener, async move {
                        let _ = rx.wait_for(|s| *s).await;
                    })
                    .await;
            });
        }

        if self.role.workers() {
            self.spawn_workers(&mut tasks, stripe, &stop_rx)?;
        }

        let ops_state = ops::OpsState { store: self.store.clone(), gateway: self.gateway.clone() };
        let mut rx = stop_rx.clone();
        let metrics_listener = self.metrics_listener;
        tasks.spawn(async move {
            let _ = axum::serve(metrics_listener, ops::router(ops_state))
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
        });

        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        // The final meter flush runs after the listeners have drained.
        if let Some(w) = gateway_workers {
            let _ = w.await;
        }
        if let Some(otlp) = &self.otlp {
            otlp.flush().await;
        }
        Ok(())
    }

    /// Serve the portal on `listener` (over TLS when configured) until `stop`.
    fn spawn_portal(
        &self,
        tasks: &mut JoinSet<()>,
        listener: TcpListener,
        stripe: Option<turnpike_stripe::Stripe>,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let state = turnpike_portal::PortalState {
            store: self.store.clone(),
            clock: self.clock.clone(),
            config: Arc::new(turnpike_portal::PortalConfig {
                gateway_url: self.gateway_url.clone(),
                public_url: self.portal_url.clone(),
                // Served over TLS: the session cookie is `__Host-` and `Secure` by itself.
                secure_cookies: self.config.secure_cookies || self.portal_tls.is_some(),
            }),
        };
        let trusted_proxies = Arc::new(self.config.trusted_proxies()?);
        // The portal's throttles resolve the client through the same trusted proxies.
        let mut app = turnpike_portal::pages::stripe::with_stripe(turnpike_portal::app(state), stripe);
        if let Some(sink) = self.otlp.clone().map(portal_spans) {
            app = app.layer(axum::Extension(sink));
        }
        let app = app.layer(axum::Extension(trusted_proxies)).into_make_service_with_connect_info::<SocketAddr>();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let handshake = Duration::from_millis(self.config.header_read_timeout_ms);
        match &self.portal_tls {
            Some(tls) => {
                use axum::serve::ListenerExt;
                // tap_io: axum then knows the client's address as ConnectInfo<SocketAddr>.
                let listener = listen::TlsListener::new(listener, tls.clone(), handshake)?.tap_io(|_| ());
                tasks.spawn(async move {
                    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
                        tracing::error!(error = %e, "portal stopped");
                    }
                });
            }
            None => {
                tasks.spawn(async move {
                    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
                        tracing::error!(error = %e, "portal stopped");
                    }
                });
            }
        }
        Ok(())
    }

    /// The background workers (mailer, housekeeping, alerts, Stripe, ledger), until `stop`.
    fn spawn_workers(
        &self,
        tasks: &mut JoinSet<()>,
        stripe: Option<turnpike_stripe::Stripe>,
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let transport = mailer::Transport::from_config(&self.config)?;
        tasks.spawn(mailer::run(self.store.clone(), self.clock.clone(), transport, stop.clone()));
        tasks.spawn(housekeeping(self.store.clone(), self.clock.clone(), stop.clone()));
        // Quota and key-expiry emails, and owners' webhooks (exactly once / at least once, safe on several workers).
        let portal_url = self.portal_url.clone();
        tasks.spawn(alerts::run(self.store.clone(), self.clock.clone(), portal_url, Duration::from_secs(30), stop.clone()));
        if stripe.is_some() {
            tasks.spawn(stripe_worker(self.store.clone(), self.clock.clone(), stripe.clone(), stop.clone()));
        }
        // Billing: finalize ended periods into invoices (exactly once, safe on several workers).
        // Waits `invoice_settle_seconds` after a period ends, so gateways have flushed its last requests.
        let settle = i64::try_from(self.config.invoice_settle_seconds).unwrap_or(i64::MAX);
        tasks.spawn(turnpike_ledger::run_worker(self.store.clone(), self.clock.clone(), Duration::from_secs(60), settle, stop.clone()));
        Ok(())
    }
}

/// Reload every listener's certificate on SIGHUP (nginx's convention), until `stop`.
#[cfg(unix)]
async fn reload_on_sighup(mut hup: tokio::signal::unix::Signal, certs: Vec<Arc<turnpike_tls::ServerTls>>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = hup.recv() => {
                for c in &certs {
                    if let Err(e) = c.reload() {
                        tracing::warn!(error = %e, "SIGHUP: cannot load the TLS certificate; keeping the one in use");
                    }
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (not when the
/// future is first polled), so a signal that arrives right after "ready" is not lost.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut t), Ok(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => {},
                        _ = i.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The Stripe bridge when `stripe_secret_key` and `stripe_webhook_secret` are set; `None` leaves
/// every Stripe route at 404 and starts no Stripe task.
pub fn stripe_bridge(cfg: &Config, portal_url: &str) -> anyhow::Result<Option<turnpike_stripe::Stripe>> {
    match cfg.stripe(portal_url) {
        Some(settings) => Ok(Some(turnpike_stripe::Stripe::new(settings).context("invalid Stripe configuration")?)),
        None => Ok(None),
    }
}

/// How often the Stripe worker looks for ended grace periods.
const STRIPE_TICK: Duration = Duration::from_secs(1);

/// Background task (worker role, Stripe configured): every second, subscriptions whose grace
/// period after a failed payment ended become `past_due` (gateways answer 402 within a second),
/// and Stripe is brought in line with local changes ([`stripe_sync_step`]).
/// Usage pushes are made by billing finalization through `turnpike_stripe::push_usage`.
/// Every ten minutes: drop change-log rows gateways have long applied, throttle events past
/// every window, and expired sessions. Idempotent, so several workers may run it.
async fn housekeeping(store: Store, clock: SharedClock, mut stop: watch::Receiver<bool>) {
    use tower_sessions::session_store::ExpiredDeletion;
    loop {
        let day_ago = clock.now() - 86_400;
        if let Err(e) = store.prune_changes(day_ago).await {
            tracing::warn!(error = %e, "change-log pruning failed");
        }
        if let Err(e) = store.throttle_prune(day_ago).await {
            tracing::warn!(error = %e, "throttle pruning failed");
        }
        if let Err(e) = store.delete_expired().await {
            tracing::warn!(error = %e, "expired-session deletion failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn stripe_worker(store: Store, clock: SharedClock, stripe: Option<turnpike_stripe::Stripe>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = turnpike_stripe::expire_grace(&store, clock.now()).await {
            tracing::warn!(error = %e, "stripe grace check failed");
        }
        if let Some(stripe) = &stripe {
            stripe_sync_step(&store, stripe, clock.now()).await;
            if let Err(e) = push_finalized_usage(&store, stripe, clock.now()).await {
                tracing::warn!(error = %e, "pushing usage to Stripe failed; retried next tick");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(STRIPE_TICK) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One convergence step towards Stripe: the catalogue (a Price per paid plan version, superseded
/// ones archived), then every local lifecycle change Stripe does not hold yet. Each part retries
/// next tick on failure; both are idempotent (see `turnpike_stripe::sync_subscriptions`).
pub async fn stripe_sync_step(store: &Store, stripe: &turnpike_stripe::Stripe, now: i64) {
    if let Err(e) = turnpike_stripe::sync_catalogue(store, stripe, now).await {
        tracing::warn!(error = %e, "Stripe catalogue sync failed; retried next tick");
    }
    if let Err(e) = turnpike_stripe::sync_subscriptions(store, stripe, now).await {
        tracing::warn!(error = %e, "pushing subscription changes to Stripe failed; retried next tick");
    }
}

/// Push each finalized invoice's usage amount to Stripe once (idempotency key per subscription and
/// period; the local invoice decides the amount, so Stripe bills exactly what the ledger says).
async fn push_finalized_usage(store: &Store, stripe: &turnpike_stripe::Stripe, now: i64) -> anyhow::Result<()> {
    for inv in store.invoices_to_push(50).await? {
        let usage_minor: i64 = store.invoice_lines(inv.id).await?.iter().filter(|l| l.kind == "usage").map(|l| l.amount_minor).sum();
        let period = turnpike_store::period::Period { start: inv.period_start, end: inv.period_end };
        turnpike_stripe::push_usage(store, stripe, inv.subscription_id, period, inv.usage_quantity, usage_minor, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod portal_span_tests {
    use super::*;
    use turnpike_portal::telemetry::RequestRecord;

    fn record(traceparent: Option<&[u8]>) -> RequestRecord<'_> {
        RequestRecord { method: "GET", route: "/apps/{id}", status: 200, latency: Duration::from_millis(3), request_id: "r1", traceparent }
    }

    #[test]
    fn a_valid_traceparent_is_continued_else_a_new_trace_starts() {
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = portal_span(&record(Some(tp)), |_| false).expect("the caller sampled it: the ratio does not apply");
        let parsed = turnpike_gateway::trace::TraceParent::parse(tp).unwrap();
        assert_eq!(span.trace_id, parsed.trace_id);
        assert_eq!(span.parent_id, Some(parsed.parent_id));
        assert_ne!(span.span_id, parsed.parent_id);
        assert_eq!(span.name, "GET /apps/{id}");

        let unsampled = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(portal_span(&record(Some(unsampled)), |_| true).is_none(), "the caller's decision is kept");

        for bad in [
            &b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"[..],
            b"garbage",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let span = portal_span(&record(Some(bad)), |_| true).expect("a new trace, sampled by the ratio");
            assert_ne!(span.trace_id, parsed.trace_id);
            assert_eq!(span.parent_id, None);
        }
        let span = portal_span(&record(None), |_| true).unwrap();
        assert_eq!(span.parent_id, None);
        assert!(portal_span(&record(None), |_| false).is_none());
    }
}
