//! Phase 4, forward: pick a target, rewrite the URI under its base path, header hygiene
//! (credential and hop-by-hop headers out, trusted and forwarding headers in), send through the
//! pooled client with both bodies streamed, and classify what went wrong.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::authenticate::Authenticated;
use super::limit::Admitted;
use super::meter::{self, Meter, Tallied};
use super::route::Routed;
use super::Ctx;
use crate::auth::CredentialSource;
use crate::gateway::{Inner, Peer};
use crate::problem::Problem;
use crate::proxy::{self, BoxBody, BoxError};

pub(crate) async fn run(
    inner: &Inner,
    req: Request<Incoming>,
    peer: &Peer,
    routed: &Routed,
    auth: &Authenticated,
    admitted: Admitted<'_>,
    ctx: &mut Ctx,
) -> Response<BoxBody> {
    let (route, now_us) = (&*routed.route, ctx.now_us);
    let Admitted { decision, metered_by, policy, remaining } = admitted;
    let Some(target) = route.pick(now_us) else {
        return Problem::BadGateway.response();
    };
    let (mut parts, body) = req.into_parts();
    let path = routed.path.as_deref().unwrap_or(parts.uri.path());
    let path = path.get(route.prefix.len()..).unwrap_or_default();
    let path = if path.is_empty() || path.starts_with('?') { "/" } else { path };
    let operation = route.operation(&parts.method, path);
    let query = match (parts.uri.query(), auth.source) {
        (Some(q), CredentialSource::Query) => {
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
    let options = if inner.cfg.upstream_options.is_empty() { None } else { inner.cfg.upstream_options.get(&*route.slug) };
    let original_host = parts.headers.remove(header::HOST);
    let hop = proxy::Hop {
        peer_ip: &peer.ip,
        client_ip: ctx.client.as_deref().unwrap_or(&peer.ip),
        proto: proxy::client_proto(&parts.headers, peer.trusted, peer.tls),
        trusted_peer: peer.trusted,
    };
    // A WebSocket handshake keeps its Upgrade/Connection headers, and the client side of the
    // connection is taken over once the upstream agrees (101).
    let upgrade = routed.websocket.then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
    let h = &mut parts.headers;
    proxy::strip_hop_by_hop(h);
    proxy::strip_trusted(h);
    match auth.source {
        CredentialSource::Authorization => {
            h.remove(header::AUTHORIZATION);
        }
        CredentialSource::Header => {
            h.remove(&proxy::X_API_KEY);
        }
        CredentialSource::Query => {}
    }
    h.insert(&proxy::X_TURNPIKE_CONSUMER, auth.identity.app.consumer_header.clone());
    h.insert(&proxy::X_TURNPIKE_PLAN, auth.grant().plan_header.clone());
    h.insert(&proxy::X_TURNPIKE_API, route.api_header.clone());
    h.insert(&proxy::X_REQUEST_ID, ctx.request_id.clone());
    proxy::set_forwarded(h, &hop, original_host.as_ref());
    if let Some(t) = &mut ctx.trace {
        t.set_headers(h);
        if t.recorded {
            t.operation = operation;
            t.plan = Some(auth.grant().plan_header.clone());
        }
    }
    if let (Some(host), Some(true)) = (&original_host, options.map(|o| o.pass_client_host)) {
        h.insert(header::HOST, host.clone());
    }
    parts.uri = uri;
    if upgrade.is_some() {
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    parts.version = http::Version::HTTP_11;

    // A request without a body (by its framing: no Content-Length or 0, not chunked) has
    // nothing to count or limit: no tally, no limit, no shared counter to allocate.
    let (body, bytes_in) = if body.is_end_stream() {
        (body.map_err(BoxError::from).boxed_unsync(), None)
    } else {
        let bytes_in = Arc::new(AtomicU64::new(0));
        let limit = usize::try_from(inner.cfg.max_body_bytes).unwrap_or(usize::MAX);
        (Tallied::new(Limited::new(body, limit), bytes_in.clone()).boxed_unsync(), Some(bytes_in))
    };
    let upstream_req = Request::from_parts(parts, body);

    let upstream_started = Instant::now();
    if let Some(t) = ctx.trace.as_mut().filter(|t| t.recorded) {
        t.upstream_start = Some(upstream_started.saturating_duration_since(ctx.started));
    }
    let sent = if target.tls {
        let client =
            if inner.tls_by_api.is_empty() { &inner.tls_client } else { inner.tls_by_api.get(&*route.slug).unwrap_or(&inner.tls_client) };
        client.request(upstream_req)
    } else {
        inner.client.request(upstream_req)
    };
    let timeout = options.and_then(|o| o.timeout).unwrap_or(inner.cfg.response_timeout);
    let result = tokio::time::timeout(timeout, sent).await;
    let upstream = upstream_started.elapsed();
    inner.upstream.record(upstream.as_secs_f64());
    ctx.upstream = Some(upstream);
    let meter = |status: u16| {
        let attribution = (inner.analytics.clone(), operation);
        Meter::new(metered_by.clone(), decision.bucket, attribution, status, ctx.started, bytes_in.clone())
    };
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
                parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
            Response::from_parts(parts, Tallied::new(body, meter(status)).boxed_unsync())
        }
        Ok(Err(e)) if target.tls && crate::upstream_tls::tls_failure(&e).is_some() => {
            let reason = crate::upstream_tls::tls_failure(&e).unwrap_or_default();
            tracing::warn!(api = %route.slug, upstream = %target.authority, reason = %reason, error = %e, "upstream TLS failed");
            meter::gateway_error(Problem::UpstreamTls, meter(502))
        }
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<hyper::Error>())
                .and_then(std::error::Error::source)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            // The client's own body broke off or was badly framed (a bad chunk size): the
            // client's fault, not the upstream's, and not counted against the target.
            let client_body = !too_large && error_chain(&e).any(|s| s.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_user));
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
            meter::gateway_error(p, meter(p.status().as_u16()))
        }
        Err(_) => meter::gateway_error(Problem::GatewayTimeout, meter(504)),
    };
    let h = resp.headers_mut();
    h.insert(&proxy::RATELIMIT_POLICY, policy);
    h.insert(&proxy::RATELIMIT, remaining);
    resp
}

/// `e` and its sources, outermost first.
fn error_chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}
