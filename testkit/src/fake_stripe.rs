//! A fake Stripe API on a loopback port, for tests (never the network). It implements exactly the
//! endpoints Turnpike calls: `POST /v1/customers`, `/v1/checkout/sessions`,
//! `/v1/billing_portal/sessions` and `/v1/invoiceitems`. It records every request (path,
//! `Idempotency-Key`, form fields) and, like Stripe, answers a repeated idempotency key with the
//! first response without creating anything new. It also signs webhook payloads the way Stripe
//! does (an independent HMAC-SHA256 implementation, so the code under test is not its own oracle).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// e.g. `/v1/customers`.
    pub path: String,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<String>,
    /// Whether `Authorization: Bearer <the configured key>` was sent.
    pub authorized: bool,
    /// Form fields, in order (`line_items[0][price_data][currency]` style keys).
    pub form: Vec<(String, String)>,
}

impl Recorded {
    /// The first value of form field `k`.
    pub fn field(&self, k: &str) -> Option<&str> {
        self.form.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    by_key: HashMap<String, Value>,
    created: HashMap<&'static str, Vec<Value>>,
    next: u64,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeStripe {
    /// Base URL with a trailing slash, e.g. `http://127.0.0.1:41234/` (for `stripe_api_base`).
    pub base: String,
    /// The secret key the fake accepts.
    pub secret_key: String,
    inner: Arc<Mutex<Inner>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for FakeStripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeStripe").field("base", &self.base).finish()
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

fn object_kind(resource: &str) -> Option<(&'static str, &'static str)> {
    Some(match resource {
        "customers" => ("customer", "cus"),
        "checkout/sessions" => ("checkout.session", "cs_test"),
        "billing_portal/sessions" => ("billing_portal.session", "bps"),
        "invoiceitems" => ("invoiceitem", "ii"),
        _ => return None,
    })
}

async fn handle(
    State(fake): State<FakeStripe>,
    Path(resource): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/v1/{resource}");
    let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(format!("Bearer {}", fake.secret_key).as_str());
    let mut inner = fake.inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.requests.push(Recorded { path: path.clone(), idempotency_key: idempotency_key.clone(), authorized, form: form.clone() });
    if !authorized {
        let e = json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}});
        return (StatusCode::UNAUTHORIZED, Json(e)).into_response();
    }
    let Some((object, prefix)) = object_kind(&resource) else {
        let e = json!({"error": {"type": "invalid_request_error", "message": format!("Unrecognized request URL (POST: {path})")}});
        return (StatusCode::NOT_FOUND, Json(e)).into_response();
    };
    if let Some(k) = &idempotency_key {
        if let Some(v) = inner.by_key.get(&format!("{path} {k}")) {
            return (StatusCode::OK, [("idempotent-replayed", "true")], Json(v.clone())).into_response();
        }
    }
    inner.next += 1;
    let id = format!("{prefix}_{:06}", inner.next);
    let mut v = json!({"id": id, "object": object, "livemode": false, "created": 1_700_000_000});
    match object {
        "checkout.session" => {
            v["url"] = json!(format!("https://checkout.stripe.test/c/pay/{id}"));
            v["mode"] = json!(form.iter().find(|(k, _)| k == "mode").map(|(_, v)| v.clone()));
        }
        "billing_portal.session" => v["url"] = json!(format!("https://billing.stripe.test/p/session/{id}")),
        _ => {}
    }
    v["metadata"] = json!({});
    for (k, val) in &form {
        if let Some(m) = k.strip_prefix("metadata[").and_then(|r| r.strip_suffix(']')) {
            v["metadata"][m] = json!(val);
        }
    }
    if let Some(k) = &idempotency_key {
        inner.by_key.insert(format!("{path} {k}"), v.clone());
    }
    inner.created.entry(object).or_default().push(v.clone());
    (StatusCode::OK, Json(v)).into_response()
}

impl FakeStripe {
    /// Start on 127.0.0.1:0, accepting `secret_key`.
    pub async fn start(secret_key: &str) -> FakeStripe {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake stripe");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let inner = Arc::new(Mutex::new(Inner::default()));
        let placeholder = Arc::new(tokio::spawn(async {}));
        let mut fake = FakeStripe { base: format!("http://{addr}/"), secret_key: secret_key.to_owned(), inner, server: placeholder };
        let app = Router::new().route("/v1/{*resource}", post(handle)).with_state(fake.clone());
        fake.server = Arc::new(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
        fake
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).requests.clone()
    }

    /// Requests to `path` (e.g. `/v1/customers`).
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    /// Objects actually created of `object` kind (`customer`, `checkout.session`, …): idempotent
    /// replays are not counted.
    pub fn created(&self, object: &str) -> Vec<Value> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).created.get(object).cloned().unwrap_or_default()
    }
}

/// A Stripe event envelope around `object`.
pub fn event(id: &str, event_type: &str, created: i64, object: Value) -> Vec<u8> {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": object},
    })
    .to_string()
    .into_bytes()
}

/// The `Stripe-Signature` header Stripe would send for `payload` at `timestamp`.
pub fn signature(secret: &str, payload: &[u8], timestamp: i64) -> String {
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("hmac key");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(payload);
    format!("t={timestamp},v1={}", hex::encode(m.finalize().into_bytes()))
}
