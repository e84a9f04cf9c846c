//! Request telemetry for the portal: one log line per request and Prometheus metrics, and a
//! hook for exported spans.
//!
//! What is recorded is chosen so that nothing secret or unbounded gets in: the method (unknown
//! methods become `_OTHER`), the matched route *template* (`/apps/{id}`, never the raw path with
//! its ids, never the query string, which may hold `api_key=`), the status and the latency; no
//! header is read except `X-Request-Id`. Requests no route matched share the route label
//! [`UNMATCHED`], so the metrics' cardinality is bounded by the router.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

/// The route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// One finished portal request, as handed to a [`SpanSink`].
#[derive(Debug)]
pub struct RequestRecord<'a> {
    /// The method, or `_OTHER`.
    pub method: &'static str,
    /// The route template, or [`UNMATCHED`].
    pub route: &'a str,
    /// The response's status.
    pub status: u16,
    /// Time to the response headers.
    pub latency: Duration,
    /// The request id answered in `X-Request-Id`.
    pub request_id: &'a str,
    /// The caller's `traceparent` when it sent exactly one (unparsed: the sink validates it
    /// with the gateway's parser and continues that trace).
    pub traceparent: Option<&'a [u8]>,
}

/// Where finished requests go to become spans (the binary wires it to its OTLP exporter). Added
/// to the router as an `Extension` outside [`record`].
#[derive(Clone)]
pub struct SpanSink(pub Arc<dyn Fn(&RequestRecord<'_>) + Send + Sync>);

impl std::fmt::Debug for SpanSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpanSink")
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "_OTHER",
    }
}

/// A client's request id when it is short and plain, else a fresh one.
fn request_id(v: Option<&HeaderValue>) -> String {
    match v.and_then(|v| v.to_str().ok()) {
        Some(id) if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            id.to_owned()
        }
        _ => format!("{:032x}", rand::random::<u128>()),
    }
}

/// The middleware (`axum::middleware::from_fn(record)`), layered on the whole router so that
/// the matched route is known.
pub async fn record(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route: Arc<str> = req.extensions().get::<MatchedPath>().map_or_else(|| Arc::from(UNMATCHED), |m| Arc::from(m.as_str()));
    let id = request_id(req.headers().get("x-request-id"));
    let sink = req.extensions().get::<SpanSink>().cloned();
    let traceparent = match sink {
        Some(_) => {
            let mut all = req.headers().get_all("traceparent").iter();
            match (all.next(), all.next()) {
                (Some(v), None) => Some(v.clone()),
                _ => None,
            }
        }
        None => None,
    };
    let mut resp = next.run(req).await;
    let latency = started.elapsed();
    let status = resp.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let latency_ms = latency.as_secs_f64() * 1000.0;
    tracing::info!(target: "turnpike::portal::request", method, route = &*route, status, latency_ms, request_id = %id, "portal request");
    let labels = [("method", method.to_owned()), ("route", route.to_string())];
    metrics::counter!("turnpike_portal_requests_total", "method" => method, "route" => route.to_string(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("turnpike_portal_request_duration_seconds", &labels).record(latency.as_secs_f64());
    if let Some(SpanSink(f)) = sink {
        f(&RequestRecord {
            method,
            route: &route,
            status,
            latency,
            request_id: &id,
            traceparent: traceparent.as_ref().map(HeaderValue::as_bytes),
        });
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_plain() {
        assert_eq!(request_id(Some(&HeaderValue::from_static("abc-123"))), "abc-123");
        let fresh = request_id(Some(&HeaderValue::from_static("a b\"c")));
        assert_eq!(fresh.len(), 32);
        assert_ne!(request_id(None), request_id(None));
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "_OTHER");
    }
}
