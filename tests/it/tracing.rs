//! Distributed tracing and portal request telemetry over real sockets: W3C Trace Context through
//! the gateway, spans posted to a fake OTLP collector, trace ids in the access log, and the
//! portal's request log and metrics (without secrets).

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use tokio::sync::mpsc;
use turnpike_gateway::trace::TraceParent;
use turnpike_testkit::TestDb;

use crate::{system_clock, CounterBackend, TestApp};

const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const INCOMING_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const INCOMING_PARENT: &str = "00f067aa0ba902b7";

/// A guard against a hung test, never a synchronisation: every wait below ends on an event.
const GUARD: Duration = Duration::from_secs(30);

/// An upstream that answers 200 and sends each request's headers down the channel.
async fn recording_upstream() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<http::HeaderMap>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = crate::upstreams::serve(move |req: Request<hyper::body::Incoming>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(req.headers().clone());
            Response::new(Full::new(Bytes::from_static(b"ok")))
        }
    })
    .await;
    (addr, rx)
}

/// A fake OpenTelemetry collector: decodes each OTLP/HTTP JSON `ExportTraceServiceRequest` posted
/// to `/v1/traces` and sends every span (with its scope's name under `"scope"`) down the channel.
async fn fake_collector() -> (String, mpsc::UnboundedReceiver<serde_json::Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = crate::upstreams::serve(move |req: Request<hyper::body::Incoming>| {
        let tx = tx.clone();
        async move {
            assert_eq!(req.uri().path(), "/v1/traces");
            assert_eq!(req.headers()["content-type"], "application/json");
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let doc: serde_json::Value = serde_json::from_slice(&body).expect("an OTLP/JSON document");
            for rs in doc["resourceSpans"].as_array().unwrap() {
                assert_eq!(rs["resource"]["attributes"][0]["key"], "service.name");
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for span in ss["spans"].as_array().unwrap() {
                        let mut span = span.clone();
                        span["scope"] = ss["scope"]["name"].clone();
                        let _ = tx.send(span);
                    }
                }
            }
            Response::new(Full::new(Bytes::from_static(b"{}")))
        }
    })
    .await;
    (format!("http://{addr}"), rx)
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(GUARD, rx.recv()).await.expect("event within the guard").expect("channel open")
}

/// The next span of `scope`.
async fn next_span(rx: &mut mpsc::UnboundedReceiver<serde_json::Value>, scope: &str) -> serde_json::Value {
    loop {
        let s = next(rx).await;
        if s["scope"] == scope {
            return s;
        }
    }
}

fn attr<'a>(span: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    let a = span["attributes"].as_array().unwrap().iter().find(|a| a["key"] == key);
    a.map_or(&serde_json::Value::Null, |a| &a["value"])
}

fn parse(v: &http::HeaderValue) -> TraceParent {
    TraceParent::parse(v.as_bytes()).unwrap_or_else(|| panic!("a valid traceparent: {v:?}"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// (a) + (b): one SERVER span per request, child of the incoming context; the upstream's
/// `traceparent` names that span; without (or with a bad) header a new trace starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_continue_the_incoming_trace_and_the_upstream_sees_the_gateway_span() {
    for db in TestDb::each("spans_continue_the_incoming_trace").await {
        let (collector, mut spans) = fake_collector().await;
        let (up, mut seen) = recording_upstream().await;
        let endpoint = collector.clone();
        let app = TestApp::start_with(&db, &CounterBackend::Local, system_clock(), move |c| c.otlp_endpoint = Some(endpoint)).await;
        println!("database: {:?}", db.backend());
        crate::analytics::publish_with_doc(&app, "traced", &format!("http://{up}"), Some(crate::analytics::GITHUB_LIKE)).await;
        let (key, _, app_id) = app.developer_key("trace@example.com").await;

        // A valid incoming context, with a tracestate and a query holding nothing secret.
        let r = app
            .http
            .get(app.gw("/traced/repos/octo/hello?x=1"))
            .header("x-api-key", key.expose())
            .header("traceparent", INCOMING)
            .header("tracestate", "vendor=abc")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let h = next(&mut seen).await;
        let sent = parse(&h["traceparent"]);
        assert_eq!(hex(&sent.trace_id), INCOMING_TRACE, "the trace continues");
        assert_ne!(hex(&sent.parent_id), INCOMING_PARENT, "the client's traceparent is not forwarded as is");
        assert_eq!(sent.flags, 1);
        assert_eq!(h["tracestate"], "vendor=abc", "tracestate passes with a valid traceparent");
        let span = next_span(&mut spans, "turnpike-gateway").await;
        assert_eq!(span["traceId"], INCOMING_TRACE);
        assert_eq!(span["parentSpanId"], INCOMING_PARENT);
        assert_eq!(span["spanId"], hex(&sent.parent_id), "the upstream's parent is the gateway's span");
        assert_eq!(span["kind"], 2, "SERVER");
        assert_eq!(span["name"], "GET /traced/repos/{owner}/{repo}", "the operation's template, never the raw path");
        assert_eq!(attr(&span, "http.route")["stringValue"], "/traced/repos/{owner}/{repo}");
        assert_eq!(attr(&span, "http.request.method")["stringValue"], "GET");
        assert_eq!(attr(&span, "http.response.status_code")["intValue"], "200");
        assert_eq!(attr(&span, "url.path")["stringValue"], "/traced/repos/octo/hello", "no query");
        assert_eq!(attr(&span, "server.address")["stringValue"], "127.0.0.1");
        assert_eq!(attr(&span, "turnpike.api")["stringValue"], "traced");
        assert_eq!(attr(&span, "turnpike.app_id")["intValue"], app_id.to_string());
        let events: Vec<&str> = span["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(events, ["routed", "authenticated", "admitted", "upstream.sent", "upstream.headers"]);
        assert!(!span.to_string().contains(key.expose()), "the key never reaches a span");

        // No incoming header: a new trace, sampled (ratio 1.0), the span is its root.
        app.http.get(app.gw("/traced/a")).header("x-api-key", key.expose()).send().await.unwrap();
        let fresh = parse(&next(&mut seen).await["traceparent"]);
        assert_ne!(hex(&fresh.trace_id), INCOMING_TRACE);
        let span = next_span(&mut spans, "turnpike-gateway").await;
        assert_eq!(span["traceId"], hex(&fresh.trace_id));
        assert_eq!(span["spanId"], hex(&fresh.parent_id));
        assert_eq!(span.get("parentSpanId"), None, "a root span");
        assert_eq!(span["name"], "GET /traced/*", "no operation matched: the API's prefix");

        // An invalid traceparent (uppercase hex) is replaced, and its tracestate dropped.
        app.http
            .get(app.gw("/traced/b"))
            .header("x-api-key", key.expose())
            .header("traceparent", INCOMING.to_uppercase())
            .header("tracestate", "vendor=abc")
            .send()
            .await
            .unwrap();
        let h = next(&mut seen).await;
        let replaced = parse(&h["traceparent"]);
        assert_ne!(hex(&replaced.trace_id), INCOMING_TRACE.to_owned());
        assert!(!h.contains_key("tracestate"));
        let span = next_span(&mut spans, "turnpike-gateway").await;
        assert_eq!(span["traceId"], hex(&replaced.trace_id));

        // A refused request (no key) is a span too, with its status; not forwarded.
        let r = app.http.get(app.gw("/traced/c")).header("traceparent", INCOMING).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let span = next_span(&mut spans, "turnpike-gateway").await;
        assert_eq!(attr(&span, "http.response.status_code")["intValue"], "401");
        assert_eq!(span["parentSpanId"], INCOMING_PARENT);

        // Exactly one span per request: stopping flushes the exporter, and nothing else came.
        app.stop().await;
        while let Ok(s) = spans.try_recv() {
            assert_ne!(s["scope"], "turnpike-gateway", "an extra gateway span: {s}");
        }
        assert!(seen.try_recv().is_err(), "the refused request never reached the upstream");
    }
}

/// (d): with `trace_context = false` the gateway adds no `traceparent`, and a client's passes
/// untouched (valid or not), as before tracing existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_propagation_off_trace_headers_pass_untouched() {
    for db in TestDb::each("with_propagation_off").await {
        let (up, mut seen) = recording_upstream().await;
        println!("database: {:?}", db.backend());
        let app = TestApp::start_with(&db, &CounterBackend::Local, system_clock(), |c| c.trace_context = false).await;
        app.publish("traced", &[(&format!("http://{up}"), 1)]).await;
        let (key, _, _) = app.developer_key("off@example.com").await;
        app.http.get(app.gw("/traced/x")).header("x-api-key", key.expose()).send().await.unwrap();
        assert!(!next(&mut seen).await.contains_key("traceparent"));
        for tp in [INCOMING.to_owned(), INCOMING.to_uppercase()] {
            app.http
                .get(app.gw("/traced/x"))
                .header("x-api-key", key.expose())
                .header("traceparent", &tp)
                .header("tracestate", "vendor=abc")
                .send()
                .await
                .unwrap();
            let h = next(&mut seen).await;
            assert_eq!(h["traceparent"], tp.as_str());
            assert_eq!(h["tracestate"], "vendor=abc");
        }
        app.stop().await;
    }
}

/// The real binary, with `env`, until it printed `ready`: its URLs by name (`portal`, `gateway`,
/// `metrics`), and every stderr line as it comes.
fn spawn_binary(
    role: &str,
    env: &[(&str, &str)],
) -> (std::process::Child, std::collections::HashMap<String, String>, mpsc::UnboundedReceiver<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnpike"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TURNPIKE_")) {
        cmd.env_remove(k);
    }
    cmd.arg(role)
        .env("TURNPIKE_GATEWAY_ADDR", "127.0.0.1:0")
        .env("TURNPIKE_PORTAL_ADDR", "127.0.0.1:0")
        .env("TURNPIKE_METRICS_ADDR", "127.0.0.1:0")
        .env("TURNPIKE_DEMO_UPSTREAM_ADDR", "127.0.0.1:0")
        .env("TURNPIKE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut urls = std::collections::HashMap::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        if let Some((name, url)) = line.split_once(": ").filter(|(_, u)| u.trim().starts_with("http")) {
            urls.insert(name.trim().to_owned(), url.trim().trim_end_matches("/metrics").to_owned());
        }
        if line == "ready" {
            break;
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, urls, rx)
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// (c): the access log line of the real binary carries the trace id and the gateway's span id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_line_carries_the_trace_id() {
    for db in TestDb::each("the_access_log_line_carries_the_trace_id").await {
        let (up, mut seen) = recording_upstream().await;
        let s = &db.store;
        let now = turnpike_store::clock::Clock::now(&turnpike_store::clock::SystemClock);
        let plan = turnpike_testkit::free_plan();
        turnpike_testkit::publish(s, "traced", "Traced", &[(&format!("http://{up}"), 1)], turnpike_store::Visibility::Public, &plan, now)
            .await;
        let acc = s
            .create_account(&turnpike_store::domain::Email::parse("log@example.com").unwrap(), "x", turnpike_store::Role::Developer, now)
            .await
            .unwrap();
        let app_row = s.create_app(acc.id, "app", now).await.unwrap();
        s.subscribe_defaults(app_row.id, now).await.unwrap();
        let key = turnpike_store::domain::ApiKey::generate();
        s.create_key(app_row.id, "k", &key, now).await.unwrap();

        println!("database: {:?}", db.backend());
        let (child, urls, mut lines) = spawn_binary("gateway", &[("TURNPIKE_DATABASE_URL", &db.url)]);
        let r = reqwest::Client::new()
            .get(format!("{}/traced/x", urls["gateway"]))
            .header("x-api-key", key.expose())
            .header("traceparent", INCOMING)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let sent = parse(&next(&mut seen).await["traceparent"]);
        let line = loop {
            let l = next(&mut lines).await;
            if l.contains(&id) && l.contains("turnpike::access") {
                break l;
            }
        };
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(entry["trace_id"], INCOMING_TRACE, "{line}");
        assert_eq!(entry["span_id"], hex(&sent.parent_id), "the span the upstream was told about: {line}");
        stop(child);
    }
}

/// (e): a portal request is logged with its route template and counted on the metrics listener;
/// a key in `Authorization`, a session cookie and `?api_key=` never reach any log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_requests_are_logged_by_template_and_counted_without_secrets() {
    for db in TestDb::each("portal_requests_are_logged_by_template").await {
        println!("database: {:?}", db.backend());
        let (child, urls, mut lines) =
            spawn_binary("serve", &[("TURNPIKE_DATABASE_URL", &db.url), ("TURNPIKE_SEED_DEMO", "false"), ("TURNPIKE_ACCESS_LOG", "false")]);
        let token = "tp_live_supersecrettoken0123456789";
        let cookie = "tp_session=sessionsecret0123456789";
        let query_secret = "querysecret0123456789";
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r = http
            .get(format!("{}/apps/987654?api_key={query_secret}", urls["portal"]))
            .header("authorization", format!("Bearer {token}"))
            .header("cookie", cookie)
            .header("x-request-id", "portal-test-1")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert_eq!(r.headers()["x-request-id"], "portal-test-1");
        let mut logged = Vec::new();
        let line = loop {
            let l = next(&mut lines).await;
            logged.push(l.clone());
            if l.contains("portal-test-1") {
                break l;
            }
        };
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(entry["target"], "turnpike::portal::request", "{line}");
        assert_eq!(entry["route"], "/apps/{id}", "{line}");
        assert_eq!(entry["method"], "GET");
        assert_eq!(entry["status"], status);
        assert!(entry["latency_ms"].as_f64().is_some());
        assert!(!line.contains("987654"), "the raw path's id is not logged: {line}");

        // An unmatched path collapses to one label.
        http.get(format!("{}/no/such/page/123", urls["portal"])).header("x-request-id", "portal-test-2").send().await.unwrap();
        let line = loop {
            let l = next(&mut lines).await;
            logged.push(l.clone());
            if l.contains("portal-test-2") {
                break l;
            }
        };
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(entry["route"], "unmatched", "{line}");

        let metrics = http.get(format!("{}/metrics", urls["metrics"])).send().await.unwrap().text().await.unwrap();
        let counted = format!("turnpike_portal_requests_total{{method=\"GET\",route=\"/apps/{{id}}\",status=\"{status}\"}} 1");
        assert!(metrics.contains(&counted), "{counted} in:\n{metrics}");
        assert!(metrics.contains("turnpike_portal_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1"), "{metrics}");
        assert!(metrics.contains("turnpike_portal_request_duration_seconds_bucket{method=\"GET\",route=\"/apps/{id}\""), "{metrics}");
        assert!(!metrics.contains("987654") && !metrics.contains("/no/such"), "labels are templates only");

        stop(child);
        // Every line the process wrote, to its end.
        while let Some(l) = lines.recv().await {
            logged.push(l);
        }
        for l in &logged {
            for secret in [token, "sessionsecret0123456789", query_secret] {
                assert!(!l.contains(secret), "a secret in a log line: {l}");
            }
        }
    }
}
