//! A small OTLP/HTTP span exporter (JSON encoding, `POST {otlp_endpoint}/v1/traces`), shared by
//! the gateway and the portal.
//!
//! Why not the `opentelemetry` crates: the gateway records one span per request from fields it
//! already holds, so the SDK's tracer, context propagation and span builder would sit unused,
//! and `opentelemetry-otlp` brings prost, tonic types and a second HTTP client (reqwest) into the
//! production binary: minutes of CI on a 2-core machine for a POST of a JSON document
//! (`docs/dependencies.md`). OTLP/HTTP with JSON is part of the OTLP specification and accepted by
//! the OpenTelemetry Collector, Jaeger (4318) and Tempo alike.
//!
//! The request path only `try_send`s a [`SpanData`] into a bounded queue: a full queue drops
//! the span and counts it (`turnpike_otlp_spans_dropped_total{reason="queue_full"}`), never waits.
//! One task batches (up to [`BATCH`] spans or every [`INTERVAL`]) and posts; a failed post drops its
//! batch, counted under `reason="export_failed"`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::{mpsc, oneshot};

/// Spans waiting for export before new ones are dropped.
pub const QUEUE: usize = 4096;
/// Largest batch per request to the collector.
pub const BATCH: usize = 512;
/// Longest time a span waits in a partial batch.
pub const INTERVAL: Duration = Duration::from_secs(1);
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// OpenTelemetry `SpanKind`, with its OTLP number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// The gateway or the portal answering a request.
    Server = 2,
    /// A call the process makes (reserved for an upstream span).
    Client = 3,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `stringValue`.
    Str(String),
    /// `intValue`.
    Int(i64),
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct SpanData {
    /// The trace.
    pub trace_id: [u8; 16],
    /// This span.
    pub span_id: [u8; 8],
    /// The remote parent, if any.
    pub parent_id: Option<[u8; 8]>,
    /// Low-cardinality name (`GET /payments/v1/charges/{id}`).
    pub name: String,
    /// SERVER for requests answered.
    pub kind: SpanKind,
    /// Start, unix nanoseconds.
    pub start_unix_nanos: u64,
    /// End, unix nanoseconds.
    pub end_unix_nanos: u64,
    /// Attributes (OpenTelemetry semantic conventions where one exists).
    pub attributes: Vec<(&'static str, Value)>,
    /// Named instants inside the span (unix nanoseconds).
    pub events: Vec<(&'static str, u64)>,
    /// Status ERROR (a 5xx answer).
    pub error: bool,
    /// The instrumentation scope (`turnpike-gateway`, `turnpike-portal`).
    pub scope: &'static str,
}

impl SpanData {
    /// A new root span's ids (trace id, span id).
    pub fn new_ids() -> ([u8; 16], [u8; 8]) {
        (crate::trace::trace_id(), crate::trace::span_id())
    }
}

/// Unix nanoseconds now.
pub fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

enum Msg {
    Span(Box<SpanData>),
    /// The gateway's per-request span: a fixed struct, encoded by the exporter task.
    Gateway(crate::phases::meter::GatewaySpan),
    Flush(oneshot::Sender<()>),
}

impl Msg {
    fn scope(&self) -> &'static str {
        match self {
            Msg::Span(s) => s.scope,
            _ => GATEWAY_SCOPE,
        }
    }
}

/// The gateway's instrumentation scope.
pub const GATEWAY_SCOPE: &str = "turnpike-gateway";

/// A handle to the exporter task: cheap to clone.
#[derive(Clone)]
pub struct Exporter {
    tx: mpsc::Sender<Msg>,
    queue_full: metrics::Counter,
    sample_ratio: f64,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Exporter(sample_ratio={})", self.sample_ratio)
    }
}

/// The exporter's URL could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OtlpError(pub String);

enum HttpClient {
    Plain(crate::proxy::UpstreamClient),
    Tls(crate::upstream_tls::TlsClient),
}

/// `endpoint` (a collector's base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT`) → its traces URL.
pub fn traces_url(endpoint: &str) -> Result<http::Uri, OtlpError> {
    let base = endpoint.trim_end_matches('/');
    let url = if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") };
    let uri: http::Uri = url.parse().map_err(|e| OtlpError(format!("not a URL: {e}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(OtlpError("must be an http:// or https:// URL with a host".into())),
    }
}

impl Exporter {
    /// Start the exporter task (on the current tokio runtime) posting to `endpoint`'s
    /// `/v1/traces` as `service_name`; `sample_ratio` is the share of new traces sampled.
    pub fn start(endpoint: &str, service_name: &str, sample_ratio: f64) -> Result<Exporter, OtlpError> {
        let url = traces_url(endpoint)?;
        let client = if url.scheme_str() == Some("https") {
            let cfg = crate::upstream_tls::client_config(None).map_err(|e| OtlpError(e.0))?;
            HttpClient::Tls(crate::upstream_tls::client(&cfg, Duration::from_secs(5)))
        } else {
            HttpClient::Plain(crate::proxy::client(Duration::from_secs(5)))
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = Task {
            url,
            client,
            service: service_name.to_owned(),
            exported: metrics::counter!("turnpike_otlp_spans_exported_total"),
            failed: metrics::counter!("turnpike_otlp_spans_dropped_total", "reason" => "export_failed"),
        };
        tokio::spawn(task.run(rx));
        Ok(Exporter {
            tx,
            queue_full: metrics::counter!("turnpike_otlp_spans_dropped_total", "reason" => "queue_full"),
            sample_ratio: sample_ratio.clamp(0.0, 1.0),
        })
    }

    /// The share of traces started here that are sampled.
    pub fn sample_ratio(&self) -> f64 {
        self.sample_ratio
    }

    /// Queue a span; drops it (counted) when the queue is full. Never waits.
    pub fn export(&self, span: SpanData) {
        if self.tx.try_send(Msg::Span(Box::new(span))).is_err() {
            self.queue_full.increment(1);
        }
    }

    /// Queue the gateway's span of a request (encoded later, by the exporter task).
    pub(crate) fn export_gateway(&self, span: crate::phases::meter::GatewaySpan) {
        if self.tx.try_send(Msg::Gateway(span)).is_err() {
            self.queue_full.increment(1);
        }
    }

    /// Post every span queued before this call; returns once the collector answered (or the
    /// post failed). For shutdown and tests.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Task {
    url: http::Uri,
    client: HttpClient,
    service: String,
    exported: metrics::Counter,
    failed: metrics::Counter,
}

impl Task {
    /// Batches of up to [`BATCH`] spans, posted when full or [`INTERVAL`] after their first
    /// span; the task yields after each post so a burst of batches does not hold the worker.
    async fn run(self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Msg> = Vec::with_capacity(BATCH);
        let mut body: Vec<u8> = Vec::new();
        let deadline = tokio::time::sleep(INTERVAL);
        tokio::pin!(deadline);
        loop {
            let room = BATCH - batch.len();
            let received = if batch.is_empty() {
                rx.recv_many(&mut batch, room).await
            } else {
                tokio::select! {
                    n = rx.recv_many(&mut batch, room) => n,
                    () = &mut deadline => {
                        self.post(&mut batch, &mut body).await;
                        continue;
                    }
                }
            };
            if received == 0 {
                // Every sender is gone.
                self.post(&mut batch, &mut body).await;
                return;
            }
            if batch.len() == received {
                deadline.as_mut().reset(tokio::time::Instant::now() + INTERVAL);
            }
            while let Some(i) = batch.iter().position(|m| matches!(m, Msg::Flush(_))) {
                // Post what came before the flush, answer it, keep what came after.
                let rest = batch.split_off(i + 1);
                let Some(Msg::Flush(done)) = batch.pop() else { unreachable!() };
                self.post(&mut batch, &mut body).await;
                let _ = done.send(());
                batch.extend(rest);
                deadline.as_mut().reset(tokio::time::Instant::now() + INTERVAL);
            }
            if batch.len() >= BATCH {
                self.post(&mut batch, &mut body).await;
            }
        }
    }

    async fn post(&self, batch: &mut Vec<Msg>, body: &mut Vec<u8>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        body.clear();
        encode_into(body, &self.service, batch);
        batch.clear();
        let body = Bytes::copy_from_slice(body);
        self.send(body, n).await;
        tokio::task::yield_now().await;
    }

    async fn send(&self, body: Bytes, n: u64) {
        let req = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body).map_err(|never| match never {}).boxed_unsync());
        let Ok(req) = req else { return };
        let sent: BoxFuture = match &self.client {
            HttpClient::Plain(c) => Box::pin(c.request(req)),
            HttpClient::Tls(c) => Box::pin(c.request(req)),
        };
        let ok = match tokio::time::timeout(POST_TIMEOUT, sent).await {
            Ok(Ok(resp)) if resp.status().is_success() => {
                let _ = resp.into_body().collect().await;
                true
            }
            Ok(Ok(resp)) => {
                tracing::warn!(status = resp.status().as_u16(), spans = n, "the OTLP collector refused a batch of spans");
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, spans = n, "could not send spans to the OTLP collector");
                false
            }
            Err(_) => {
                tracing::warn!(spans = n, "the OTLP collector did not answer in time");
                false
            }
        };
        if ok {
            self.exported.increment(n);
        } else {
            self.failed.increment(n);
        }
    }
}

type BoxFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>> + Send>,
>;

/// JSON written by hand into a reused buffer (no `serde_json::Value` per span).
pub(crate) struct Json<'a>(pub(crate) &'a mut Vec<u8>);

impl Json<'_> {
    pub(crate) fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    /// A JSON string: quotes, backslashes and control characters escaped; other UTF-8 kept.
    pub(crate) fn str(&mut self, s: &str) {
        self.0.push(b'"');
        self.str_part(s);
        self.0.push(b'"');
    }

    /// Part of a string already opened with `"`.
    pub(crate) fn str_part(&mut self, s: &str) {
        let mut rest = s.as_bytes();
        // Copy the runs that need no escaping in one go (paths, routes, slugs: nearly always all).
        while let Some(i) = rest.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\') {
            self.0.extend_from_slice(&rest[..i]);
            let b = rest[i];
            match b {
                b'"' => self.0.extend_from_slice(b"\\\""),
                b'\\' => self.0.extend_from_slice(b"\\\\"),
                b'\n' => self.0.extend_from_slice(b"\\n"),
                b'\r' => self.0.extend_from_slice(b"\\r"),
                b'\t' => self.0.extend_from_slice(b"\\t"),
                _ => {
                    const DIGITS: &[u8; 16] = b"0123456789abcdef";
                    self.0.extend_from_slice(b"\\u00");
                    self.0.push(DIGITS[usize::from(b >> 4)]);
                    self.0.push(DIGITS[usize::from(b & 0xf)]);
                }
            }
            rest = &rest[i + 1..];
        }
        self.0.extend_from_slice(rest);
    }

    /// An unsigned integer's decimal digits (no quotes).
    pub(crate) fn uint(&mut self, mut v: u64) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.0.extend_from_slice(&buf[i..]);
    }

    /// A 64-bit integer as OTLP/JSON writes it: a decimal string.
    pub(crate) fn int_str(&mut self, v: i64) {
        self.0.push(b'"');
        if v < 0 {
            self.0.push(b'-');
        }
        self.uint(v.unsigned_abs());
        self.0.push(b'"');
    }

    /// Lowercase hex in quotes.
    pub(crate) fn hex(&mut self, b: &[u8]) {
        let mut out = [0u8; 32];
        let out = &mut out[..b.len() * 2];
        crate::trace::hex_into(b, out);
        self.0.push(b'"');
        self.0.extend_from_slice(out);
        self.0.push(b'"');
    }

    /// Opens a span object: ids, name (written by `name`), kind, times. Close with [`Json::end_span`].
    pub(crate) fn begin_span(&mut self, ids: ([u8; 16], [u8; 8], Option<[u8; 8]>), kind: SpanKind, times: (u64, u64)) {
        self.raw("{\"traceId\":");
        self.hex(&ids.0);
        self.raw(",\"spanId\":");
        self.hex(&ids.1);
        if let Some(p) = ids.2 {
            self.raw(",\"parentSpanId\":");
            self.hex(&p);
        }
        self.raw(",\"kind\":");
        self.uint(kind as u64);
        self.raw(",\"startTimeUnixNano\":\"");
        self.uint(times.0);
        self.raw("\",\"endTimeUnixNano\":\"");
        self.uint(times.1);
        self.raw("\",\"name\":");
    }

    /// `,"attributes":[` (then [`Json::attr_str`] / [`Json::attr_int`], first one with `first`).
    pub(crate) fn begin_attributes(&mut self) {
        self.raw(",\"attributes\":[");
    }

    fn attr_key(&mut self, first: &mut bool, key: &str) {
        if !std::mem::replace(first, false) {
            self.0.push(b',');
        }
        // Keys are constants (semantic-convention names): no escaping to check.
        debug_assert!(key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'));
        self.raw("{\"key\":\"");
        self.raw(key);
        self.0.push(b'"');
    }

    pub(crate) fn attr_str(&mut self, first: &mut bool, key: &str, v: &str) {
        self.attr_key(first, key);
        self.raw(",\"value\":{\"stringValue\":");
        self.str(v);
        self.raw("}}");
    }

    pub(crate) fn attr_int(&mut self, first: &mut bool, key: &str, v: i64) {
        self.attr_key(first, key);
        self.raw(",\"value\":{\"intValue\":");
        self.int_str(v);
        self.raw("}}");
    }

    /// Closes the attributes, writes the events and the status, closes the span.
    pub(crate) fn end_span(&mut self, events: impl Iterator<Item = (&'static str, u64)>, error: bool) {
        self.raw("],\"events\":[");
        for (i, (name, t)) in events.enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.raw("{\"name\":");
            self.str(name);
            self.raw(",\"timeUnixNano\":\"");
            self.uint(t);
            self.raw("\"}");
        }
        self.raw(if error { "],\"status\":{\"code\":2}}" } else { "],\"status\":{\"code\":0}}" });
    }
}

impl SpanData {
    fn encode(&self, j: &mut Json<'_>) {
        j.begin_span((self.trace_id, self.span_id, self.parent_id), self.kind, (self.start_unix_nanos, self.end_unix_nanos));
        j.str(&self.name);
        j.begin_attributes();
        let mut first = true;
        for (k, v) in &self.attributes {
            match v {
                Value::Str(s) => j.attr_str(&mut first, k, s),
                Value::Int(i) => j.attr_int(&mut first, k, *i),
            }
        }
        j.end_span(self.events.iter().copied(), self.error);
    }
}

fn encode_into(out: &mut Vec<u8>, service: &str, batch: &[Msg]) {
    let mut j = Json(out);
    j.raw("{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    j.attr_str(&mut true, "service.name", service);
    j.raw("]},\"scopeSpans\":[");
    // At most two scopes (gateway, portal): one pass per scope present.
    let mut scopes: [Option<&'static str>; 2] = [None, None];
    let mut others = false;
    for m in batch {
        let sc = m.scope();
        match scopes {
            [Some(a), _] if a == sc => {}
            [Some(_), Some(b)] if b == sc => {}
            [None, _] => scopes[0] = Some(sc),
            [Some(_), None] => scopes[1] = Some(sc),
            _ => others = true,
        }
    }
    debug_assert!(!others, "more than two instrumentation scopes in one batch");
    for (i, scope) in scopes.into_iter().flatten().enumerate() {
        if i > 0 {
            j.0.push(b',');
        }
        j.raw("{\"scope\":{\"name\":");
        j.str(scope);
        j.raw(concat!(",\"version\":\"", env!("CARGO_PKG_VERSION"), "\"},\"spans\":["));
        let mut first = true;
        for m in batch.iter().filter(|m| m.scope() == scope) {
            let before = j.0.len();
            if !first {
                j.0.push(b',');
            }
            match m {
                Msg::Span(s) => s.encode(&mut j),
                Msg::Gateway(g) => g.encode(&mut j),
                Msg::Flush(_) => {
                    j.0.truncate(before);
                    continue;
                }
            }
            first = false;
        }
        j.raw("]}");
    }
    j.raw("]}]}");
}

/// An `ExportTraceServiceRequest` in OTLP's JSON encoding (ids as hex, 64-bit integers as
/// strings, enums as numbers).
pub fn encode(service: &str, spans: Vec<SpanData>) -> Vec<u8> {
    let batch: Vec<Msg> = spans.into_iter().map(|s| Msg::Span(Box::new(s))).collect();
    let mut out = Vec::new();
    encode_into(&mut out, service, &batch);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url_appends_the_signal_path_once() {
        assert_eq!(traces_url("http://collector:4318").unwrap().to_string(), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318/").unwrap().to_string(), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("https://c/v1/traces").unwrap().to_string(), "https://c/v1/traces");
        assert!(traces_url("collector:4318").is_err());
        assert!(traces_url("ftp://c").is_err());
    }

    #[test]
    fn the_json_encoding_follows_otlp() {
        let span = SpanData {
            trace_id: [0xab; 16],
            span_id: [1; 8],
            parent_id: Some([2; 8]),
            name: "GET /x/{id}".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: vec![("http.response.status_code", Value::Int(503)), ("url.path", Value::Str("/x/1".into()))],
            events: vec![("routed", 1)],
            error: true,
            scope: "turnpike-gateway",
        };
        let v: serde_json::Value = serde_json::from_slice(&encode("svc", vec![span])).unwrap();
        let rs = &v["resourceSpans"][0];
        assert_eq!(rs["resource"]["attributes"][0]["value"]["stringValue"], "svc");
        let s = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "ab".repeat(16));
        assert_eq!(s["spanId"], "0101010101010101");
        assert_eq!(s["parentSpanId"], "0202020202020202");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(s["attributes"][0]["value"]["intValue"], "503");
        assert_eq!(s["endTimeUnixNano"], "2");
        assert_eq!(s["startTimeUnixNano"], "1");
        assert_eq!(s["name"], "GET /x/{id}");
        assert_eq!(s["attributes"][0]["key"], "http.response.status_code");
        assert_eq!(s["attributes"][1]["value"]["stringValue"], "/x/1");
        assert_eq!(s["events"][0]["name"], "routed");
        assert_eq!(s["events"][0]["timeUnixNano"], "1");
        assert_eq!(rs["scopeSpans"][0]["scope"]["name"], "turnpike-gateway");
    }

    #[test]
    fn strings_are_escaped_and_scopes_grouped() {
        let nasty = "q\"b\\n\nt\tc\u{1}\u{7f}é☃";
        let span = |scope, parent| SpanData {
            trace_id: [0x0f; 16],
            span_id: [0xf0; 8],
            parent_id: parent,
            name: nasty.into(),
            kind: SpanKind::Server,
            start_unix_nanos: u64::MAX,
            end_unix_nanos: 1_700_000_000_000_000_000,
            attributes: vec![("a", Value::Str(nasty.into())), ("n", Value::Int(-5))],
            events: Vec::new(),
            error: false,
            scope,
        };
        let spans = vec![span("turnpike-portal", None), span("turnpike-gateway", None), span("turnpike-portal", Some([3; 8]))];
        let v: serde_json::Value = serde_json::from_slice(&encode(nasty, spans)).unwrap();
        let rs = &v["resourceSpans"][0];
        assert_eq!(rs["resource"]["attributes"][0]["key"], "service.name");
        assert_eq!(rs["resource"]["attributes"][0]["value"]["stringValue"], nasty);
        let scopes = rs["scopeSpans"].as_array().unwrap();
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[0]["scope"]["name"], "turnpike-portal");
        assert_eq!(scopes[0]["spans"].as_array().unwrap().len(), 2);
        assert_eq!(scopes[1]["spans"].as_array().unwrap().len(), 1);
        let s = &scopes[0]["spans"][0];
        assert_eq!(s["traceId"], "0f".repeat(16));
        assert_eq!(s["spanId"], "f0".repeat(8));
        assert!(s.get("parentSpanId").is_none());
        assert_eq!(scopes[0]["spans"][1]["parentSpanId"], "0303030303030303");
        assert_eq!(s["name"], nasty);
        assert_eq!(s["kind"], 2);
        assert_eq!(s["startTimeUnixNano"], u64::MAX.to_string());
        assert_eq!(s["endTimeUnixNano"], "1700000000000000000");
        assert_eq!(s["attributes"][0]["value"]["stringValue"], nasty);
        assert_eq!(s["attributes"][1]["value"]["intValue"], "-5");
        assert_eq!(s["status"]["code"], 0);
    }
}
