//! Phase 5, meter: the admitted request was already counted by the limit phase (the billable
//! truth); when the response body ends (or is dropped: the client went away), its status class,
//! bytes and latency go into the same bucket. Then the gateway's own metrics and the access log.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::Ctx;
use crate::access::Entry;
use crate::analytics::Analytics;
use crate::counters::{BucketId, Counters, Outcome};
use crate::gateway::{Inner, Peer};
use crate::operations::OpId;
use crate::problem::Problem;
use crate::proxy::{BoxBody, BoxError};

/// What a streamed body reports to: bytes as frames pass, and once at the end.
pub trait Tally {
    /// `n` more body bytes went through.
    fn add(&mut self, n: u64);
    /// The body ended (complete, or dropped).
    fn end(&mut self) {}
    /// The body broke off with an error.
    fn fail(&mut self) {
        self.end();
    }
}

/// Request body bytes, read by the response's meter.
impl Tally for Arc<AtomicU64> {
    fn add(&mut self, n: u64) {
        self.fetch_add(n, Ordering::Relaxed);
    }
}

/// Records the outcome into the usage bucket when the response body ends or is dropped (the
/// client went away).
pub struct Meter {
    counters: Counters,
    bucket: BucketId,
    /// The analytics accumulator and the request's operation.
    attribution: (Arc<Analytics>, OpId),
    status: u16,
    started: Instant,
    /// Request body bytes (`None`: the request had no body).
    bytes_in: Option<Arc<AtomicU64>>,
    bytes_out: u64,
    done: bool,
}

impl Meter {
    pub(crate) fn new(
        counters: Counters,
        bucket: BucketId,
        attribution: (Arc<Analytics>, OpId),
        status: u16,
        started: Instant,
        bytes_in: Option<Arc<AtomicU64>>,
    ) -> Meter {
        Meter { counters, bucket, attribution, status, started, bytes_in, bytes_out: 0, done: false }
    }
}

impl Tally for Meter {
    fn add(&mut self, n: u64) {
        self.bytes_out += n;
    }
    /// The upstream broke off its body after the status line was forwarded (reset, cut short):
    /// the client's connection is aborted and the request is metered as a 502, like a failure
    /// before the headers, so it is not billed under `admitted_non_5xx`.
    fn fail(&mut self) {
        if !self.done && self.status < 500 {
            self.status = 502;
        }
        self.end();
    }
    fn end(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        let outcome = Outcome {
            status: self.status,
            bytes_in: self.bytes_in.as_ref().map_or(0, |b| b.load(Ordering::Relaxed)),
            bytes_out: self.bytes_out,
            latency_ms: elapsed.as_millis() as u64,
        };
        self.counters.record(&self.bucket, &outcome);
        let (analytics, op) = &self.attribution;
        analytics.record(&self.bucket, *op, self.status, u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.end();
    }
}

/// A body streamed through unchanged while its bytes are tallied.
pub struct Tallied<B, T> {
    inner: B,
    tally: T,
}

impl<B, T> Tallied<B, T> {
    pub fn new(inner: B, tally: T) -> Self {
        Tallied { inner, tally }
    }
}

impl<B, T> Body for Tallied<B, T>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    T: Tally + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    let n = d.len() as u64;
                    self.tally.add(n);
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.tally.fail();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                self.tally.end();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A 502/504/413 produced by the gateway after admission, still metered.
pub(crate) fn gateway_error(p: Problem, meter: Meter) -> Response<BoxBody> {
    let (parts, body) = p.response().into_parts();
    Response::from_parts(parts, Tallied::new(body.map_frame(|f| f.map_data(Bytes::from)), meter).boxed_unsync())
}

/// The end of every request, answered by any phase: request counters by API, plan and status
/// class, the gateway's own time, and the access log.
pub(crate) fn finish(inner: &Inner, ctx: &Ctx, peer: &Peer, status: u16) {
    let total = ctx.started.elapsed();
    let upstream = ctx.upstream.unwrap_or_default();
    inner.overhead.record(total.saturating_sub(upstream).as_secs_f64());
    match (&ctx.plan_requests, &ctx.route) {
        (Some(by_plan), _) => by_plan[status_class(status)].increment(1),
        (None, Some(r)) => r.requests[status_class(status)].increment(1),
        (None, None) => inner.no_route.increment(1),
    }
    let ids = ctx.trace.as_ref().map(crate::trace::Trace::hex_ids);
    if let Some(log) = &inner.access {
        log.log(&Entry {
            trace: ids.as_ref().map(|(t, s)| (&t[..], &s[..])),
            ts_ms: inner.clock.now_micros() / 1000,
            request_id: ctx.request_id.as_bytes(),
            api: ctx.route.as_ref().map_or("-", |r| &r.slug),
            key: ctx.identity.as_ref().map_or("-", |i| &i.prefix),
            status,
            upstream_ms: ctx.upstream.map(|v| v.as_millis() as u64),
            total_ms: total.as_millis() as u64,
            client: ctx.client.as_deref().unwrap_or(&peer.ip),
        });
    }
    if let (Some(t), Some(exporter)) = (ctx.trace.as_ref().filter(|t| t.recorded), &inner.cfg.otlp) {
        exporter.export(span(inner, ctx, t, status, total));
    }
}

/// The gateway's SERVER span for this request (OpenTelemetry HTTP semantic conventions). It
/// ends with the response headers; the phases' ends and the upstream call are events.
fn span(inner: &Inner, ctx: &Ctx, t: &crate::trace::Trace, status: u16, total: std::time::Duration) -> crate::otlp::SpanData {
    use crate::otlp::Value;
    let end = crate::otlp::unix_nanos();
    let start = end.saturating_sub(u64::try_from(total.as_nanos()).unwrap_or(u64::MAX));
    let method = t.request.as_ref().map_or("_OTHER", |r| r.method.as_str());
    let mut attributes =
        vec![("http.request.method", Value::Str(method.to_owned())), ("http.response.status_code", Value::Int(status.into()))];
    if let Some(r) = &t.request {
        attributes.push(("url.path", Value::Str(r.path.to_string())));
        if let Some(h) = &r.host {
            attributes.push(("server.address", Value::Str(h.to_string())));
        }
    }
    // `METHOD /prefix/{template}` from the operation the analytics already attribute the request
    // to; never the raw path (ids would make every span name unique).
    let name = match &ctx.route {
        Some(route) => {
            attributes.push(("turnpike.api", Value::Str(route.slug.to_string())));
            let label = inner.analytics.label(t.operation);
            let template = label.split_once(' ').map(|(_, p)| p).filter(|_| t.operation != 0);
            let http_route = match template {
                Some(p) => format!("{}{p}", route.prefix),
                None => format!("{}/*", route.prefix),
            };
            let name = format!("{method} {http_route}");
            attributes.push(("http.route", Value::Str(http_route)));
            name
        }
        None => method.to_owned(),
    };
    if let Some(id) = &ctx.identity {
        attributes.push(("turnpike.app_id", Value::Int(id.app_id)));
    }
    if let Some(plan) = t.plan.as_ref().and_then(|p| p.to_str().ok()) {
        attributes.push(("turnpike.plan", Value::Str(plan.to_owned())));
    }
    if let Some(up) = ctx.upstream {
        attributes.push(("turnpike.upstream_ms", Value::Int(i64::try_from(up.as_millis()).unwrap_or(i64::MAX))));
    }
    let error = status >= 500;
    if error {
        attributes.push(("error.type", Value::Str(status.to_string())));
    }
    let at = |us: u64| start + us * 1000;
    let mut events = Vec::with_capacity(5);
    for (name, us) in ["routed", "authenticated", "admitted"].into_iter().zip(t.marks) {
        if us > 0 {
            events.push((name, at(us.into())));
        }
    }
    if let (Some(s), Some(d)) = (t.upstream_start, ctx.upstream) {
        let s = u64::try_from(s.as_micros()).unwrap_or(u64::MAX);
        events.push(("upstream.sent", at(s)));
        events.push(("upstream.headers", at(s + u64::try_from(d.as_micros()).unwrap_or(u64::MAX))));
    }
    crate::otlp::SpanData {
        trace_id: t.trace_id,
        span_id: t.span_id,
        parent_id: t.parent_id,
        name,
        kind: crate::otlp::SpanKind::Server,
        start_unix_nanos: start,
        end_unix_nanos: end,
        attributes,
        events,
        error,
        scope: "turnpike-gateway",
    }
}

/// 0 for 1xx–2xx, 1 for 3xx, 2 for 4xx, 3 for anything else (the metrics' and analytics' classes).
pub(crate) fn status_class(s: u16) -> usize {
    match s {
        // A 101 (WebSocket session) is a success, not a "5xx".
        100..=299 => 0,
        300..=399 => 1,
        400..=499 => 2,
        _ => 3,
    }
}
