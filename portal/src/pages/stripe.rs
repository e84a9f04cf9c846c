//! Stripe: Checkout and Customer Portal hand-offs and the signature-verified webhook.
//!
//! The bridge is found in the request's extensions (installed by [`with_stripe`]); without it
//! every route here answers 404 and nothing calls Stripe.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use turnpike_ledger as ledger;
use turnpike_store::{Account, App, StoreError};
use turnpike_stripe::{HandleError, Stripe};

use askama::Template;
use askama_web::WebTemplate;
use turnpike_billing::Money;

use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::{PortalError, PortalResult};
use crate::PortalState;

/// Stripe routes (`/billing/checkout`, `/billing/portal`, `/webhooks/stripe`).
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new()
        .route("/billing/checkout", post(checkout))
        .route("/billing/portal", get(portal_get).post(portal_post))
        .route("/webhooks/stripe", post(webhook))
}

/// Turn Stripe on for a built portal router (`None` leaves it off: the routes answer 404).
pub fn with_stripe(router: Router, stripe: Option<Stripe>) -> Router {
    match stripe {
        Some(s) => router.layer(Extension(s)),
        None => router,
    }
}

/// The configured bridge, or 404.
#[derive(Debug)]
pub struct Bridge(pub Stripe);

impl FromRequestParts<PortalState> for Bridge {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, _: &PortalState) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Stripe>().cloned().map(Bridge).ok_or(PortalError::NotFound)
    }
}

/// Whether Stripe is configured, for pages that show "Subscribe" / "Manage payment" buttons
/// (e.g. the billing page): take `StripeEnabled(on): StripeEnabled` as a handler argument.
#[derive(Debug, Clone, Copy)]
pub struct StripeEnabled(pub bool);

impl FromRequestParts<PortalState> for StripeEnabled {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &PortalState) -> Result<Self, Self::Rejection> {
        Ok(StripeEnabled(parts.extensions.get::<Stripe>().is_some()))
    }
}

/// The checkout form: which app goes on which plan.
#[derive(Debug, Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    plan_id: String,
}

async fn back_with_error(ctx: &Ctx, msg: &str) -> PortalResult<Response> {
    back_to(ctx, "/billing", msg.to_owned()).await
}

async fn back_to(ctx: &Ctx, back: &str, msg: String) -> PortalResult<Response> {
    ctx.flash(FlashKind::Error, msg).await?;
    Ok(Redirect::to(back).into_response())
}

/// `POST /billing/checkout`: a Checkout Session for a paid plan of an app the developer owns,
/// then 303 to Stripe.
pub async fn checkout(
    State(state): State<PortalState>,
    Bridge(stripe): Bridge,
    ctx: Ctx,
    Form(form): Form<CheckoutForm>,
) -> PortalResult<Response> {
    let account = ctx.require_account()?.clone();
    let (Ok(app_id), Ok(plan_id)) = (form.app_id.trim().parse::<i64>(), form.plan_id.trim().parse::<i64>()) else {
        return back_with_error(&ctx, "Choose an app and a plan to subscribe to.").await;
    };
    // Someone else's app is "not found", like one that does not exist.
    let app = match state.store.get_app(account.id, app_id).await {
        Ok(a) => a,
        Err(StoreError::NotFound) => return back_with_error(&ctx, "That app does not exist.").await,
        Err(e) => return Err(e.into()),
    };
    checkout_for(&state, &stripe, &ctx, &account, &app, plan_id, "/billing").await
}

/// The Checkout hand-off shared by `POST /billing/checkout` and the catalog's "Subscribe"
/// (`POST /apis/{slug}/subscribe`): `app` is already known to be the developer's. A plan that
/// does not exist, whose API is a draft, or whose API is private and the app is not on it
/// (the same rule as the catalog's Subscribe), a free plan, or a plan the app already pays for
/// through Stripe goes back to `back` with a message and nothing sent to Stripe; otherwise a
/// Checkout Session is created and the answer is its 303.
pub(crate) async fn checkout_for(
    state: &PortalState,
    stripe: &Stripe,
    ctx: &Ctx,
    account: &Account,
    app: &App,
    plan_id: i64,
    back: &str,
) -> PortalResult<Response> {
    let back_with_error = |msg: String| back_to(ctx, back, msg);
    let (plan, _api_name) = match state.store.stripe_checkout_plan(app.id, plan_id).await {
        Ok(p) => p,
        Err(StoreError::NotFound) => return back_with_error("That plan does not exist.".to_owned()).await,
        Err(e) => return Err(e.into()),
    };
    let now = state.clock.now();
    // The billing ledger's price (versioned) decides, as it does for plan changes.
    let needs_payment = match ledger::plan_needs_payment(&state.store, plan.id, now).await {
        Ok(b) => b,
        Err(ledger::LedgerError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(StoreError::Corrupt(e.to_string()).into()),
    };
    if !needs_payment {
        return back_with_error(format!("“{}” is free: no payment is needed.", plan.name)).await;
    }
    // Already paying for exactly this: a second Stripe subscription would bill twice.
    for sub in state.store.list_subscriptions(app.id).await? {
        if sub.plan_id == plan.id && sub.status == "active" {
            let paying = state.store.stripe_subscription_state(sub.id).await?.is_some_and(|s| s.stripe_subscription_id.is_some());
            if paying {
                return back_with_error(format!(
                    "“{}” is already on {}. Manage payment details in the customer portal.",
                    app.name, plan.name
                ))
                .await;
            }
        }
    }
    match stripe.checkout_url(&state.store, account, app.id, &plan, now).await {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(e) => {
            tracing::error!(error = %e, "stripe checkout failed");
            back_with_error("The payment provider is not answering. Nothing was charged; please try again in a minute.".to_owned()).await
        }
    }
}

/// `GET /billing/portal`: the Customer Portal, for a developer who already has a Stripe customer
/// (a GET creates nothing).
pub async fn portal_get(State(state): State<PortalState>, bridge: Bridge, ctx: Ctx) -> PortalResult<Response> {
    let account = ctx.require_account()?;
    if state.store.stripe_customer(account.id).await?.is_none() {
        return back_with_error(&ctx, "You have no payment details yet: subscribe to a paid plan first.").await;
    }
    portal(state, bridge, ctx).await
}

/// `POST /billing/portal`: the Customer Portal (creating the Stripe customer if needed).
pub async fn portal_post(State(state): State<PortalState>, bridge: Bridge, ctx: Ctx) -> PortalResult<Response> {
    portal(state, bridge, ctx).await
}

async fn portal(state: PortalState, Bridge(stripe): Bridge, ctx: Ctx) -> PortalResult<Response> {
    let account = ctx.require_account()?.clone();
    match stripe.portal_url(&state.store, &account, state.clock.now()).await {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(e) => {
            tracing::error!(error = %e, "stripe portal session failed");
            back_with_error(&ctx, "The payment provider is not answering. Please try again in a minute.").await
        }
    }
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (status, [(axum::http::header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

/// `POST /webhooks/stripe`: verify, deduplicate, apply. 400 (nothing changed) for a missing or
/// wrong signature or a timestamp more than 300 s off; 200 for applied, duplicate, stale and
/// ignored events; 500 when the database fails (Stripe retries).
pub async fn webhook(State(state): State<PortalState>, Bridge(stripe): Bridge, headers: HeaderMap, body: Bytes) -> Response {
    let sig = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    match stripe.handle_webhook(&state.store, &body, sig, state.clock.now()).await {
        Ok(h) => {
            let body = serde_json::json!({ "received": true, "event": h.event_id, "outcome": h.outcome });
            (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Err(HandleError::Refused(e)) => {
            tracing::warn!(reason = %e, "stripe webhook refused");
            problem(StatusCode::BAD_REQUEST, "Invalid Stripe webhook", &e.to_string())
        }
        Err(HandleError::Store(e)) => {
            tracing::error!(error = %e, "stripe webhook failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "Webhook not processed", "Try again later.")
        }
    }
}

/// Stripe's admin page, added to the console behind its guard.
pub fn register_admin(r: super::admin::AdminRoutes) -> super::admin::AdminRoutes {
    r.get("/admin/reports/stripe", reconciliation)
}

/// How far back the reconciliation page looks.
const RECONCILE_DAYS: i64 = 365;

/// A subscription and period whose usage differs between Turnpike and Stripe, formatted.
#[derive(Debug)]
pub struct DriftView {
    /// `{subscription}-{period_start}`, for the row's id.
    pub key: String,
    /// Local invoice number.
    pub invoice: String,
    /// App and developer.
    pub app: String,
    /// Developer's email.
    pub email: String,
    /// Period, as dates.
    pub period: String,
    /// What Turnpike invoiced.
    pub turnpike: String,
    /// What Stripe's invoices hold ("No line at Stripe" when none).
    pub stripe: String,
    /// Stripe minus Turnpike.
    pub difference: String,
}

fn drift_view(d: &turnpike_stripe::StripeDrift) -> DriftView {
    let money = |m: i64| Money::from_stored(m, &d.currency).format();
    DriftView {
        key: format!("{}-{}", d.subscription_id, d.period_start),
        invoice: d.invoice_number.clone().unwrap_or_else(|| "—".into()),
        app: d.app_name.clone(),
        email: d.email.clone(),
        period: format!("{} – {}", ledger::date(d.period_start), ledger::date(d.period_end - 1)),
        turnpike: money(d.turnpike_minor),
        stripe: d.stripe_minor.map_or_else(|| "No line at Stripe".into(), money),
        difference: money(d.stripe_minor.unwrap_or(0) - d.turnpike_minor),
    }
}

/// `GET /admin/reports/stripe`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "billing/stripe_reconciliation.html")]
pub struct ReconciliationPage {
    chrome: Chrome,
    since: String,
    checked: usize,
    drift: Vec<DriftView>,
    /// Stripe could not be asked (nothing was changed).
    error: Option<String>,
}

/// `GET /admin/reports/stripe`: the usage Turnpike invoiced over the last year, compared line by
/// line with what Stripe's invoices hold, read from Stripe now (not from Turnpike's push log).
/// The same check as `turnpike admin stripe-drift`.
pub async fn reconciliation(State(state): State<PortalState>, Bridge(stripe): Bridge, ctx: Ctx) -> PortalResult<ReconciliationPage> {
    let now = state.clock.now();
    let since = now - RECONCILE_DAYS * 86_400;
    let (checked, drift, error) = match turnpike_stripe::drift_against_stripe(&state.store, &stripe, since, now + 1).await {
        Ok(r) => (r.checked, r.drift.iter().map(drift_view).collect(), None),
        Err(e) => {
            tracing::error!(error = %e, "stripe reconciliation failed");
            (0, Vec::new(), Some("Stripe could not be asked just now, so nothing was compared. Reload the page to try again.".to_owned()))
        }
    };
    Ok(ReconciliationPage { chrome: ctx.chrome().await?, since: ledger::date(since), checked, drift, error })
}
