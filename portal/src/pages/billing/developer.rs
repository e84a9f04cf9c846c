//! The developer's billing page: subscriptions with their live draft and forecast, plan changes, cancellation.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use turnpike_billing::Money;
use turnpike_ledger::{self as ledger, ChangeOutcome, LedgerError};
use turnpike_store::StoreError;

use crate::ctx::{Chrome, Ctx, Flash, FlashKind};
use crate::error::PortalResult;
use crate::format::{count, datetime};
use crate::pages::parse_id;
use crate::pages::stripe::StripeEnabled;
use crate::service::{self, ServiceError};
use crate::views::PlanView;
use crate::PortalState;
use turnpike_store::AccountId;

use super::invoices::InvoiceListRow;
use super::{describe, ledger_err, not_found, unit_price_text, LineView, CHANGED_MEANWHILE};

/// A plan the developer can switch to.
#[derive(Debug, Clone)]
pub struct PlanOption {
    /// Plan id.
    pub id: i64,
    /// Name and price summary.
    pub label: String,
    /// The current plan.
    pub current: bool,
}

/// One subscription with its draft.
#[derive(Debug, Clone)]
pub struct SubscriptionBilling {
    /// Subscription id.
    pub id: i64,
    /// App.
    pub app_id: i64,
    /// App name.
    pub app_name: String,
    /// API name.
    pub api_name: String,
    /// Plan name.
    pub plan_name: String,
    /// Price summary.
    pub price: String,
    /// `active`, `past_due`, `canceled`.
    pub status: String,
    /// "Switches to X on …" / "Cancels on …".
    pub pending: Option<String>,
    /// Period, formatted.
    pub period: String,
    /// Billable requests so far (raw, for tests).
    pub usage: i64,
    /// Admitted requests so far (the usage dashboard's figure).
    pub admitted: String,
    /// Draft lines.
    pub lines: Vec<LineView>,
    /// Total so far.
    pub total: String,
    /// Forecast total at period end.
    pub forecast_total: String,
    /// Forecast usage at period end.
    pub forecast_usage: String,
    /// Quota forecast, if a hard cap will be reached.
    pub quota_note: Option<String>,
    /// Plans of this API.
    pub options: Vec<PlanOption>,
    /// Not canceled.
    pub active: bool,
}

/// `GET /billing`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "billing/index.html")]
pub struct BillingPage {
    chrome: Chrome,
    subscriptions: Vec<SubscriptionBilling>,
    invoices: Vec<InvoiceListRow>,
    /// Stripe is configured: show "Manage payment" (the Customer Portal).
    stripe: bool,
}

/// `GET /billing?checkout=success|canceled`: where Stripe Checkout sends the developer back.
#[derive(Debug, Default, Deserialize)]
pub struct BillingQuery {
    #[serde(default)]
    checkout: Option<String>,
}

fn engine_lines(bill: &ledger::PeriodBill) -> Vec<LineView> {
    let c = bill.price.price.currency().code().to_owned();
    bill.lines()
        .into_iter()
        .map(|l| LineView {
            quantity: count(l.quantity),
            unit_price: unit_price_text(l.unit_price_minor, l.unit_per, &c),
            amount: Money::from_stored(l.amount_minor, &c).format(),
            source: match (l.buckets, l.source) {
                (Some((from, to)), Some((a, s5))) => {
                    format!("Buckets {} – {}: {} admitted, {} 5xx", datetime(from), datetime(to), count(a), count(s5))
                }
                _ => String::new(),
            },
            kind: l.kind,
            description: l.description,
        })
        .collect()
}

/// `GET /billing`: every subscription of the developer's apps with its draft, and invoices.
pub async fn billing_page(
    State(state): State<PortalState>,
    StripeEnabled(stripe): StripeEnabled,
    mut ctx: Ctx,
    Query(query): Query<BillingQuery>,
) -> PortalResult<BillingPage> {
    let account_id = ctx.require_account()?.id;
    ctx.ensure_csrf().await?;
    let now = state.clock.now();
    let apps = state.store.list_apps(account_id).await?;
    let apis = state.store.list_apis().await?;
    let mut subscriptions = Vec::new();
    for sub in state.store.account_subscriptions(account_id).await? {
        let app_name = apps.iter().find(|a| a.id == sub.app_id).map(|a| a.name.clone()).unwrap_or_default();
        let api_name = apis.iter().find(|a| a.id == sub.api_id).map(|a| a.name.clone()).unwrap_or_default();
        let draft = ledger::draft(&state.store, &sub, now).await.map_err(ledger_err)?;
        let c = draft.bill.price.price.currency().code().to_owned();
        let mut options = Vec::new();
        for plan in state.store.list_plans(sub.api_id).await? {
            let p = ledger::price_at(&state.store, plan.id, now).await.map_err(ledger_err)?;
            options.push(PlanOption {
                id: plan.id,
                label: format!("{} — {} · {}", plan.name, describe(&p.price), PlanView::from(&plan).quota),
                current: plan.id == sub.plan_id,
            });
        }
        let period = draft.bill.period;
        let pending = if sub.status == "canceled" {
            sub.canceled_at.map(|t| format!("Canceled on {}", datetime(t)))
        } else if sub.cancel_at_period_end {
            Some(format!("Cancels at the end of the period, {}", datetime(period.end)))
        } else if let Some(pid) = sub.pending_plan_id {
            let name = state.store.get_plan(pid).await.map(|p| p.name).unwrap_or_default();
            Some(format!("Switches to {name} on {}", datetime(period.end)))
        } else {
            None
        };
        subscriptions.push(SubscriptionBilling {
            id: sub.id,
            app_id: sub.app_id,
            app_name,
            api_name,
            plan_name: draft.bill.price.plan.name.clone(),
            price: format!("{} · {}", describe(&draft.bill.price.price), PlanView::from(&draft.bill.price.plan).quota),
            status: sub.status.clone(),
            pending,
            period: format!("{} – {}", datetime(period.start), datetime(period.end)),
            usage: i64::try_from(draft.bill.billable).unwrap_or(i64::MAX),
            admitted: count(draft.bill.admitted),
            lines: engine_lines(&draft.bill),
            total: Money::from_stored(draft.bill.total, &c).format(),
            forecast_total: Money::from_stored(draft.forecast_total, &c).format(),
            forecast_usage: count(i64::try_from(draft.forecast_usage).unwrap_or(i64::MAX)),
            quota_note: draft.quota_exhausted_in.map(|s| format!("At this rate the quota runs out on {}.", datetime(now + s))),
            options,
            active: sub.status != "canceled",
        });
    }
    let invoices = state.store.account_invoices(account_id).await?.iter().map(InvoiceListRow::new).collect();
    let mut chrome = ctx.chrome().await?;
    // Stripe's return: the webhook, not this redirect, activates the plan, so "success" only
    // says it is on its way.
    match query.checkout.as_deref() {
        Some("success") => {
            chrome.flashes.push(Flash { kind: FlashKind::Success, text: "Payment set up — your plan is active in a few seconds.".into() })
        }
        Some("canceled") => chrome.flashes.push(Flash { kind: FlashKind::Error, text: "Checkout canceled. Nothing was charged.".into() }),
        _ => {}
    }
    Ok(BillingPage { chrome, subscriptions, invoices, stripe })
}

/// `POST /billing/subscriptions/{id}/plan`.
#[derive(Debug, Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    plan_id: String,
}

/// Where the Stripe integration takes over: when Stripe is configured and the target plan needs
/// payment ([`ledger::plan_needs_payment`]), the Checkout redirect (the webhook changes the plan
/// once paid). Without Stripe the local ledger records the change and an admin marks invoices paid.
async fn stripe_checkout(
    state: &PortalState,
    stripe: Option<&turnpike_stripe::Stripe>,
    ctx: &Ctx,
    app_id: i64,
    plan_id: i64,
) -> PortalResult<Option<Response>> {
    let Some(stripe) = stripe else { return Ok(None) };
    let now = state.clock.now();
    let needs_payment = match ledger::plan_needs_payment(&state.store, plan_id, now).await {
        Ok(b) => b,
        Err(LedgerError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(StoreError::Corrupt(e.to_string()).into()),
    };
    if !needs_payment {
        return Ok(None);
    }
    let account = ctx.require_account()?.clone();
    let app = state.store.get_app(account.id, app_id).await?;
    Ok(Some(crate::pages::stripe::checkout_for(state, stripe, ctx, &account, &app, plan_id, "/billing").await?))
}

/// `POST /billing/subscriptions/{id}/plan`: upgrade now (prorated), downgrade at period end.
pub async fn change_plan(
    State(state): State<PortalState>,
    stripe: Option<axum::Extension<turnpike_stripe::Stripe>>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<PlanForm>,
) -> PortalResult<Response> {
    let account_id = ctx.require_account()?.id;
    let sub = state.store.account_subscription(account_id, parse_id(&id)?).await.map_err(not_found)?;
    let Ok(plan_id) = form.plan_id.parse::<i64>() else {
        ctx.flash(FlashKind::Error, "Choose a plan.").await?;
        return Ok(Redirect::to("/billing").into_response());
    };
    let plan = match state.store.get_plan(plan_id).await {
        Ok(p) if p.api_id == sub.api_id => p,
        Ok(_) | Err(StoreError::NotFound) => {
            ctx.flash(FlashKind::Error, "That plan is not available for this API.").await?;
            return Ok(Redirect::to("/billing").into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let now = state.clock.now();
    // A subscription Stripe already bills changes plan here like any other (the ledger's rules);
    // the Stripe worker then pushes the change to that Stripe subscription. Only a subscription
    // Stripe does not bill yet goes through Checkout (a second Checkout would bill twice).
    let stripe_billed =
        stripe.is_some() && state.store.stripe_subscription_state(sub.id).await?.is_some_and(|s| s.stripe_subscription_id.is_some());
    if !stripe_billed {
        if let Some(r) = stripe_checkout(&state, stripe.as_ref().map(|e| &e.0), &ctx, sub.app_id, plan.id).await? {
            return Ok(r);
        }
    }
    let msg = match service::subscriptions::change_plan(&state.store, AccountId(account_id), &sub, &plan, now).await {
        Ok(ChangeOutcome::Now) => format!("You are now on {}. Gateways apply its limits within a second.", plan.name),
        Ok(ChangeOutcome::AtPeriodEnd(at)) => format!("You will move to {} on {}, at the end of this period.", plan.name, datetime(at)),
        Ok(ChangeOutcome::Unchanged) => format!("You stay on {}.", plan.name),
        Err(ServiceError::NotFound) => "This subscription is canceled.".to_owned(),
        Err(ServiceError::Stale) => {
            ctx.flash(FlashKind::Error, CHANGED_MEANWHILE).await?;
            return Ok(Redirect::to(&format!("/billing#sub-{}", sub.id)).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    ctx.flash(FlashKind::Success, msg).await?;
    Ok(Redirect::to(&format!("/billing#sub-{}", sub.id)).into_response())
}

/// `POST /billing/subscriptions/{id}/cancel`.
#[derive(Debug, Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    when: String,
}

/// `POST /billing/subscriptions/{id}/cancel`: `when=now` or `when=period_end`.
pub async fn cancel(
    State(state): State<PortalState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<CancelForm>,
) -> PortalResult<Response> {
    let account_id = ctx.require_account()?.id;
    let sub = state.store.account_subscription(account_id, parse_id(&id)?).await.map_err(not_found)?;
    let at_period_end = match form.when.as_str() {
        "now" => false,
        "period_end" => true,
        _ => {
            ctx.flash(FlashKind::Error, "Choose when to cancel.").await?;
            return Ok(Redirect::to("/billing").into_response());
        }
    };
    let now = state.clock.now();
    let msg = match service::subscriptions::cancel(&state.store, AccountId(account_id), &sub, at_period_end, now).await {
        Ok(()) if at_period_end => "Your subscription ends with this period.",
        Ok(()) => "Your subscription is canceled. Gateways refuse its keys within a second.",
        Err(ServiceError::NotFound) => {
            ctx.flash(FlashKind::Error, "This subscription is already canceled.").await?;
            return Ok(Redirect::to("/billing").into_response());
        }
        Err(ServiceError::Stale) => {
            ctx.flash(FlashKind::Error, CHANGED_MEANWHILE).await?;
            return Ok(Redirect::to("/billing").into_response());
        }
        Err(e) => return Err(e.into()),
    };
    ctx.flash(FlashKind::Success, msg).await?;
    Ok(Redirect::to("/billing").into_response())
}

/// `GET /apps/{id}/subscriptions`: the app's section of the billing page.
pub async fn app_subscriptions(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<Response> {
    let account_id = ctx.require_account()?.id;
    let app = state.store.get_app(account_id, parse_id(&id)?).await.map_err(not_found)?;
    Ok(Redirect::to(&format!("/billing#app-{}", app.id)).into_response())
}
