use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use turnpike_store::clock::SharedClock;

use turnpike_store::{Store, StoreError};

use crate::access::{AccessLog, Entry};
use crate::auth::{self, KeyCache};
use crate::counters::{Admission, Counters, LocalCounters, Verdict};
use crate::headers::LimitState;
use crate::problem::Problem;
use crate::proxy::{self, BoxBody, Meter, Tallied, UpstreamClient};
use crate::routes::{Route, RouteTable};
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
    pub(crate) routes: ArcSwap<RouteTable>,
    pub(crate) keys: KeyCache,
    client: UpstreamClient,
    pub(crate) touches: Mutex<HashMap<i64, i64>>,
    refused_without_lookup: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) last_flush: AtomicI64,
    pub(crate) change_version: AtomicI64,
    pub(crate) seen_changes: Mutex<HashMap<i64, i64>>,
    access: Option<AccessLog>,
    /// Redis mode: local limits for plans that fail open, counted under this gateway's own
    /// meter source, and the start of the current outage (unix seconds, 0 = none).
    pub(crate) fallback: Option<(Arc<LocalCounters>, Counters)>,
    pub(crate) outage_since: AtomicI64,
    no_route: metrics::Counter,
    /// `turnpike_limiter_decisions_total` by decision: admitted, rate_limited, quota_exceeded,
    /// unavailable, fail_open.
    decisions: [metrics::Counter; 5],
    /// Time spent in the gateway itself (total minus upstream), seconds.
    overhead: metrics::Histogram,
    /// Time to the upstream's response headers, seconds.
    upstream: metrics::Histogram,
}

/// The client side of a connection, computed once per connection.
#[derive(Debug)]
pub(crate) struct Peer {
    ip: Box<str>,
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

fn header_str(v: &'static str) -> HeaderValue {
    HeaderValue::from_static(v)
}

fn new_request_id() -> HeaderValue {
    let id: u128 = rand::random();
    HeaderValue::from_maybe_shared(Bytes::from(format!("{id:032x}"))).unwrap_or(header_str("0"))
}

/// Everything known about one request, for the access log.
struct Ctx {
    started: Instant,
    request_id: HeaderValue,
    identity: Option<Arc<auth::Identity>>,
    /// Request counters labelled with the API and the plan, once the plan is known.
    plan_requests: Option<Arc<[metrics::Counter; 4]>>,
    upstream: Option<std::time::Duration>,
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
        let routes = RouteTable::build(&store.list_apis().await?);
        let client = proxy::client(cfg.connect_timeout);
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
                routes: ArcSwap::from_pointee(routes),
                client,
                touches: Mutex::new(HashMap::new()),
                refused_without_lookup: AtomicU64::new(0),
                flushes: AtomicU64::new(0),
                last_flush: AtomicI64::new(0),
                change_version: AtomicI64::new(version),
                seen_changes: Mutex::new(seen),
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
        let builder = Arc::new(builder);
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
                    let gw = self.clone();
                    let peer = Arc::new(Peer { ip: remote.ip().to_string().into_boxed_str() });
                    let svc = service_fn(move |req| {
                        let gw = gw.clone();
                        let peer = peer.clone();
                        async move { Ok::<_, Infallible>(gw.handle(req, &peer).await) }
                    });
                    let (builder, watcher) = (builder.clone(), graceful.watcher());
                    let first_bytes = self.inner.cfg.header_read_timeout;
                    tokio::spawn(async move {
                        if !protocol_announced(&stream, first_bytes).await {
                            return;
                        }
                        // Closed in stages when dropped with unread input, so an early 413 reaches the client.
                        let io = TokioIo::new(crate::linger::LingeringStream::new(stream));
                        let conn = builder.serve_connection_with_upgrades(io, svc);
                        let _ = watcher.watch(conn).await;
                    });
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

    /// Handle one request through the phases.
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
        let mut ctx = Ctx {
            started: Instant::now(),
            request_id: req.headers().get("x-request-id").filter(|v| v.len() <= 128).cloned().unwrap_or_else(new_request_id),
            identity: None,
            plan_requests: None,
            upstream: None,
        };
        let (mut resp, route) = self.phases(req, peer, &mut ctx).await;
        let status = resp.status().as_u16();
        let total = ctx.started.elapsed();
        let upstream = ctx.upstream.unwrap_or_default();
        self.inner.overhead.record(total.saturating_sub(upstream).as_secs_f64());
        match (&ctx.plan_requests, &route) {
            (Some(by_plan), _) => by_plan[status_class(status)].increment(1),
            (None, Some(r)) => r.requests[status_class(status)].increment(1),
            (None, None) => self.inner.no_route.increment(1),
        }
        if let Some(log) = &self.inner.access {
            log.log(&Entry {
                ts_ms: self.inner.clock.now_micros() / 1000,
                request_id: ctx.request_id.as_bytes(),
                api: route.as_ref().map_or("-", |r| &r.slug),
                key: ctx.identity.as_ref().map_or("-", |i| &i.prefix),
                status,
                upstream_ms: ctx.upstream.map(|v| v.as_millis() as u64),
                total_ms: total.as_millis() as u64,
                client: &peer.ip,
            });
        }
        resp.headers_mut().insert("x-request-id", ctx.request_id);
        if let Some(o) = origin {
            proxy::allow_origin(resp.headers_mut(), o);
        }
        resp
    }

    async fn phases(&self, req: Request<Incoming>, peer: &Peer, ctx: &mut Ctx) -> (Response<BoxBody>, Option<Arc<Route>>) {
        // 1. Route.
        let routes = self.inner.routes.load();
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().host());
        let Some(route) = routes.find(host, req.uri().path()).cloned() else {
            return (Problem::NoRoute.response(), None);
        };
        drop(routes);
        let resp = self.routed(req, peer, ctx, &route).await;
        (resp, Some(route))
    }

    async fn routed(&self, req: Request<Incoming>, peer: &Peer, ctx: &mut Ctx, route: &Route) -> Response<BoxBody> {
        let inner = &*self.inner;

        // Only a WebSocket handshake may be tunnelled; any other upgrade is refused before it
        // is authenticated or counted, and never reaches the upstream.
        let upgrade_ask = proxy::upgrade_ask(req.method(), req.version(), req.headers());
        if upgrade_ask == proxy::UpgradeAsk::Refused {
            return Problem::UpgradeRefused.response();
        }

        // A declared body over the limit is refused before it is authenticated or counted (like
        // nginx's client_max_body_size); a streamed body is cut off at the limit further down.
        let declared_len = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared_len.is_some_and(|n| n > inner.cfg.max_body_bytes) {
            return Problem::BodyTooLarge.response();
        }

        // 2. Authenticate.
        let Some((presented, source)) = auth::extract(req.headers(), req.uri().query(), route.allow_query_key) else {
            inner.refused_without_lookup.fetch_add(1, Ordering::Relaxed);
            return Problem::MissingKey.response();
        };
        let now_us = inner.clock.now_micros();
        let now = now_us.div_euclid(1_000_000);
        let mut jwt = None;
        let hash = if source == auth::CredentialSource::Authorization && crate::jwt::looks_like_jwt(presented) {
            // A JWT, where this API accepts them; it names the key the call is made under.
            let Some(verifier) = inner.cfg.jwt.get(&*route.slug) else {
                inner.refused_without_lookup.fetch_add(1, Ordering::Relaxed);
                return Problem::InvalidKey.response();
            };
            let key_id = match verifier.verify(presented, now) {
                Ok(id) => id,
                Err(e) => {
                    inner.refused_without_lookup.fetch_add(1, Ordering::Relaxed);
                    return Problem::InvalidToken.response_with(&format!(",\"reason\":\"{}\"", jwt_reason(&e)));
                }
            };
            jwt = Some(verifier);
            match inner.keys.hash_for_key_id(key_id).await {
                Ok(Some(h)) => h,
                Ok(None) => return Problem::InvalidToken.response_with(",\"reason\":\"unknown_key\""),
                Err(e) => {
                    tracing::error!(error = %e, "key lookup failed");
                    return Problem::Unavailable.response();
                }
            }
        } else {
            let Ok(hash) = turnpike_store::domain::ApiKey::verify(presented) else {
                inner.refused_without_lookup.fetch_add(1, Ordering::Relaxed);
                return Problem::InvalidKey.response();
            };
            hash
        };
        let identity = match inner.keys.resolve(hash, now).await {
            Ok(Some(i)) => i,
            Ok(None) => return Problem::InvalidKey.response(),
            Err(e) => {
                tracing::error!(error = %e, "key lookup failed");
                return Problem::Unavailable.response();
            }
        };
        // A token may name only keys of the apps/accounts its block is bound to: whoever mints
        // tokens for this API must not be able to bill any developer's key.
        if jwt.is_some_and(|v| !v.may_name(identity.app_id, identity.account_id)) {
            return Problem::InvalidToken.response_with(",\"reason\":\"key_not_allowed\"");
        }
        ctx.identity = Some(identity.clone());
        if !identity.enabled || identity.expires_at.is_some_and(|t| t <= now) {
            return Problem::KeyDisabled.response();
        }
        let Some(grant) = identity.grant(route.api_id) else {
            return Problem::NotSubscribed.response();
        };
        ctx.plan_requests = Some(grant.requests.clone());
        if !grant.status_ok {
            let link = format!(",\"billing_url\":\"{}/billing\"", inner.cfg.portal_url.trim_end_matches('/'));
            return Problem::PaymentRequired.response_with(&link);
        }

        // 3. Limit (and count: the admitted count is the billable truth).
        let (period, policy) = grant.period_at(now, |p| LimitState::policy_for(grant.burst, grant.rate, grant.quota, p.end - p.start));
        let admission = Admission {
            sub_id: grant.sub_id,
            key_id: identity.key_id,
            api_id: route.api_id,
            now_us,
            rate: grant.rate,
            burst: grant.burst,
            quota: grant.quota,
            period,
            seed_used: if grant.seed_period_start == period.start { grant.seed_used } else { 0 },
        };
        let mut metered_by = &inner.counters;
        let decision = match inner.counters.admit(&admission).await {
            Ok(d) => {
                if inner.outage_since.load(Ordering::Relaxed) != 0 {
                    self.outage_over();
                }
                d
            }
            Err(e) => {
                let since = match inner.outage_since.compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        tracing::error!(error = %e, "counter store unavailable: fail-closed plans answer 503, fail-open plans run on local limits");
                        now
                    }
                    Err(t) => t,
                };
                match (&inner.fallback, grant.fail_open) {
                    (Some((local, as_counters)), Some(grace)) if now - since < grace => {
                        inner.decisions[4].increment(1);
                        metered_by = as_counters;
                        local.admit_now(&admission)
                    }
                    _ => {
                        inner.decisions[3].increment(1);
                        return Problem::Unavailable.response();
                    }
                }
            }
        };
        let remaining = decision.limits.remaining();
        match decision.verdict {
            Verdict::Admitted => {
                if std::ptr::eq(metered_by, &inner.counters) {
                    inner.decisions[0].increment(1);
                }
            }
            Verdict::RateLimited { retry_after } | Verdict::QuotaExceeded { retry_after } => {
                inner.decisions[if matches!(decision.verdict, Verdict::RateLimited { .. }) { 1 } else { 2 }].increment(1);
                let problem =
                    if matches!(decision.verdict, Verdict::RateLimited { .. }) { Problem::RateLimited } else { Problem::QuotaExceeded };
                let mut r = problem.response_with(&format!(",\"retry_after\":{retry_after}"));
                let h = r.headers_mut();
                h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                h.insert("ratelimit-policy", policy);
                h.insert("ratelimit", remaining);
                return r;
            }
        }
        if now - identity.last_touch.load(Ordering::Relaxed) >= 60 {
            identity.last_touch.store(now, Ordering::Relaxed);
            inner.touches.lock().unwrap_or_else(|p| p.into_inner()).insert(identity.key_id, now);
        }

        // 4. Proxy.
        let Some(target) = route.pick(now_us) else {
            return Problem::BadGateway.response();
        };
        let (mut parts, body) = req.into_parts();
        let path = &parts.uri.path()[route.prefix.len()..];
        let path = if path.is_empty() || path.starts_with('?') { "/" } else { path };
        let query = match (parts.uri.query(), source) {
            (Some(q), auth::CredentialSource::Query) => {
                let kept: Vec<&str> = q.split('&').filter(|p| !p.starts_with("api_key=")).collect();
                if kept.is_empty() {
                    None
                } else {
                    Some(kept.join("&"))
                }
            }
            (q, _) => q.map(str::to_owned),
        };
        let mut pq = String::with_capacity(target.base_path.len() + path.len() + 1 + query.as_ref().map_or(0, String::len));
        pq.push_str(&target.base_path);
        pq.push_str(path);
        if let Some(q) = &query {
            pq.push('?');
            pq.push_str(q);
        }
        let uri = match Uri::builder().scheme(target.scheme.clone()).authority(target.authority.clone()).path_and_query(pq).build() {
            Ok(u) => u,
            Err(_) => return Problem::NoRoute.response(),
        };
        let original_host = parts.headers.remove(header::HOST);
        // A WebSocket handshake keeps its Upgrade/Connection headers, and the client side of the
        // connection is taken over once the upstream agrees (101).
        let upgrade = (upgrade_ask == proxy::UpgradeAsk::WebSocket).then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
        let h = &mut parts.headers;
        proxy::strip_hop_by_hop(h);
        proxy::strip_trusted(h);
        match source {
            auth::CredentialSource::Authorization => {
                h.remove(header::AUTHORIZATION);
            }
            auth::CredentialSource::Header => {
                h.remove("x-api-key");
            }
            auth::CredentialSource::Query => {}
        }
        h.insert("x-turnpike-consumer", identity.app.consumer_header.clone());
        h.insert("x-turnpike-plan", grant.plan_header.clone());
        h.insert("x-turnpike-api", route.api_header.clone());
        h.insert("x-request-id", ctx.request_id.clone());
        proxy::set_forwarded(h, &peer.ip, original_host.as_ref());
        parts.uri = uri;
        if upgrade.is_some() {
            h.insert(header::UPGRADE, header_str("websocket"));
            h.insert(header::CONNECTION, header_str("upgrade"));
        }
        parts.version = http::Version::HTTP_11;

        let bytes_in = Arc::new(AtomicU64::new(0));
        let limit = usize::try_from(inner.cfg.max_body_bytes).unwrap_or(usize::MAX);
        let body = Tallied::new(Limited::new(body, limit), bytes_in.clone()).boxed_unsync();
        let upstream_req = Request::from_parts(parts, body);

        let upstream_started = Instant::now();
        let result = tokio::time::timeout(inner.cfg.response_timeout, inner.client.request(upstream_req)).await;
        let upstream = upstream_started.elapsed();
        inner.upstream.record(upstream.as_secs_f64());
        ctx.upstream = Some(upstream);
        let meter = |status: u16| Meter::new(metered_by.clone(), decision.bucket, status, ctx.started, bytes_in.clone());
        // Passive health: refused connections and timeouts count against the target.
        let target_ok = match &result {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => !e.is_connect(),
            Err(_) => false,
        };
        target.report(target_ok, now_us);
        let mut resp = match result {
            Ok(Ok(mut resp)) => {
                let status = resp.status().as_u16();
                let switched = match upgrade {
                    Some(Some(client_side)) if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS => {
                        proxy::splice(client_side, resp.extensions_mut().remove::<hyper::upgrade::OnUpgrade>());
                        resp.headers().get(header::UPGRADE).cloned()
                    }
                    _ => None,
                };
                let (mut parts, body) = resp.into_parts();
                proxy::strip_hop_by_hop(&mut parts.headers);
                if let Some(proto) = switched {
                    parts.headers.insert(header::UPGRADE, proto);
                    parts.headers.insert(header::CONNECTION, header_str("upgrade"));
                }
                Response::from_parts(parts, Tallied::new(body, meter(status)).boxed_unsync())
            }
            Ok(Err(e)) => {
                let too_large = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<hyper::Error>())
                    .and_then(std::error::Error::source)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                // The client's own body broke off or was badly framed (a bad chunk size): the
                // client's fault, not the upstream's, and not counted against the target.
                let client_body =
                    !too_large && error_chain(&e).any(|s| s.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_user));
                let p = if too_large {
                    Problem::BodyTooLarge
                } else if client_body {
                    Problem::BadRequest
                } else {
                    Problem::BadGateway
                };
                if !too_large && !client_body {
                    tracing::warn!(api = %route.slug, error = %e, "upstream request failed");
                }
                self.gateway_error(p, meter(p.status().as_u16()))
            }
            Err(_) => self.gateway_error(Problem::GatewayTimeout, meter(504)),
        };
        let h = resp.headers_mut();
        h.insert("ratelimit-policy", policy);
        h.insert("ratelimit", remaining);
        resp
    }

    /// The counter store answers again: add what the fail-open fallback admitted meanwhile to
    /// the shared quota counters (its usage rows reach the database under its own source).
    fn outage_over(&self) {
        let inner = &*self.inner;
        let since = inner.outage_since.swap(0, Ordering::AcqRel);
        if since == 0 {
            return;
        }
        let (Some((local, _)), Counters::Redis(redis)) = (&inner.fallback, &inner.counters) else { return };
        let (local, redis) = (local.clone(), redis.clone());
        tracing::info!(outage_started = since, "counter store back; reconciling fail-open admissions");
        tokio::spawn(async move {
            let items = local.take_unreconciled();
            for (i, (sub_id, period_start, n)) in items.iter().enumerate() {
                if let Err(e) = redis.add_used(*sub_id, *period_start, *n).await {
                    tracing::warn!(error = %e, "reconciliation failed; retrying after the next outage ends");
                    local.restore_unreconciled(&items[i..]);
                    return;
                }
            }
        });
    }

    /// A 502/504/413 produced by the gateway after admission, still metered.
    fn gateway_error(&self, p: Problem, meter: Meter) -> Response<BoxBody> {
        let r = p.response();
        let (parts, body) = r.into_parts();
        Response::from_parts(parts, Tallied::new(body.map_frame(|f| f.map_data(Bytes::from)), meter).boxed_unsync())
    }
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

/// `e` and its sources, outermost first.
fn error_chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

fn jwt_reason(e: &crate::jwt::JwtError) -> &'static str {
    use crate::jwt::JwtError;
    match e {
        JwtError::Invalid => "invalid",
        JwtError::Expired => "expired",
        JwtError::NotYetValid => "not_yet_valid",
        JwtError::WrongAudience => "wrong_issuer_or_audience",
        JwtError::NoConsumer => "no_key_claim",
    }
}

fn status_class(s: u16) -> usize {
    match s {
        // A 101 (WebSocket session) is a success, not a "5xx".
        100..=299 => 0,
        300..=399 => 1,
        400..=499 => 2,
        _ => 3,
    }
}
