//! A fake Stripe API on a loopback port, for tests (never the network). It implements exactly the
//! endpoints Turnpike calls, with the real API's shapes for the fields Turnpike reads:
//! `POST /v1/customers`, `/v1/checkout/sessions`, `/v1/billing_portal/sessions`, `/v1/invoiceitems`,
//! `/v1/products` (custom `id` allowed, like Stripe), `/v1/prices`, `/v1/prices/{id}` (archive),
//! `GET /v1/products?ids[]=…`, `GET /v1/prices?lookup_keys[]=…`, `GET /v1/subscriptions/{id}`,
//! `GET /v1/invoices?customer=…`, `GET /v1/invoiceitems?customer=…`,
//! `POST /v1/subscriptions/{id}` (cancel at period end, price change) and
//! `DELETE /v1/subscriptions/{id}` (cancel now). It records every request (method, path,
//! `Idempotency-Key`, form fields) and, like Stripe, answers a repeated idempotency key with the
//! first response without changing anything. Subscriptions come into being when a test completes a
//! Checkout Session ([`FakeStripe::complete_checkout`]). It also signs webhook payloads the way Stripe
//! does (an independent HMAC-SHA256 implementation, so the code under test is not its own oracle).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Form, Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST` or `DELETE`.
    pub method: String,
    /// e.g. `/v1/customers`.
    pub path: String,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<String>,
    /// Whether `Authorization: Bearer <the configured key>` was sent.
    pub authorized: bool,
    /// Form fields (or query parameters of a GET), in order (`line_items[0][price]` style keys).
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
    /// Live objects by id (products, prices, subscriptions, sessions, …).
    objects: BTreeMap<String, Value>,
    next: HashMap<&'static str, u64>,
}

impl Inner {
    /// A list object of the live `object`s that `keep`, as Stripe's list endpoints answer.
    fn list(&self, object: &str, url: &str, keep: impl Fn(&Value) -> bool) -> Value {
        let data: Vec<Value> = self.objects.values().filter(|o| o["object"] == object && keep(o)).cloned().collect();
        json!({"object": "list", "url": url, "has_more": false, "data": data})
    }

    fn new_id(&mut self, prefix: &'static str) -> String {
        let n = self.next.entry(prefix).or_default();
        *n += 1;
        format!("{prefix}_{:06}", *n)
    }
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
        "products" => ("product", "prod"),
        "prices" => ("price", "price"),
        _ => return None,
    })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"type": "invalid_request_error", "message": message}}))).into_response()
}

/// Form fields `prefix[k]=v` as a JSON object (Stripe's metadata encoding).
fn map_of(form: &[(String, String)], prefix: &str) -> Value {
    let mut m = json!({});
    for (k, val) in form {
        if let Some(name) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('[')).and_then(|r| r.strip_suffix(']')) {
            if !name.contains('[') {
                m[name] = json!(val);
            }
        }
    }
    m
}

fn field<'a>(form: &'a [(String, String)], k: &str) -> Option<&'a str> {
    form.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// Values of an array parameter, encoded either `k[]=v` or `k[0]=v`.
fn array_of(form: &[(String, String)], k: &str) -> Vec<String> {
    form.iter()
        .filter(|(key, _)| key.strip_prefix(k).is_some_and(|r| r.starts_with('[') && r.ends_with(']')))
        .map(|(_, v)| v.clone())
        .collect()
}

async fn handle(
    State(fake): State<FakeStripe>,
    method: Method,
    Path(resource): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let path = format!("/v1/{resource}");
    // A GET's query string, a POST's body; a DELETE may have neither.
    let form = form.map(|f| f.0).unwrap_or_default();
    let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(format!("Bearer {}", fake.secret_key).as_str());
    let mut inner = fake.inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        idempotency_key: idempotency_key.clone(),
        authorized,
        form: form.clone(),
    });
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
    }
    let replay_key = idempotency_key.as_ref().map(|k| format!("{method} {path} {k}"));
    if let Some(v) = replay_key.as_ref().and_then(|k| inner.by_key.get(k)) {
        return (StatusCode::OK, [("idempotent-replayed", "true")], Json(v.clone())).into_response();
    }
    let answer = match (method.clone(), resource.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["prices"]) => {
            let keys = array_of(&form, "lookup_keys");
            Ok(inner.list("price", "/v1/prices", |o| {
                o["active"] == true && (keys.is_empty() || o["lookup_key"].as_str().is_some_and(|k| keys.iter().any(|x| x == k)))
            }))
        }
        (Method::GET, ["products"]) => {
            let ids = array_of(&form, "ids");
            Ok(inner.list("product", "/v1/products", |o| ids.is_empty() || o["id"].as_str().is_some_and(|k| ids.iter().any(|x| x == k))))
        }
        (Method::GET, [kind @ ("invoices" | "invoiceitems")]) => {
            let customer = field(&form, "customer").map(str::to_owned);
            let object = if *kind == "invoices" { "invoice" } else { "invoiceitem" };
            Ok(inner.list(object, &path, |o| customer.as_deref().is_none_or(|c| o["customer"] == c)))
        }
        (Method::GET, ["subscriptions", id]) => match inner.objects.get(*id) {
            Some(o) if o["object"] == "subscription" => Ok(o.clone()),
            _ => Err(error(StatusCode::NOT_FOUND, &format!("No such subscription: '{id}'"))),
        },
        (Method::DELETE, ["subscriptions", id]) => match inner.objects.get_mut(*id) {
            Some(o) if o["object"] == "subscription" && o["status"] != "canceled" => {
                o["status"] = json!("canceled");
                o["canceled_at"] = json!(1_700_000_000);
                o["ended_at"] = json!(1_700_000_000);
                let o = o.clone();
                inner.created.entry("subscription.canceled").or_default().push(o.clone());
                Ok(o)
            }
            Some(o) if o["object"] == "subscription" => Err(error(
                StatusCode::BAD_REQUEST,
                &format!("A canceled subscription can only update its cancellation_details and metadata: '{}'", o["id"]),
            )),
            _ => Err(error(StatusCode::NOT_FOUND, &format!("No such subscription: '{id}'"))),
        },
        (Method::POST, ["subscriptions", id]) => {
            let price = field(&form, "items[0][price]").and_then(|p| inner.objects.get(p)).cloned();
            match inner.objects.get_mut(*id) {
                Some(o) if o["object"] == "subscription" && o["status"] != "canceled" => {
                    if let Some(c) = field(&form, "cancel_at_period_end") {
                        o["cancel_at_period_end"] = json!(c == "true");
                    }
                    if let Some(p) = price {
                        if field(&form, "items[0][id]") != o["items"]["data"][0]["id"].as_str() {
                            return error(StatusCode::BAD_REQUEST, "No such subscription item");
                        }
                        o["items"]["data"][0]["plan"] = plan_of(&p);
                        o["items"]["data"][0]["price"] = p;
                    }
                    if let Some(b) = field(&form, "proration_behavior") {
                        o["turnpike_fake_last_proration_behavior"] = json!(b);
                    }
                    let o = o.clone();
                    inner.created.entry("subscription.update").or_default().push(o.clone());
                    Ok(o)
                }
                Some(_) => Err(error(StatusCode::BAD_REQUEST, "A canceled subscription cannot be updated")),
                None => Err(error(StatusCode::NOT_FOUND, &format!("No such subscription: '{id}'"))),
            }
        }
        (Method::POST, ["prices", id]) => match inner.objects.get_mut(*id) {
            Some(o) if o["object"] == "price" => {
                if let Some(a) = field(&form, "active") {
                    o["active"] = json!(a == "true");
                }
                Ok(o.clone())
            }
            _ => Err(error(StatusCode::NOT_FOUND, &format!("No such price: '{id}'"))),
        },
        (Method::POST, _) => match object_kind(&resource) {
            None => Err(error(StatusCode::NOT_FOUND, &format!("Unrecognized request URL (POST: {path})"))),
            Some((object, prefix)) => {
                let id = match (object, field(&form, "id")) {
                    ("product", Some(custom)) => {
                        if inner.objects.contains_key(custom) {
                            return error(StatusCode::BAD_REQUEST, &format!("Product already exists: '{custom}'"));
                        }
                        custom.to_owned()
                    }
                    _ => inner.new_id(prefix),
                };
                let mut v = json!({"id": id, "object": object, "livemode": false, "created": 1_700_000_000});
                v["metadata"] = map_of(&form, "metadata");
                match object {
                    "checkout.session" => {
                        v["url"] = json!(format!("https://checkout.stripe.test/c/pay/{id}"));
                        v["mode"] = json!(field(&form, "mode"));
                        v["customer"] = json!(field(&form, "customer"));
                        v["payment_status"] = json!("unpaid");
                        v["status"] = json!("open");
                        v["subscription"] = Value::Null;
                        v["expires_at"] = json!(1_700_000_000 + 86_400);
                        v["automatic_tax"] = json!({"enabled": false, "liability": null, "provider": null, "status": null});
                        v["custom_fields"] = json!([]);
                        v["custom_text"] =
                            json!({"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null});
                        v["payment_method_types"] = json!(["card"]);
                        v["shipping_options"] = json!([]);
                        // Kept for complete_checkout; not part of Stripe's session object.
                        v["turnpike_fake_form"] = json!(form);
                    }
                    "billing_portal.session" => v["url"] = json!(format!("https://billing.stripe.test/p/session/{id}")),
                    "product" => {
                        v["name"] = json!(field(&form, "name"));
                        v["active"] = json!(true);
                        v["type"] = json!("service");
                        v["images"] = json!([]);
                        v["marketing_features"] = json!([]);
                        v["updated"] = v["created"].clone();
                    }
                    "price" => {
                        let lookup_key = field(&form, "lookup_key").map(str::to_owned);
                        if let Some(k) = &lookup_key {
                            // Stripe refuses a second active price with a lookup key unless
                            // `transfer_lookup_key` is set.
                            let taken = inner.objects.values().any(|o| o["object"] == "price" && o["lookup_key"] == k.as_str());
                            if taken && field(&form, "transfer_lookup_key") != Some("true") {
                                return error(StatusCode::BAD_REQUEST, &format!("A price (`{k}`) already uses that lookup key."));
                            }
                        }
                        let product = field(&form, "product").unwrap_or_default().to_owned();
                        if !inner.objects.contains_key(&product) {
                            return error(StatusCode::BAD_REQUEST, &format!("No such product: '{product}'"));
                        }
                        v["active"] = json!(true);
                        v["lookup_key"] = json!(lookup_key);
                        v["product"] = json!(product);
                        v["currency"] = json!(field(&form, "currency"));
                        v["unit_amount"] = json!(field(&form, "unit_amount").and_then(|a| a.parse::<i64>().ok()));
                        v["recurring"] =
                            json!({"interval": field(&form, "recurring[interval]"), "interval_count": 1, "usage_type": "licensed"});
                        v["type"] = json!("recurring");
                        v["billing_scheme"] = json!("per_unit");
                    }
                    "invoiceitem" => {
                        v["invoice"] = Value::Null;
                        v["description"] = json!(field(&form, "description"));
                        v["customer"] = json!(field(&form, "customer"));
                        v["amount"] = json!(field(&form, "amount").and_then(|a| a.parse::<i64>().ok()));
                        v["currency"] = json!(field(&form, "currency"));
                    }
                    _ => {}
                }
                inner.objects.insert(id, v.clone());
                inner.created.entry(object).or_default().push(v.clone());
                Ok(v)
            }
        },
        _ => Err(error(StatusCode::NOT_FOUND, &format!("Unrecognized request URL ({method}: {path})"))),
    };
    match answer {
        Ok(v) => {
            if let Some(k) = replay_key {
                inner.by_key.insert(k, v.clone());
            }
            (StatusCode::OK, Json(v)).into_response()
        }
        Err(r) => r,
    }
}

impl FakeStripe {
    /// Start on 127.0.0.1:0, accepting `secret_key`.
    pub async fn start(secret_key: &str) -> FakeStripe {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake stripe");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let inner = Arc::new(Mutex::new(Inner::default()));
        let placeholder = Arc::new(tokio::spawn(async {}));
        let mut fake = FakeStripe { base: format!("http://{addr}/"), secret_key: secret_key.to_owned(), inner, server: placeholder };
        let app = Router::new().route("/v1/{*resource}", any(handle)).with_state(fake.clone());
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

    /// Requests with `method` to `path` (e.g. `DELETE`, `/v1/subscriptions/sub_000001`).
    pub fn requests_with(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.path == path).collect()
    }

    /// The live object with this id (product, price, subscription, …), as the API would show it.
    pub fn object(&self, id: &str) -> Option<Value> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).objects.get(id).cloned()
    }

    /// Live objects of `object` kind (`product`, `price`, `subscription`, …), by id.
    pub fn objects(&self, object: &str) -> Vec<Value> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).objects.values().filter(|o| o["object"] == object).cloned().collect()
    }

    /// The customer pays Checkout Session `session_id`: Stripe creates the subscription on the
    /// session's price (with `subscription_data[metadata]` as its metadata). Returns the session
    /// as `checkout.session.completed` carries it, `payment_status` = `payment_status` (`paid`, or
    /// `unpaid` for an asynchronous payment method still pending).
    pub fn complete_checkout(&self, session_id: &str, payment_status: &str) -> Value {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let session = inner.objects.get(session_id).cloned().expect("a session the fake created");
        let form: Vec<(String, String)> = serde_json::from_value(session["turnpike_fake_form"].clone()).unwrap_or_default();
        let price = field(&form, "line_items[0][price]").and_then(|p| inner.objects.get(p)).cloned().unwrap_or(Value::Null);
        let sub_id = inner.new_id("sub");
        let item_id = inner.new_id("si");
        let (start, end) = (1_700_000_000, 1_700_000_000 + 30 * 86_400);
        let sub = json!({
            "id": sub_id, "object": "subscription", "livemode": false, "created": start,
            "customer": session["customer"], "status": "active", "cancel_at_period_end": false,
            "canceled_at": null, "ended_at": null, "metadata": map_of(&form, "subscription_data[metadata]"),
            "currency": price["currency"], "start_date": start, "billing_cycle_anchor": start,
            "collection_method": "charge_automatically", "discounts": [], "billing_schedules": [],
            "automatic_tax": {"enabled": false, "disabled_reason": null, "liability": null},
            "billing_mode": {"type": "classic", "flexible": null, "updated_at": null},
            "invoice_settings": {"account_tax_ids": null, "issuer": {"type": "self"}},
            "items": {"object": "list", "has_more": false, "url": format!("/v1/subscription_items?subscription={sub_id}"),
                      "data": [subscription_item(&item_id, &sub_id, &price, start, end)]},
        });
        inner.objects.insert(sub_id.clone(), sub.clone());
        inner.created.entry("subscription").or_default().push(sub);
        let mut done = session.clone();
        if let Some(o) = done.as_object_mut() {
            o.remove("turnpike_fake_form");
        }
        done["status"] = json!("complete");
        done["payment_status"] = json!(payment_status);
        done["subscription"] = json!(sub_id);
        inner.objects.insert(session_id.to_owned(), done.clone());
        done
    }

    /// What a change in Stripe's Customer Portal (or dashboard) does: subscription `sub_id` moves
    /// to the price with `lookup_key`. Returns the subscription as `customer.subscription.updated`
    /// carries it.
    pub fn portal_switch_price(&self, sub_id: &str, lookup_key: &str) -> Value {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let price = inner
            .objects
            .values()
            .find(|o| o["object"] == "price" && o["lookup_key"] == lookup_key && o["active"] == true)
            .cloned()
            .expect("an active price with that lookup key");
        let sub = inner.objects.get_mut(sub_id).expect("a subscription the fake holds");
        sub["items"]["data"][0]["plan"] = plan_of(&price);
        sub["items"]["data"][0]["price"] = price;
        sub.clone()
    }

    /// What Stripe's next billing cycle does with pending invoice items: one paid invoice per
    /// customer holding them as lines (each line carries its item's amount and metadata). Returns
    /// the invoice ids created.
    pub fn invoice_pending_items(&self) -> Vec<String> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let pending: Vec<Value> =
            inner.objects.values().filter(|o| o["object"] == "invoiceitem" && o["invoice"].is_null()).cloned().collect();
        let mut customers: Vec<String> = pending.iter().filter_map(|i| i["customer"].as_str().map(str::to_owned)).collect();
        customers.dedup();
        let mut made = Vec::new();
        for customer in customers {
            let id = inner.new_id("in");
            let mut lines = Vec::new();
            for item in pending.iter().filter(|i| i["customer"] == customer.as_str()) {
                let line_id = inner.new_id("il");
                lines.push(json!({"id": line_id, "object": "line_item", "amount": item["amount"], "subtotal": item["amount"],
                                  "currency": item["currency"], "description": item["description"], "metadata": item["metadata"],
                                  "livemode": false, "discountable": true, "discounts": [],
                                  "period": {"start": 1_700_000_000, "end": 1_700_000_000},
                                  "parent": {"type": "invoice_item_details", "invoice_item_details": {"invoice_item": item["id"], "proration": false, "proration_details": null, "subscription": null}}}));
                if let Some(o) = inner.objects.get_mut(item["id"].as_str().unwrap_or_default()) {
                    o["invoice"] = json!(id);
                }
            }
            let total: i64 = lines.iter().filter_map(|l| l["amount"].as_i64()).sum();
            let currency = lines.first().map_or(Value::Null, |l| l["currency"].clone());
            let invoice = json!({"id": id, "object": "invoice", "customer": customer, "status": "paid", "total": total,
                                 "subtotal": total, "amount_due": total, "amount_paid": total, "amount_remaining": 0,
                                 "amount_overpaid": 0, "amount_shipping": 0, "attempt_count": 1, "attempted": true,
                                 "currency": currency, "created": 1_700_000_000, "livemode": false,
                                 "period_start": 1_700_000_000, "period_end": 1_700_000_000, "starting_balance": 0,
                                 "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
                                 "collection_method": "charge_automatically", "default_tax_rates": [], "discounts": [],
                                 "automatic_tax": {"enabled": false, "disabled_reason": null, "liability": null, "provider": null, "status": null},
                                 "issuer": {"type": "self"}, "payment_settings": {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
                                 "status_transitions": {"finalized_at": 1_700_000_000, "marked_uncollectible_at": null, "paid_at": 1_700_000_000, "voided_at": null},
                                 "hosted_invoice_url": format!("https://invoice.stripe.test/i/{id}"),
                                 "lines": {"object": "list", "has_more": false, "url": format!("/v1/invoices/{id}/lines"), "data": lines}});
            inner.objects.insert(id.clone(), invoice);
            made.push(id);
        }
        made
    }

    /// Put an invoice into the fake as Stripe would hold it (e.g. one Stripe finalized for a
    /// period); tests may edit it later with [`FakeStripe::edit_object`].
    pub fn insert_object(&self, object: Value) {
        let id = object["id"].as_str().expect("an id").to_owned();
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).objects.insert(id, object);
    }

    /// Change a live object in place (e.g. an invoice line's amount, for a drift test).
    pub fn edit_object(&self, id: &str, edit: impl FnOnce(&mut Value)) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        edit(inner.objects.get_mut(id).expect("an object the fake holds"));
    }

    /// Objects actually created of `object` kind (`customer`, `checkout.session`, …): idempotent
    /// replays are not counted.
    pub fn created(&self, object: &str) -> Vec<Value> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).created.get(object).cloned().unwrap_or_default()
    }
}

/// A subscription item on `price` (with the legacy `plan` view of it that Stripe still includes).
fn subscription_item(id: &str, sub_id: &str, price: &Value, start: i64, end: i64) -> Value {
    json!({"id": id, "object": "subscription_item", "quantity": 1, "subscription": sub_id, "created": start,
           "current_period_start": start, "current_period_end": end, "discounts": [], "metadata": {},
           "plan": plan_of(price), "price": price})
}

/// The `plan` object Stripe shows beside a recurring price.
fn plan_of(price: &Value) -> Value {
    json!({"id": price["id"], "object": "plan", "active": price["active"], "amount": price["unit_amount"],
           "billing_scheme": "per_unit", "created": price["created"], "currency": price["currency"],
           "interval": price["recurring"]["interval"], "interval_count": 1, "livemode": false,
           "product": price["product"], "usage_type": "licensed", "metadata": {}})
}

/// A Stripe event envelope around `object`.
pub fn event(id: &str, event_type: &str, created: i64, object: Value) -> Vec<u8> {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2026-09-30.endive",
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
