//! Turnpike's optional Stripe bridge (issues #5, #16): one Stripe customer per developer account,
//! a catalogue of Stripe Products/Prices mirroring the paid plans, Checkout Sessions on those
//! Prices, Customer Portal sessions, signature-verified webhooks that drive subscription state, a
//! worker that pushes local lifecycle changes to Stripe (see `sync`), and usage pushed as invoice
//! items with idempotency keys.
//!
//! Requests go through async-stripe's client (retries, `Idempotency-Key`, base-URL override for
//! the tests' fake server). Request bodies are built here and responses read into small local
//! types holding only the fields Turnpike uses, so a newer Stripe API version adding or moving
//! other fields cannot break deserialization.
//!
//! Webhook signatures are verified here with HMAC-SHA256 per Stripe's scheme, against the
//! injected clock (async-stripe's verifier reads the system clock, which tests cannot move).
//!
//! Nothing here runs unless Stripe is configured: the portal routes answer 404 and the worker
//! task is not started.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use stripe::{IdempotencyKey, RequestStrategy};
use stripe_client_core::{RequestBuilder, StripeMethod};
use turnpike_store::period::Period;
use turnpike_store::{Account, Plan, Store, StoreError, StripeAction, StripeEventOutcome, StripeUsagePush};

mod drift;
#[doc(hidden)]
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod sync;

pub use drift::{describe_drift, drift_against_stripe, StripeDrift, StripeDriftReport};
pub use sync::{
    ensure_plan_price, ensure_price, lookup_key, plan_of_lookup_key, product_id, sync_catalogue, sync_subscriptions, CatalogueSync,
};

/// Largest accepted distance between a signature's timestamp and now, seconds (Stripe's default).
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// Settings for the bridge.
#[derive(Clone)]
pub struct StripeSettings {
    /// `sk_…` secret key.
    pub secret_key: String,
    /// `whsec_…` webhook signing secret.
    pub webhook_secret: String,
    /// API base URL, e.g. `https://api.stripe.com/` (tests: the fake server). Trailing slash kept.
    pub api_base: Option<String>,
    /// How long a failed payment is tolerated before the keys answer 402, seconds.
    pub grace_seconds: i64,
    /// Public portal URL, for the success/cancel/return URLs.
    pub portal_url: String,
}

// Hand-written: the secrets never reach a log.
impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("secret_key", &"[redacted]")
            .field("webhook_secret", &"[redacted]")
            .field("api_base", &self.api_base)
            .field("grace_seconds", &self.grace_seconds)
            .finish()
    }
}

/// Why a Stripe call failed.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// Stripe (or the network) failed; the message never contains the secret key.
    #[error("stripe: {0}")]
    Stripe(String),
    /// The database failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The bridge is misconfigured.
    #[error("stripe configuration: {0}")]
    Config(String),
}

impl From<stripe::StripeError> for BridgeError {
    fn from(e: stripe::StripeError) -> Self {
        BridgeError::Stripe(e.to_string())
    }
}

/// Why a webhook was refused (answered 400, nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No `Stripe-Signature` header.
    #[error("missing Stripe-Signature header")]
    MissingSignature,
    /// The header is not `t=…,v1=…`.
    #[error("malformed Stripe-Signature header")]
    MalformedSignature,
    /// No `v1` signature matches the payload.
    #[error("signature does not match")]
    BadSignature,
    /// The timestamp is more than 300 s away from now.
    #[error("timestamp outside the tolerance")]
    StaleTimestamp,
    /// Verified, but not an event object.
    #[error("payload is not a Stripe event")]
    BadPayload,
}

/// The parts of a verified event Turnpike reads.
#[derive(Debug, Clone)]
pub struct Event {
    /// `evt_…`.
    pub id: String,
    /// e.g. `invoice.paid`.
    pub event_type: String,
    /// Creation time (unix seconds), used to order events per subscription.
    pub created: i64,
    /// `data.object`.
    pub object: Value,
}

/// The Stripe bridge. Cheap to clone.
#[derive(Clone)]
pub struct Stripe {
    client: stripe::Client,
    settings: std::sync::Arc<StripeSettings>,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// An invoice item as created (its type lives in async-stripe's billing crate, not built here).
#[derive(miniserde::Deserialize)]
struct Created {
    id: String,
}

/// A Customer Portal session (likewise outside async-stripe-shared).
#[derive(miniserde::Deserialize)]
struct PortalSession {
    url: String,
}

#[derive(Serialize)]
struct CustomerForm<'a> {
    email: &'a str,
    metadata: AccountMeta,
}

#[derive(Serialize)]
struct AccountMeta {
    turnpike_account_id: i64,
}

#[derive(Serialize)]
struct CheckoutForm<'a> {
    mode: &'a str,
    customer: &'a str,
    client_reference_id: String,
    success_url: String,
    cancel_url: String,
    line_items: Vec<LineItem>,
    metadata: PlanMeta,
    subscription_data: SubscriptionData,
}

#[derive(Serialize)]
struct LineItem {
    quantity: i64,
    price: String,
}

#[derive(Serialize)]
struct Recurring {
    interval: &'static str,
}

#[derive(Serialize, Clone, Copy)]
struct PlanMeta {
    app_id: i64,
    plan_id: i64,
}

#[derive(Serialize)]
struct SubscriptionData {
    metadata: PlanMeta,
}

#[derive(Serialize)]
struct PortalForm<'a> {
    customer: &'a str,
    return_url: String,
}

#[derive(Serialize)]
struct InvoiceItemForm<'a> {
    customer: &'a str,
    currency: &'a str,
    amount: i64,
    description: String,
    metadata: UsageMeta,
}

#[derive(Serialize)]
struct UsageMeta {
    subscription_id: i64,
    period_start: i64,
    period_end: i64,
    quantity: i64,
}

fn key(k: &str) -> Result<RequestStrategy, BridgeError> {
    Ok(RequestStrategy::Idempotent(IdempotencyKey::new(k).map_err(|e| BridgeError::Stripe(format!("idempotency key: {e}")))?))
}

impl Stripe {
    /// Build the client (no request is made).
    pub fn new(settings: StripeSettings) -> Result<Stripe, BridgeError> {
        if settings.secret_key.is_empty() || settings.webhook_secret.is_empty() {
            return Err(BridgeError::Config("stripe_secret_key and stripe_webhook_secret must both be set".into()));
        }
        let mut b = stripe::ClientBuilder::new(settings.secret_key.clone()).request_strategy(RequestStrategy::Once);
        if let Some(base) = &settings.api_base {
            let base = if base.ends_with('/') { base.clone() } else { format!("{base}/") };
            b = b.url(base);
        }
        let client = b.build().map_err(|e| BridgeError::Config(e.to_string()))?;
        Ok(Stripe { client, settings: std::sync::Arc::new(settings) })
    }

    /// The grace period after a failed payment, seconds.
    pub fn grace_seconds(&self) -> i64 {
        self.settings.grace_seconds
    }

    async fn post<T: miniserde::Deserialize>(
        &self,
        path: &str,
        form: &impl Serialize,
        strategy: RequestStrategy,
    ) -> Result<T, BridgeError> {
        Ok(RequestBuilder::new(StripeMethod::Post, path).form(form).customize::<T>().request_strategy(strategy).send(&self.client).await?)
    }

    /// The account's Stripe customer, created on first use. The idempotency key is derived from
    /// the account id, so concurrent first uses (or a retry after a lost answer) yield one customer.
    pub async fn ensure_customer(&self, store: &Store, account: &Account, now: i64) -> Result<String, BridgeError> {
        if let Some(id) = store.stripe_customer(account.id).await? {
            return Ok(id);
        }
        let form = CustomerForm { email: &account.email, metadata: AccountMeta { turnpike_account_id: account.id } };
        let c: stripe_shared::Customer = self.post("/customers", &form, key(&format!("tp-customer-{}", account.id))?).await?;
        Ok(store.set_stripe_customer(account.id, c.id.as_str(), now).await?)
    }

    /// A Checkout Session (mode `subscription`, the catalogue Price of the plan's current version,
    /// see [`ensure_plan_price`]; metadata carrying `app_id` and `plan_id`); returns its URL. The caller checked that the account owns the app
    /// and that the plan is paid.
    pub async fn checkout_url(&self, store: &Store, account: &Account, app_id: i64, plan: &Plan, now: i64) -> Result<String, BridgeError> {
        let customer = self.ensure_customer(store, account, now).await?;
        let price = ensure_plan_price(store, self, plan.id, now).await?;
        let base = self.settings.portal_url.trim_end_matches('/');
        let meta = PlanMeta { app_id, plan_id: plan.id };
        let form = CheckoutForm {
            mode: "subscription",
            customer: &customer,
            client_reference_id: format!("app-{app_id}"),
            success_url: format!("{base}/billing?checkout=success"),
            cancel_url: format!("{base}/billing?checkout=canceled"),
            line_items: vec![LineItem { quantity: 1, price: price.stripe_price_id }],
            metadata: meta,
            subscription_data: SubscriptionData { metadata: meta },
        };
        // A double submit within the same second reuses the session.
        let k = format!("tp-checkout-{}-{app_id}-{}-{now}", account.id, plan.id);
        let s: stripe_shared::CheckoutSession = self.post("/checkout/sessions", &form, key(&k)?).await?;
        tracing::info!(session = %s.id, app_id, plan_id = plan.id, "stripe checkout session created");
        s.url.ok_or_else(|| BridgeError::Stripe(format!("checkout session {} has no url", s.id)))
    }

    /// A Customer Portal session for the account; returns its URL.
    pub async fn portal_url(&self, store: &Store, account: &Account, now: i64) -> Result<String, BridgeError> {
        let customer = self.ensure_customer(store, account, now).await?;
        let form = PortalForm { customer: &customer, return_url: format!("{}/billing", self.settings.portal_url.trim_end_matches('/')) };
        let s: PortalSession = self.post("/billing_portal/sessions", &form, key(&format!("tp-portal-{}-{now}", account.id))?).await?;
        Ok(s.url)
    }

    /// Verify `Stripe-Signature` (`t=…,v1=…`) over the raw payload at time `now` and parse the event.
    pub fn verify(&self, payload: &[u8], signature: Option<&str>, now: i64) -> Result<Event, WebhookError> {
        verify_signature(&self.settings.webhook_secret, payload, signature, now)?;
        parse_event(payload)
    }

    /// Verify and apply one webhook delivery. Errors are refusals (400); `Ok` outcomes are all 200.
    pub async fn handle_webhook(&self, store: &Store, payload: &[u8], signature: Option<&str>, now: i64) -> Result<Handled, HandleError> {
        let event = self.verify(payload, signature, now).map_err(HandleError::Refused)?;
        let action = action_for(&event, now + self.settings.grace_seconds);
        let outcome =
            store.apply_stripe_event(&event.id, &event.event_type, event.created, &action, now).await.map_err(HandleError::Store)?;
        tracing::info!(event = %event.id, kind = %event.event_type, outcome = ?outcome, "stripe webhook");
        Ok(Handled { event_id: event.id, outcome })
    }
}

/// A webhook that was accepted (answered 200).
#[derive(Debug, Clone)]
pub struct Handled {
    /// The event id.
    pub event_id: String,
    /// What it did.
    pub outcome: StripeEventOutcome,
}

/// Why a webhook was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Refused: 400, nothing changed.
    #[error("{0}")]
    Refused(WebhookError),
    /// The database failed: 500, Stripe retries later.
    #[error("store: {0}")]
    Store(StoreError),
}

/// Push one period's usage to Stripe as an invoice item on the developer's customer, exactly once.
///
/// Called by the worker after the local invoice for (`subscription_id`, `period`) was finalized,
/// with the usage quantity and the usage amount from that invoice (so Stripe bills exactly what
/// the local ledger says). The `Idempotency-Key` is `tp-usage-{subscription_id}-{period.start}`:
/// a retry after a crash or a second worker yields one item at Stripe, and the push is recorded in
/// `stripe_usage_pushes` (read by the drift check). Returns the push (existing or new); `Ok(None)`
/// when the subscription has no Stripe customer (it never went through Checkout).
pub async fn push_usage(
    store: &Store,
    stripe: &Stripe,
    subscription_id: i64,
    period: Period,
    quantity: i64,
    amount_minor: i64,
    now: i64,
) -> Result<Option<StripeUsagePush>, BridgeError> {
    if let Some(done) = store.stripe_usage_push(subscription_id, period.start).await? {
        return Ok(Some(done));
    }
    let Some(state) = store.stripe_subscription_state(subscription_id).await? else { return Ok(None) };
    let Some(customer) = state.customer_id else { return Ok(None) };
    let currency = store.stripe_subscription_currency(subscription_id).await?;
    let idempotency_key = format!("tp-usage-{subscription_id}-{}", period.start);
    let form = InvoiceItemForm {
        customer: &customer,
        currency: &currency,
        amount: amount_minor,
        description: format!("API usage: {quantity} requests"),
        metadata: UsageMeta { subscription_id, period_start: period.start, period_end: period.end, quantity },
    };
    // Stripe forgets idempotency keys after 24 hours: a push Stripe accepted whose record was lost
    // (a crash, a database outage) is found by its metadata before anything is created again.
    let item_id = match usage_item_at_stripe(stripe, &customer, subscription_id, period.start).await? {
        Some(id) => id,
        None => stripe.post::<Created>("/invoiceitems", &form, key(&idempotency_key)?).await?.id,
    };
    let push = StripeUsagePush {
        subscription_id,
        period_start: period.start,
        period_end: period.end,
        quantity,
        idempotency_key,
        stripe_item_id: item_id,
    };
    store.record_stripe_usage_push(&push, now).await?;
    Ok(Some(push))
}

#[derive(miniserde::Deserialize)]
struct ItemList {
    data: Vec<ItemObj>,
}

#[derive(miniserde::Deserialize)]
struct ItemObj {
    id: String,
    metadata: Option<ItemMeta>,
}

#[derive(miniserde::Deserialize)]
struct ItemMeta {
    subscription_id: Option<String>,
    period_start: Option<String>,
}

#[derive(Serialize)]
struct ItemsOf<'a> {
    customer: &'a str,
    limit: i64,
}

/// The customer's invoice item (pending or invoiced) already holding this period's usage.
async fn usage_item_at_stripe(
    stripe: &Stripe,
    customer: &str,
    subscription_id: i64,
    period_start: i64,
) -> Result<Option<String>, BridgeError> {
    let items: ItemList = stripe.get("/invoiceitems", &ItemsOf { customer, limit: 100 }).await?;
    let (sub, start) = (subscription_id.to_string(), period_start.to_string());
    Ok(items.data.into_iter().find_map(|i| {
        let m = i.metadata?;
        (m.subscription_id.as_deref() == Some(sub.as_str()) && m.period_start.as_deref() == Some(start.as_str())).then_some(i.id)
    }))
}

/// Worker step: flip subscriptions whose grace period ended to `past_due`.
pub async fn expire_grace(store: &Store, now: i64) -> Result<u64, StoreError> {
    let n = store.expire_stripe_grace(now).await?;
    if n > 0 {
        tracing::info!(count = n, "stripe grace period ended: subscriptions past due");
    }
    Ok(n)
}

/// Sign `payload` at `timestamp` the way Stripe does; returns the `Stripe-Signature` value.
/// For tests and the fake Stripe server.
pub fn sign(secret: &str, payload: &[u8], timestamp: i64) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, payload)))
}

fn mac(secret: &str, timestamp: i64, payload: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    let mut prefix = String::new();
    let _ = write!(prefix, "{timestamp}.");
    m.update(prefix.as_bytes());
    m.update(payload);
    m.finalize().into_bytes().to_vec()
}

/// Stripe's scheme: `t=<unix>,v1=<hex hmac-sha256 of "<t>.<payload>">` (several `v1` allowed
/// during secret rotation), timestamp within [`SIGNATURE_TOLERANCE_SECS`] of `now`.
pub fn verify_signature(secret: &str, payload: &[u8], header: Option<&str>, now: i64) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::MissingSignature)?;
    let mut t: Option<i64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else { continue };
        match k {
            "t" => t = Some(v.parse().map_err(|_| WebhookError::MalformedSignature)?),
            "v1" => {
                if let Ok(b) = hex::decode(v) {
                    sigs.push(b);
                }
            }
            _ => {}
        }
    }
    let t = t.ok_or(WebhookError::MalformedSignature)?;
    if sigs.is_empty() {
        return Err(WebhookError::MalformedSignature);
    }
    let expected = mac(secret, t, payload);
    if !sigs.iter().any(|s| subtle::ConstantTimeEq::ct_eq(s.as_slice(), expected.as_slice()).into()) {
        return Err(WebhookError::BadSignature);
    }
    // `abs_diff`: `now - t` overflows for timestamps near the ends of i64 (and `abs` of the
    // wrapped i64::MIN stays negative, which would pass the check in a release build).
    if now.abs_diff(t) > SIGNATURE_TOLERANCE_SECS.unsigned_abs() {
        return Err(WebhookError::StaleTimestamp);
    }
    Ok(())
}

fn parse_event(payload: &[u8]) -> Result<Event, WebhookError> {
    let v: Value = serde_json::from_slice(payload).map_err(|_| WebhookError::BadPayload)?;
    let id = v["id"].as_str().filter(|s| !s.is_empty() && s.len() <= 255).ok_or(WebhookError::BadPayload)?.to_owned();
    let event_type = v["type"].as_str().ok_or(WebhookError::BadPayload)?.to_owned();
    let created = v["created"].as_i64().ok_or(WebhookError::BadPayload)?;
    let object = v["data"]["object"].clone();
    if !object.is_object() {
        return Err(WebhookError::BadPayload);
    }
    Ok(Event { id, event_type, created, object })
}

/// An id field that may be a string or an expanded object with an `id`.
fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn meta_i64(meta: &Value, k: &str) -> Option<i64> {
    match &meta[k] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The invoice's subscription: `subscription` (API versions before 2025-03) or
/// `parent.subscription_details.subscription` (newer).
fn invoice_subscription(o: &Value) -> Option<String> {
    id_of(&o["subscription"]).or_else(|| id_of(&o["parent"]["subscription_details"]["subscription"]))
}

/// Map an event to what it asks of the store. Unknown or incomplete events are ignored (200).
pub fn action_for(event: &Event, grace_until: i64) -> StripeAction {
    let o = &event.object;
    let action = match event.event_type.as_str() {
        // A completed Checkout is paid only when Stripe says so: asynchronous payment methods
        // (SEPA debits, bank transfers) complete the session `unpaid` and pay (or fail) days
        // later, with `checkout.session.async_payment_succeeded` (or `_failed`). The plan starts
        // with the payment, never before. A session without a `payment_status` is not paid.
        "checkout.session.completed" | "checkout.session.async_payment_succeeded"
            if event.event_type == "checkout.session.async_payment_succeeded"
                || matches!(o["payment_status"].as_str(), Some("paid" | "no_payment_required")) =>
        {
            match (meta_i64(&o["metadata"], "app_id"), meta_i64(&o["metadata"], "plan_id")) {
                (Some(app_id), Some(plan_id)) => Some(StripeAction::Activate {
                    app_id,
                    plan_id,
                    stripe_subscription_id: id_of(&o["subscription"]),
                    customer_id: id_of(&o["customer"]),
                }),
                _ => None,
            }
        }
        "invoice.payment_failed" => invoice_subscription(o).map(|s| StripeAction::PaymentFailed { stripe_subscription_id: s, grace_until }),
        "invoice.paid" | "invoice.payment_succeeded" => invoice_subscription(o).map(|s| StripeAction::Paid { stripe_subscription_id: s }),
        "customer.subscription.deleted" => id_of(&o["id"]).map(|s| StripeAction::Canceled { stripe_subscription_id: s }),
        "invoice.payment_action_required" => match (id_of(&o["customer"]), id_of(&o["id"]), o["hosted_invoice_url"].as_str()) {
            (Some(customer_id), Some(invoice_id), Some(url)) if url.starts_with("https://") => {
                Some(StripeAction::PaymentActionRequired { customer_id, invoice_id, hosted_invoice_url: url.to_owned() })
            }
            _ => None,
        },
        "charge.refunded" => match (id_of(&o["id"]), o["currency"].as_str(), o["amount_refunded"].as_i64()) {
            (Some(charge_id), Some(currency), Some(amount)) if amount >= 0 => Some(StripeAction::Refunded {
                charge_id,
                customer_id: id_of(&o["customer"]),
                currency: currency.to_ascii_lowercase(),
                amount_refunded: amount,
            }),
            _ => None,
        },
        "credit_note.created" | "credit_note.updated" | "credit_note.voided" => {
            let refunded: i64 = o["refunds"].as_array().map_or(0, |r| r.iter().filter_map(|x| x["amount_refunded"].as_i64()).sum());
            match (id_of(&o["id"]), o["currency"].as_str(), o["total"].as_i64(), o["created"].as_i64()) {
                (Some(credit_note_id), Some(currency), Some(total), Some(created_at)) if total >= 0 => Some(StripeAction::CreditNote {
                    credit_note_id,
                    customer_id: id_of(&o["customer"]),
                    currency: currency.to_ascii_lowercase(),
                    credited: total.saturating_sub(refunded).max(0),
                    voided: event.event_type == "credit_note.voided" || o["status"].as_str() == Some("void"),
                    created_at,
                }),
                _ => None,
            }
        }
        "customer.subscription.updated" => id_of(&o["id"]).map(|s| {
            let price = &o["items"]["data"][0]["price"];
            let plan_id =
                price["lookup_key"].as_str().and_then(plan_of_lookup_key).or_else(|| meta_i64(&price["metadata"], "turnpike_plan_id"));
            StripeAction::SubscriptionUpdated {
                stripe_subscription_id: s,
                plan_id,
                cancel_at_period_end: o["cancel_at_period_end"].as_bool().unwrap_or(false),
                status: o["status"].as_str().unwrap_or("active").to_owned(),
            }
        }),
        _ => None,
    };
    action.unwrap_or(StripeAction::Ignore)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkout_activates_only_once_paid() {
        let ev = |kind: &str, status: Option<&str>| {
            let mut o = serde_json::json!({"metadata": {"app_id": "7", "plan_id": "9"}, "subscription": "sub_1", "customer": "cus_1"});
            if let Some(st) = status {
                o["payment_status"] = st.into();
            }
            Event { id: "evt".into(), event_type: kind.into(), created: 1, object: o }
        };
        let activates = |e: &Event| matches!(action_for(e, 0), StripeAction::Activate { app_id: 7, plan_id: 9, .. });
        assert!(activates(&ev("checkout.session.completed", Some("paid"))));
        assert!(activates(&ev("checkout.session.completed", Some("no_payment_required"))));
        assert!(!activates(&ev("checkout.session.completed", Some("unpaid"))), "SEPA/bank transfer: pending");
        assert!(!activates(&ev("checkout.session.completed", None)));
        assert!(activates(&ev("checkout.session.async_payment_succeeded", Some("paid"))));
        assert!(!activates(&ev("checkout.session.async_payment_failed", Some("unpaid"))));
    }

    #[test]
    fn signatures_verify_and_refuse() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign("whsec_x", body, 1000);
        assert_eq!(verify_signature("whsec_x", body, Some(&h), 1000), Ok(()));
        assert_eq!(verify_signature("whsec_x", body, Some(&h), 1300), Ok(()));
        assert_eq!(verify_signature("whsec_x", body, Some(&h), 1301), Err(WebhookError::StaleTimestamp));
        assert_eq!(verify_signature("whsec_y", body, Some(&h), 1000), Err(WebhookError::BadSignature));
        assert_eq!(verify_signature("whsec_x", br#"{"id":"evt_2"}"#, Some(&h), 1000), Err(WebhookError::BadSignature));
        assert_eq!(verify_signature("whsec_x", body, None, 1000), Err(WebhookError::MissingSignature));
        assert_eq!(verify_signature("whsec_x", body, Some("garbage"), 1000), Err(WebhookError::MalformedSignature));
        // A rotated secret: any matching v1 passes.
        let two = format!("{},v1=00ff", h);
        assert_eq!(verify_signature("whsec_x", body, Some(&two), 1000), Ok(()));
    }

    /// Found by `fuzzing::check_signed` (proptest and the `stripe_signature` fuzz target):
    /// `(now - t).abs()` overflowed for timestamps far from now.
    #[test]
    fn timestamps_at_the_ends_of_i64_are_stale() {
        let body = br#"{"id":"evt_1"}"#;
        let at_min = sign("whsec_", body, i64::MIN);
        assert_eq!(verify_signature("whsec_", body, Some(&at_min), i64::MAX), Err(WebhookError::StaleTimestamp));
        assert_eq!(verify_signature("whsec_", body, Some(&at_min), i64::MIN + 300), Ok(()));
        // Where `now - t` wraps to i64::MIN, whose wrapped `abs` is negative.
        let wraps = sign("whsec_", body, 1000 + i64::MIN);
        assert_eq!(verify_signature("whsec_", body, Some(&wraps), 1000), Err(WebhookError::StaleTimestamp));
        let at_max = sign("whsec_", body, i64::MAX);
        assert_eq!(verify_signature("whsec_", body, Some(&at_max), i64::MIN), Err(WebhookError::StaleTimestamp));
    }

    #[test]
    fn invoices_of_both_api_shapes_map_to_their_subscription() {
        let old =
            Event { id: "e".into(), event_type: "invoice.paid".into(), created: 1, object: serde_json::json!({"subscription": "sub_1"}) };
        assert_eq!(action_for(&old, 0), StripeAction::Paid { stripe_subscription_id: "sub_1".into() });
        let new = Event {
            object: serde_json::json!({"parent": {"subscription_details": {"subscription": "sub_2"}}}),
            event_type: "invoice.payment_failed".into(),
            ..old.clone()
        };
        assert_eq!(action_for(&new, 9), StripeAction::PaymentFailed { stripe_subscription_id: "sub_2".into(), grace_until: 9 });
        let other = Event { event_type: "charge.refunded".into(), ..old.clone() };
        assert_eq!(action_for(&other, 0), StripeAction::Ignore, "a charge without amounts is ignored");
        let other = Event { event_type: "customer.created".into(), ..old };
        assert_eq!(action_for(&other, 0), StripeAction::Ignore);
    }
}
