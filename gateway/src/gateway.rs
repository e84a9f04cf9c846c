use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::header;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use turnpike_store::clock::SharedClock;

use turnpike_store::{Store, StoreError};

use crate::access::AccessLog;
use crate::analytics::Analytics;
use crate::auth::KeyCache;
use crate::counters::{Counters, LocalCounters};
use crate::phases::{self, Ctx, Step};
use crate::proxy::{self, BoxBody, UpstreamClient};
use crate::routes::RouteTable;
use crate::trace::Mark;
use crate::upstream_tls::TlsClient;
use crate::GatewayConfig;

/// Counters about the gateway itself, for tests and `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GatewayStats {
    /// Database key lookups (cache misses).
    pub key_lookups: u64,
    /// Key cache hits.
    pub key_cache_hits: u64,
    /// Requests refused before any lookup (missing key, bad format or checksum).
    pub refused_without_lookup: u64,
    /// Successful meter flushes.
    pub flushes: u64,
    /// Unix seconds of the last successful flush.
    pub last_flush: i64,
    /// Change-log version applied.
    pub change_version: i64,
    /// Keys in the cache (known and unknown).
    pub key_cache_entries: usize,
    /// Access-log buffers dropped because the writer fell behind.
    pub access_log_dropped: u64,
    /// The last change-log poll reached the database.
    pub database_up: bool,
}

pub(crate) struct Inner {
    pub(crate) cfg: GatewayConfig,
    pub(crate) store: Store,
    pub(crate) clock: SharedClock,
    pub(crate) counters: Counters,
    /// Requests by operation with latency histograms, for owners' analytics.
    pub(crate) analytics: Arc<Analytics>,
    pub(crate) routes: ArcSwap<RouteTable>,
    pub(crate) keys: KeyCache,
    pub(crate) client: UpstreamClient,
    /// For `https://` targets: the webpki-roots client, and per-API clients (`upstream_tls`).
    pub(crate) tls_client: TlsClient,
    pub(crate) tls_by_api: HashMap<String, TlsClient>,
    pub(crate) touches: Mutex<HashMap<i64, i64>>,
    pub(crate) refused_without_lookup: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) last_flush: AtomicI64,
    /// Held by a flush from its snapshot to its write: a second flush (the worker's and an
    /// explicit one, or shutdown's) waits, so when `flush()` returns every count taken before the
    /// call is written, and two writes of one bucket never cross.
    pub(crate) flush_lock: tokio::sync::Mutex<()>,
    pub(crate) change_version: AtomicI64,
    pub(crate) seen_changes: Mutex<HashMap<i64, i64>>,
    /// One change-log poll at a time: a poll that marks a change seen applies it (a new route
    /// table) before another poll may look, so `follow()` returning means every change it saw or
    /// that a concurrent poll had seen is in effect.
    pub(crate) follow_lock: tokio::sync::Mutex<()>,
    pub(crate) access: Option<AccessLog>,
    /// Redis mode: local limits for plans that fail open, counted under this gateway's own
    /// meter source, and the start of the current outage (unix seconds, 0 = none).
    pub(crate) fallback: Option<(Arc<LocalCounters>, Counters)>,
    pub(crate) outage_since: AtomicI64,
    pub(crate) no_route: metrics::Counter,
    /// `turnpike_limiter_decisions_total` by decision: admitted, rate_limited, quota_exceeded,
    /// unavailable, fail_open.
    pub(crate) decisions: [metrics::Counter; 5],
    /// Time spent in the gateway itself (total minus upstream), seconds.
    pub(crate) overhead: metrics::Histogram,
    /// Time to the upstream's response headers, seconds.
    pub(crate) upstream: metrics::Histogram,
}

/// The client side of a connection, computed once per connection.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) ip: Box<str>,
    pub(crate) addr: std::net::IpAddr,
    /// The peer is one of `trusted_proxies`: its `X-Forwarded-*` headers are believed.
    pub(crate) trusted: bool,
    /// The connection came over this gateway's TLS listener.
    pub(crate) tls: bool,
}

/// The gateway: cheap to clone, shared by every connection.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gateway(counters={})", self.inner.counters.kind())
    }
}

impl Gateway {
    /// Load routes and the change-log position; ready to serve.
    pub async fn new(cfg: GatewayConfig, store: Store, counters: Counters, clock: SharedClock) -> Result<Gateway, StoreError> {
        // Changes visible now are reflected in what is loaded below, so they count as applied;
        // read them first so that nothing committed in between is skipped.
        let now = clock.now();
        let version = store.latest_change().await?;
        let seen: HashMap<i64, i64> = store
            .changes_after(version, now - crate::follower::REREAD_SECONDS, 100_000)
            .await?
            .into_iter()
            .map(|c| (c.version, now))
            .collect();
        let analytics = Arc::new(Analytics::new());
        let apis = store.list_apis().await?;
        let routes = RouteTable::build_with(&apis, &analytics.operations(&store, &apis).await);
        let client = proxy::client(cfg.connect_timeout);
        // Built now (reading the webpki roots once); unused while no target is https://.
        let tls_client = match crate::upstream_tls::client_config(None) {
            Ok(c) => crate::upstream_tls::client(&c, cfg.connect_timeout),
            Err(e) => unreachable_tls(e),
        };
        let tls_by_api =
            cfg.upstream_tls.iter().map(|(api, c)| (api.clone(), crate::upstream_tls::client(c, cfg.connect_timeout))).collect();
        let access_log = cfg.access_log;
        let fallback = matches!(counters, Counters::Redis(_)).then(|| {
            let local = Arc::new(LocalCounters::new(format!("failopen-{:016x}", rand::random::<u64>())));
            (local.clone(), Counters::Local(local))
        });
        Ok(Gateway {
            inner: Arc::new(Inner {
                keys: KeyCache::new(store.clone(), cfg.key_cache_capacity, cfg.key_cache_ttl, cfg.lookup_timeout),
                cfg,
                store,
                clock,
                counters,
                analytics,
                routes: ArcSwap::from_pointee(routes),
                client,
                tls_client,
                tls_by_api,
                touches: Mutex::new(HashMap::new()),
                refused_without_lookup: AtomicU64::new(0),
                flushes: AtomicU64::new(0),
                last_flush: AtomicI64::new(0),
                flush_lock: tokio::sync::Mutex::new(()),
                change_version: AtomicI64::new(version),
                seen_changes: Mutex::new(seen),
                follow_lock: tokio::sync::Mutex::new(()),
                access: access_log.then(AccessLog::start),
                fallback,
                outage_since: AtomicI64::new(0),
                no_route: metrics::counter!("turnpike_gateway_requests_total", "api" => "-", "plan" => "-", "status" => "4xx"),
                decisions: ["admitted", "rate_limited", "quota_exceeded", "unavailable", "fail_open"]
                    .map(|d| metrics::counter!("turnpike_limiter_decisions_total", "decision" => d)),
                overhead: metrics::histogram!("turnpike_gateway_overhead_seconds"),
                upstream: metrics::histogram!("turnpike_gateway_upstream_seconds"),
            }),
        })
    }

    /// A snapshot of the gateway's own counters.
    pub fn stats(&self) -> GatewayStats {
        let i = &self.inner;
        GatewayStats {
            key_lookups: i.keys.lookups.load(Ordering::Relaxed),
            key_cache_hits: i.keys.hits.load(Ordering::Relaxed),
            refused_without_lookup: i.refused_without_lookup.load(Ordering::Relaxed),
            flushes: i.flushes.load(Ordering::Relaxed),
            last_flush: i.last_flush.load(Ordering::Relaxed),
            change_version: i.change_version.load(Ordering::Relaxed),
            key_cache_entries: i.keys.len(),
            access_log_dropped: i.access.as_ref().map_or(0, |a| a.dropped.load(Ordering::Relaxed)),
            database_up: !i.keys.database_failing.load(Ordering::Relaxed),
        }
    }

    /// The counter store in use.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Readiness. `Err` (take this gateway out of rotation) while the counter store is
    /// unreachable: every fail-closed request would be refused. A database outage is
    /// `Ok(Some(reason))`, degraded but ready: cached keys are still served and the meter keeps
    /// counting, so taking every gateway out of rotation would turn a database outage into a
    /// full one.
    pub async fn ready(&self) -> Result<Option<String>, String> {
        self.inner.counters.ping().await.map_err(|e| format!("counters: {e}"))?;
        let ping = tokio::time::timeout(self.inner.cfg.lookup_timeout, self.inner.store.ping());
        Ok(ping.await.unwrap_or(Err(StoreError::Timeout)).err().map(|e| format!("database: {e}")))
    }

    pub async fn serve(&self, listener: TcpListener, shutdown: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(self.inner.cfg.header_read_timeout).max_buf_size(64 * 1024);
        builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256);
        let builder = Arc::new(Builders { h1: builder.clone().http1_only(), h2: builder.clone().http2_only(), auto: builder });
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, remote) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let (gw, builder, watcher) = (self.clone(), builder.clone(), graceful.watcher());
                    tokio::spawn(async move { gw.connection(stream, remote, &builder, watcher).await });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        if tokio::time::timeout(self.inner.cfg.drain_timeout, graceful.shutdown()).await.is_err() {
            tracing::warn!("drain deadline passed with requests still in flight");
        }
        if let Some(log) = &self.inner.access {
            log.flush();
        }
        Ok(())
    }

    /// One client connection: PROXY protocol header (if configured), TLS handshake (if
    /// configured), then HTTP/1.1 or HTTP/2 until it closes or the gateway drains.
    async fn connection(
        self,
        mut stream: tokio::net::TcpStream,
        mut remote: std::net::SocketAddr,
        builder: &Builders,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let first_bytes = self.inner.cfg.header_read_timeout;
        if self.inner.cfg.proxy_protocol {
            // The balancer's header names the client; without one, close.
            match tokio::time::timeout(first_bytes, crate::proxy_protocol::read_header(&mut stream)).await {
                Ok(Ok(Some(client))) => remote = client,
                Ok(Ok(None)) => {}
                Ok(Err(_)) | Err(_) => return,
            }
        }
        let trusted = !self.inner.cfg.trusted_proxies.is_empty() && self.inner.cfg.trusted_proxies.contains(remote.ip());
        let tls = self.inner.cfg.tls.clone();
        let peer = Arc::new(Peer { ip: remote.ip().to_string().into_boxed_str(), addr: remote.ip(), trusted, tls: tls.is_some() });
        let gw = self.clone();
        let svc = service_fn(move |req| {
            let gw = gw.clone();
            let peer = peer.clone();
            async move { Ok::<_, Infallible>(gw.handle(req, &peer).await) }
        });
        match tls {
            None => {
                if !protocol_announced(&stream, first_bytes).await {
                    return;
                }
                // Closed in stages when dropped with unread input, so an early 413 reaches the client.
                let io = TokioIo::new(crate::linger::LingeringStream::new(stream));
                let _ = watcher.watch(builder.auto.serve_connection_with_upgrades(io, svc)).await;
            }
            Some(tls) => {
                // The header read timeout also bounds the handshake (a silent client is closed).
                let accept = tls.acceptor().accept(crate::linger::LingeringStream::new(stream));
                let Ok(Ok(stream)) = tokio::time::timeout(first_bytes, accept).await else { return };
                // ALPN decides the protocol; no preface sniffing over TLS.
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                let io = TokioIo::new(stream);
                let http = if h2 { &builder.h2 } else { &builder.h1 };
                let _ = watcher.watch(http.serve_connection_with_upgrades(io, svc)).await;
            }
        }
    }

    /// Handle one request through the phases (see [`crate::phases`]); each may answer early.
    pub(crate) async fn handle(&self, req: Request<Incoming>, peer: &Peer) -> Response<BoxBody> {
        // CORS: only for configured origins (the portal's "try it" by default); anything else
        // gets no CORS headers and the browser keeps the response from the calling page.
        let origin = match req.headers().get(header::ORIGIN) {
            Some(o) if self.inner.cfg.cors_origins.iter().any(|a| a == o) => Some(o.clone()),
            _ => None,
        };
        if let Some(o) = &origin {
            if req.method() == http::Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
                return proxy::preflight(o, req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS));
            }
        }
        let mut ctx = Ctx::new(&req);
        if self.inner.cfg.trace_context {
            let cfg = &self.inner.cfg;
            let mut t = crate::trace::Trace::start(req.headers(), cfg.otlp.is_some(), crate::trace::ratio_sampler(cfg.trace_sample_ratio));
            t.remember(&req);
            ctx.trace = Some(t);
        }
        if peer.trusted {
            let xff = req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
            let client = turnpike_store::net::client_ip(peer.addr, xff, &self.inner.cfg.trusted_proxies);
            ctx.client = Some(client.to_string().into_boxed_str());
        }
        let (Ok(mut resp) | Err(mut resp)) = self.phases(req, peer, &mut ctx).await;
        phases::meter::finish(&self.inner, &mut ctx, peer, resp.status().as_u16());
        resp.headers_mut().insert(&proxy::X_REQUEST_ID, ctx.request_id);
        if let Some(o) = origin {
            proxy::allow_origin(resp.headers_mut(), o);
        }
        resp
    }

    /// The phases in order; the response body carries the meter phase's recording.
    async fn phases(&self, req: Request<Incoming>, peer: &Peer, ctx: &mut Ctx) -> Step<Response<BoxBody>> {
        let inner = &*self.inner;
        let routed = phases::route::run(inner, &req, ctx)?;
        ctx.mark(Mark::Routed);
        let auth = phases::authenticate::run(inner, &req, &routed.route, ctx).await?;
        ctx.mark(Mark::Authenticated);
        let admitted = phases::limit::run(inner, &routed.route, &auth, ctx).await?;
        ctx.mark(Mark::Admitted);
        Ok(phases::forward::run(inner, req, peer, &routed, &auth, admitted, ctx).await)
    }
}

/// The HTTP server settings, one per way a connection can announce its protocol.
struct Builders {
    /// Plain TCP: HTTP/1.1, or HTTP/2 with prior knowledge (h2c), told apart by the preface.
    auto: auto::Builder<TokioExecutor>,
    /// TLS with ALPN `http/1.1` (or none).
    h1: auto::Builder<TokioExecutor>,
    /// TLS with ALPN `h2`.
    h2: auto::Builder<TokioExecutor>,
}

/// Wait until the client has sent the bytes that tell HTTP/1 from HTTP/2, for at most `limit`;
/// false if it has not by then (close the connection). hyper-util's auto builder reads them with
/// no deadline of its own and hyper's header read timeout starts only after them, so a client
/// that connects and sends nothing (or half an HTTP/2 preface) would otherwise hold its
/// connection and file descriptor forever. A peek: hyper then reads the same bytes.
async fn protocol_announced(stream: &tokio::net::TcpStream, limit: std::time::Duration) -> bool {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let announced = async {
        let mut buf = [0u8; 24];
        loop {
            match stream.peek(&mut buf).await {
                // Closed or failed: hyper finds out at once.
                Ok(0) | Err(_) => return,
                Ok(n) if n == H2_PREFACE.len() || buf[..n] != H2_PREFACE[..n] => return,
                // Part of the HTTP/2 preface: the rest is on its way (peek would not wait).
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
    };
    tokio::time::timeout(limit, announced).await.is_ok()
}

/// The default TLS configuration (built-in roots, no files) cannot fail; if rustls ever says
/// otherwise, no https:// target can be served, which is what an empty root store gives.
fn unreachable_tls(e: crate::upstream_tls::TlsConfigError) -> TlsClient {
    tracing::error!(error = %e, "cannot build the upstream TLS configuration; https:// targets will fail");
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth());
    match cfg {
        Ok(c) => crate::upstream_tls::client(&c, std::time::Duration::from_secs(5)),
        Err(_) => unreachable!("ring supports the default protocol versions"),
    }
}
