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
    Flush(oneshot::Sender<()>),
}

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
    async fn run(self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<SpanData> = Vec::new();
        loop {
            let msg = if batch.is_empty() {
                rx.recv().await
            } else {
                match tokio::time::timeout(INTERVAL, rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        self.post(std::mem::take(&mut batch)).await;
                        continue;
                    }
                }
            };
            match msg {
                Some(Msg::Span(s)) => {
                    batch.push(*s);
                    if batch.len() >= BATCH {
                        self.post(std::mem::take(&mut batch)).await;
                    }
                }
                Some(Msg::Flush(done)) => {
                    self.post(std::mem::take(&mut batch)).await;
                    let _ = done.send(());
                }
                None => {
                    self.post(std::mem::take(&mut batch)).await;
                    return;
                }
            }
        }
    }

    async fn post(&self, batch: Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let body = Bytes::from(encode(&self.service, &batch));
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

fn hex(b: &[u8]) -> String {
    let mut out = vec![0u8; b.len() * 2];
    crate::trace::hex_into(b, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn attribute(key: &str, v: &Value) -> serde_json::Value {
    let value = match v {
        Value::Str(s) => serde_json::json!({ "stringValue": s }),
        // OTLP/JSON writes 64-bit integers as strings.
        Value::Int(i) => serde_json::json!({ "intValue": i.to_string() }),
    };
    serde_json::json!({ "key": key, "value": value })
}

/// An `ExportTraceServiceRequest` in OTLP's JSON encoding (ids as hex, 64-bit integers as
/// strings, enums as numbers).
pub fn encode(service: &str, spans: &[SpanData]) -> Vec<u8> {
    let mut scopes: Vec<(&'static str, Vec<serde_json::Value>)> = Vec::new();
    for s in spans {
        let mut span = serde_json::json!({
            "traceId": hex(&s.trace_id),
            "spanId": hex(&s.span_id),
            "name": s.name,
            "kind": s.kind as u8,
            "startTimeUnixNano": s.start_unix_nanos.to_string(),
            "endTimeUnixNano": s.end_unix_nanos.to_string(),
            "attributes": s.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
            "events": s.events.iter().map(|(name, t)| serde_json::json!({ "name": name, "timeUnixNano": t.to_string() })).collect::<Vec<_>>(),
            "status": { "code": if s.error { 2 } else { 0 } },
        });
        if let Some(p) = s.parent_id {
            span["parentSpanId"] = hex(&p).into();
        }
        match scopes.iter_mut().find(|(name, _)| *name == s.scope) {
            Some((_, list)) => list.push(span),
            None => scopes.push((s.scope, vec![span])),
        }
    }
    let doc = serde_json::json!({
        "resourceSpans": [{
            "resource": { "attributes": [attribute("service.name", &Value::Str(service.to_owned()))] },
            "scopeSpans": scopes.into_iter().map(|(name, spans)| serde_json::json!({
                "scope": { "name": name, "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            })).collect::<Vec<_>>(),
        }]
    });
    serde_json::to_vec(&doc).unwrap_or_default()
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
        let v: serde_json::Value = serde_json::from_slice(&encode("svc", &[span])).unwrap();
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
    }
}
