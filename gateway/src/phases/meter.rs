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
pub(crate) fn finish(inner: &Inner, ctx: &mut Ctx, peer: &Peer, status: u16) {
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
    if let (Some(t), Some(exporter)) = (ctx.trace.as_mut().filter(|t| t.recorded), &inner.cfg.otlp) {
        let end = crate::otlp::unix_nanos();
        exporter.export_gateway(GatewaySpan {
            ids: (t.trace_id, t.span_id, t.parent_id),
            times: (end.saturating_sub(u64::try_from(total.as_nanos()).unwrap_or(u64::MAX)), end),
            status,
            marks: t.marks,
            upstream_us: t.upstream_start.zip(ctx.upstream).map(|(s, d)| (micros(s), micros(d))),
            operation: t.operation,
            app_id: ctx.identity.as_ref().map(|i| i.app_id),
            route: ctx.route.clone(),
            analytics: inner.analytics.clone(),
            request: t.request.take(),
            plan: t.plan.take(),
        });
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What the request path keeps of a recorded request for its span: ids, times and references,
/// no strings built. The exporter task encodes it ([`GatewaySpan::encode`]), off the request path.
pub(crate) struct GatewaySpan {
    ids: ([u8; 16], [u8; 8], Option<[u8; 8]>),
    /// Start and end, unix nanoseconds.
    times: (u64, u64),
    status: u16,
    marks: [u32; 3],
    /// Upstream call: start offset and duration, microseconds.
    upstream_us: Option<(u64, u64)>,
    operation: crate::operations::OpId,
    app_id: Option<i64>,
    route: Option<Arc<crate::routes::Route>>,
    analytics: Arc<Analytics>,
    request: Option<Box<crate::trace::RequestInfo>>,
    plan: Option<http::HeaderValue>,
}

impl GatewaySpan {
    /// The gateway's SERVER span for this request (OpenTelemetry HTTP semantic conventions). It
    /// ends with the response headers; the phases' ends and the upstream call are events.
    pub(crate) fn encode(&self, j: &mut crate::otlp::Json<'_>) {
        j.begin_span(self.ids, crate::otlp::SpanKind::Server, self.times);
        let method = self.request.as_ref().map_or("_OTHER", |r| r.method.as_str());
        // `METHOD /prefix/{template}` from the operation the analytics already attribute the
        // request to; never the raw path (ids would make every span name unique).
        let label = self.route.as_ref().map(|_| self.analytics.label(self.operation));
        let template = label.as_deref().and_then(|l| l.split_once(' ')).map(|(_, p)| p).filter(|_| self.operation != 0);
        let route = |j: &mut crate::otlp::Json<'_>, r: &crate::routes::Route| {
            j.str_part(&r.prefix);
            j.str_part(template.unwrap_or("/*"));
        };
        j.0.push(b'"');
        j.str_part(method);
        if let Some(r) = &self.route {
            j.0.push(b' ');
            route(j, r);
        }
        j.0.push(b'"');
        j.begin_attributes();
        let first = &mut true;
        j.attr_str(first, "http.request.method", method);
        j.attr_int(first, "http.response.status_code", self.status.into());
        if let Some(r) = &self.request {
            j.attr_str(first, "url.path", &r.path);
            if let Some(h) = &r.host {
                j.attr_str(first, "server.address", h);
            }
        }
        if let Some(r) = &self.route {
            j.attr_str(first, "turnpike.api", &r.slug);
            j.raw(",{\"key\":\"http.route\",\"value\":{\"stringValue\":\"");
            route(j, r);
            j.raw("\"}}");
        }
        if let Some(id) = self.app_id {
            j.attr_int(first, "turnpike.app_id", id);
        }
        if let Some(plan) = self.plan.as_ref().and_then(|p| p.to_str().ok()) {
            j.attr_str(first, "turnpike.plan", plan);
        }
        if let Some((_, d)) = self.upstream_us {
            j.attr_int(first, "turnpike.upstream_ms", i64::try_from(d / 1000).unwrap_or(i64::MAX));
        }
        let error = self.status >= 500;
        if error {
            let mut b = [0u8; 5];
            let n = {
                let mut w = &mut b[..];
                let _ = std::io::Write::write_fmt(&mut w, format_args!("{}", self.status));
                5 - w.len()
            };
            j.attr_str(first, "error.type", std::str::from_utf8(&b[..n]).unwrap_or("500"));
        }
        let start = self.times.0;
        let at = move |us: u64| start + us * 1000;
        let marks = ["routed", "authenticated", "admitted"]
            .into_iter()
            .zip(self.marks)
            .filter(|(_, us)| *us > 0)
            .map(move |(n, us)| (n, at(us.into())));
        let upstream = self.upstream_us.into_iter().flat_map(move |(s, d)| [("upstream.sent", at(s)), ("upstream.headers", at(s + d))]);
        j.end_span(marks.chain(upstream), error);
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
