//! Developers' billing pages (plans per API, the live draft and forecast, invoices) and the
//! admin's pricing editor, invoice list and revenue reports. Pricing and invoicing live in
//! `turnpike_billing` (the pure engine) and `turnpike_ledger`; this module only parses forms and renders.

use std::fmt::Write as _;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Form;
use serde::Deserialize;
use turnpike_billing::{Currency, Money, Overage, PlanPrice, Pricing, Tier};
use turnpike_ledger::{self as ledger, ChangeOutcome, Figure, LedgerError, Report};
use turnpike_store::{InvoiceLineRow, InvoiceSummary, StoreError};

use super::parse_id;
use super::stripe::StripeEnabled;
use crate::ctx::{Chrome, Ctx, Flash, FlashKind};
use crate::error::{PortalError, PortalResult};
use crate::format::{count, datetime};
use crate::service::{self, ServiceError, ServiceResult};
use crate::{charts, csv, PortalState};

/// What a developer reads when a concurrent change of the same subscription won (nothing of
/// theirs was recorded).
pub(crate) const CHANGED_MEANWHILE: &str =
    "This subscription changed meanwhile (another change was made at the same moment), so nothing was changed. Reload the page and try again.";

fn ledger_err(e: LedgerError) -> PortalError {
    match e {
        LedgerError::Store(s) => PortalError::Store(s),
        other => PortalError::Store(StoreError::Corrupt(other.to_string())),
    }
}

fn not_found(e: StoreError) -> PortalError {
    match e {
        StoreError::NotFound => PortalError::NotFound,
        e => e.into(),
    }
}

fn date(unix: i64) -> String {
    ledger::date(unix)
}

// ------------------------------------------------------------------ developer: /billing

/// One line of a draft or invoice, formatted.
#[derive(Debug, Clone)]
pub struct LineView {
    /// What for.
    pub description: String,
    /// Units.
    pub quantity: String,
    /// Unit price, if per unit.
    pub unit_price: String,
    /// Amount.
    pub amount: String,
    /// `fee`, `usage`, `adjustment`.
    pub kind: String,
    /// Usage buckets covered, for traceability.
    pub source: String,
}

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

/// An invoice row.
#[derive(Debug, Clone)]
pub struct InvoiceListRow {
    /// Id.
    pub id: i64,
    /// Number.
    pub number: String,
    /// Period.
    pub period: String,
    /// `App · API · Plan`.
    pub what: String,
    /// Total.
    pub total: String,
    /// Status.
    pub status: String,
    /// Due date.
    pub due: String,
    /// Owner (admin lists).
    pub email: String,
    /// Whether it can be marked paid.
    pub open: bool,
}

impl InvoiceListRow {
    fn new(i: &InvoiceSummary) -> Self {
        InvoiceListRow {
            id: i.id,
            number: i.number.clone().unwrap_or_default(),
            period: format!("{} – {}", date(i.period_start), date(i.period_end)),
            what: format!("{} · {} · {}", i.app_name, i.api_name, i.plan_name),
            total: Money::from_stored(i.total_minor, &i.currency).format(),
            status: i.status.clone(),
            due: i.due_at.map(date).unwrap_or_default(),
            email: i.email.clone(),
            open: i.status == "open",
        }
    }
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

/// A price in words: "$49.00/month, 100,000 included, then $0.50 per 1,000".
pub fn describe(price: &PlanPrice) -> String {
    let c = price.currency();
    let m = |minor: i64| Money::new(minor, c).format();
    let per = |unit: i64, per: u64| if per == 1 { format!("{} each", m(unit)) } else { format!("{} per {}", m(unit), count(per as i64)) };
    match price.pricing() {
        Pricing::Free => "Free".to_owned(),
        Pricing::Flat { amount } => format!("{}/month, unlimited", m(*amount)),
        Pricing::PerUnit { unit_price, per: p } => per(*unit_price, *p),
        Pricing::Graduated { tiers } => format!("Graduated: {}", tiers_text(c, tiers)),
        Pricing::Volume { tiers } => format!("Volume: {}", tiers_text(c, tiers)),
        Pricing::Package { package_size, package_price } => format!("{} per {} requests", m(*package_price), count(*package_size as i64)),
        Pricing::Quota { base_fee, included, overage } => {
            let then = match overage {
                Overage::HardCap => "then refused".to_owned(),
                Overage::Metered { unit_price, per: p } => format!("then {}", per(*unit_price, *p)),
            };
            format!("{}/month, {} included, {then}", m(*base_fee), count(*included as i64))
        }
    }
}

fn tiers_text(c: Currency, tiers: &[Tier]) -> String {
    let mut first = 1u64;
    let mut parts = Vec::new();
    for t in tiers {
        let range = match t.up_to {
            Some(u) => format!("{}–{}", count(first as i64), count(u as i64)),
            None => format!("{}+", count(first as i64)),
        };
        let price = Money::new(t.unit_price, c).format();
        parts.push(if t.per == 1 { format!("{range} at {price}") } else { format!("{range} at {price}/{}", count(t.per as i64)) });
        first = t.up_to.map_or(first, |u| u + 1);
    }
    parts.join("; ")
}

/// "$0.50 each" / "$0.50 per 1,000", or nothing for a line without a unit price.
fn unit_price_text(unit_price_minor: Option<i64>, per: Option<i64>, currency: &str) -> String {
    match (unit_price_minor, per) {
        (Some(p), Some(1)) => format!("{} each", Money::from_stored(p, currency).format()),
        (Some(p), Some(per)) => format!("{} per {}", Money::from_stored(p, currency).format(), count(per)),
        _ => String::new(),
    }
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
                label: format!("{} — {}", plan.name, describe(&p.price)),
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
            price: describe(&draft.bill.price.price),
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
    Ok(Some(super::stripe::checkout_for(state, stripe, ctx, &account, &app, plan_id, "/billing").await?))
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
    // A subscription Stripe already bills changes plan in Stripe's Customer Portal: a second
    // Checkout would start a second Stripe subscription and bill twice.
    if stripe.is_some() && state.store.stripe_subscription_state(sub.id).await?.is_some_and(|s| s.stripe_subscription_id.is_some()) {
        ctx.flash(FlashKind::Error, "This plan is paid through Stripe: change it with “Manage payment”.").await?;
        return Ok(Redirect::to("/billing").into_response());
    }
    if let Some(r) = stripe_checkout(&state, stripe.as_ref().map(|e| &e.0), &ctx, sub.app_id, plan.id).await? {
        return Ok(r);
    }
    let msg = match service::subscriptions::change_plan(&state.store, account_id, &sub, &plan, now).await {
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
    let msg = match service::subscriptions::cancel(&state.store, account_id, &sub, at_period_end, now).await {
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

// ------------------------------------------------------------------ invoices

/// `GET /billing/invoices/{id}` (and the admin's copy): printable.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "billing/invoice.html")]
pub struct InvoicePage {
    chrome: Chrome,
    invoice: InvoiceListRow,
    issued: String,
    app_name: String,
    api_name: String,
    plan_name: String,
    price_version: String,
    email: String,
    usage: String,
    lines: Vec<LineView>,
    back: &'static str,
}

async fn invoice_page(state: &PortalState, ctx: &Ctx, inv: InvoiceSummary, back: &'static str) -> PortalResult<InvoicePage> {
    let row = state.store.get_invoice(inv.id).await?;
    let lines: Vec<InvoiceLineRow> = state.store.invoice_lines(inv.id).await?;
    let price_version = match row.plan_price_id {
        Some(pid) => state.store.get_plan_price(pid).await.map(|p| format!("v{}", p.version)).unwrap_or_default(),
        None => "legacy".to_owned(),
    };
    let c = inv.currency.clone();
    let lines = lines
        .into_iter()
        .map(|l| LineView {
            quantity: count(l.quantity),
            unit_price: unit_price_text(l.unit_price_minor, l.unit_per, &c),
            amount: Money::from_stored(l.amount_minor, &c).format(),
            source: match (l.hour_from, l.hour_to, l.source_admitted, l.source_5xx) {
                (Some(f), Some(t), Some(a), Some(s)) => {
                    format!("Usage buckets {} – {}: {} admitted, {} 5xx", datetime(f), datetime(t), count(a), count(s))
                }
                _ => String::new(),
            },
            kind: l.kind,
            description: l.description,
        })
        .collect();
    Ok(InvoicePage {
        chrome: ctx.chrome().await?,
        issued: row.finalized_at.map(date).unwrap_or_default(),
        app_name: inv.app_name.clone(),
        api_name: inv.api_name.clone(),
        plan_name: inv.plan_name.clone(),
        price_version,
        email: inv.email.clone(),
        usage: count(inv.usage_quantity),
        invoice: InvoiceListRow::new(&inv),
        lines,
        back,
    })
}

/// `GET /billing/invoices/{id}`: 404 unless the logged-in developer owns it.
pub async fn invoice_detail(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<InvoicePage> {
    let account_id = ctx.require_account()?.id;
    let inv = state.store.account_invoice(account_id, parse_id(&id)?).await.map_err(not_found)?;
    invoice_page(&state, &ctx, inv, "/billing").await
}

/// Developer billing routes.
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new()
        .route("/billing", get(billing_page))
        .route("/billing/invoices/{id}", get(invoice_detail))
        .route("/billing/subscriptions/{id}/plan", post(change_plan))
        .route("/billing/subscriptions/{id}/cancel", post(cancel))
        .route("/apps/{id}/subscriptions", get(app_subscriptions))
}

// ------------------------------------------------------------------ admin: pricing

/// The pricing form's fields, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PricingForm {
    #[serde(default)]
    currency: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    base_fee: String,
    #[serde(default)]
    included: String,
    #[serde(default)]
    overage: String,
    #[serde(default)]
    unit_price: String,
    #[serde(default)]
    per: String,
    #[serde(default)]
    package_size: String,
    #[serde(default)]
    package_price: String,
    #[serde(default)]
    tiers: String,
    #[serde(default)]
    trial_days: String,
    #[serde(default)]
    billable: String,
}

/// A non-negative amount in `currency`'s minor units: "12.50" → 1250 exactly; more decimals
/// than the currency has, signs, symbols or separators are refused.
pub fn parse_amount(raw: &str, currency: Currency, field: &str) -> Result<i64, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(format!("Enter the {field}."));
    }
    if raw.starts_with('-') {
        return Err(format!("The {field} cannot be negative."));
    }
    Money::parse(raw, currency).map(|m| m.minor()).map_err(|_| {
        let exp = currency.exponent();
        if exp == 0 {
            format!("The {field} “{raw}” is not a whole amount of {}.", currency.code().to_uppercase())
        } else {
            format!("The {field} “{raw}” is not an amount like 12.50 (at most {exp} decimals).")
        }
    })
}

fn parse_count(raw: &str, field: &str, min: u64) -> Result<u64, String> {
    match raw.trim().parse::<u64>() {
        Ok(n) if n >= min && n <= i64::MAX as u64 => Ok(n),
        _ => Err(format!("The {field} must be a whole number of at least {min}.")),
    }
}

/// Tiers, one per line: `UP_TO PRICE [PER] [FLAT_FEE]`, `UP_TO` a count or `*` for the last.
fn parse_tiers(raw: &str, c: Currency) -> Result<Vec<Tier>, String> {
    let mut tiers = Vec::new();
    for (i, line) in raw.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let n = i + 1;
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 2 || parts.len() > 4 {
            return Err(format!("Tier {n}: write “up_to price [per] [flat fee]”, e.g. “1000 0.05” or “* 0.02”."));
        }
        let up_to = if parts[0] == "*" { None } else { Some(parse_count(parts[0], &format!("tier {n} bound"), 1)?) };
        let unit_price = parse_amount(parts[1], c, &format!("tier {n} price"))?;
        let per = match parts.get(2) {
            Some(p) => parse_count(p, &format!("tier {n} “per”"), 1)?,
            None => 1,
        };
        let mut t = Tier::new(up_to, unit_price).per(per);
        if let Some(f) = parts.get(3) {
            t = t.flat_fee(parse_amount(f, c, &format!("tier {n} flat fee"))?);
        }
        tiers.push(t);
    }
    Ok(tiers)
}

/// Parse the form into a validated price, trial days and billable rule.
pub fn parse_pricing(f: &PricingForm) -> Result<(PlanPrice, i64, ledger::Billable), String> {
    let c = Currency::parse(f.currency.trim()).map_err(|_| "Enter a three-letter currency code such as USD or EUR.".to_owned())?;
    let pricing = match f.model.as_str() {
        "free" => Pricing::Free,
        "flat" => Pricing::Flat { amount: parse_amount(&f.base_fee, c, "base fee")? },
        "per_unit" => {
            Pricing::PerUnit { unit_price: parse_amount(&f.unit_price, c, "unit price")?, per: parse_count(&f.per, "“per” count", 1)? }
        }
        "graduated" => Pricing::Graduated { tiers: parse_tiers(&f.tiers, c)? },
        "volume" => Pricing::Volume { tiers: parse_tiers(&f.tiers, c)? },
        "package" => Pricing::Package {
            package_size: parse_count(&f.package_size, "package size", 1)?,
            package_price: parse_amount(&f.package_price, c, "package price")?,
        },
        "quota" => Pricing::Quota {
            base_fee: parse_amount(&f.base_fee, c, "base fee")?,
            included: parse_count(&f.included, "included requests", 0)?,
            overage: match f.overage.as_str() {
                "hard_cap" => Overage::HardCap,
                "metered" => Overage::Metered {
                    unit_price: parse_amount(&f.unit_price, c, "overage price")?,
                    per: parse_count(&f.per, "“per” count", 1)?,
                },
                _ => return Err("Choose what happens beyond the included requests.".to_owned()),
            },
        },
        _ => return Err("Choose a price model.".to_owned()),
    };
    let price = PlanPrice::new(c, pricing).map_err(|e| format!("That price does not make sense: {e}."))?;
    let trial_days = if f.trial_days.trim().is_empty() { 0 } else { parse_count(&f.trial_days, "trial length in days", 0)? };
    if trial_days > 365 {
        return Err("A free trial can last at most 365 days.".to_owned());
    }
    let billable = ledger::Billable::parse(&f.billable).ok_or("Choose which requests are billable.")?;
    Ok((price, i64::try_from(trial_days).unwrap_or(0), billable))
}

/// The form pre-filled from a price.
fn form_from(price: &PlanPrice, trial_days: i64, billable: ledger::Billable) -> PricingForm {
    let c = price.currency();
    let d = |minor: i64| Money::new(minor, c).to_decimal_string();
    let mut f = PricingForm {
        currency: c.code().to_uppercase(),
        trial_days: trial_days.to_string(),
        billable: billable.as_str().to_owned(),
        per: "1".into(),
        ..PricingForm::default()
    };
    let tiers = |ts: &[Tier]| {
        ts.iter()
            .map(|t| {
                let mut s = format!("{} {}", t.up_to.map_or("*".to_owned(), |u| u.to_string()), d(t.unit_price));
                if t.per != 1 || t.flat_fee.is_some() {
                    let _ = write!(s, " {}", t.per);
                }
                if let Some(ff) = t.flat_fee {
                    let _ = write!(s, " {}", d(ff));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    match price.pricing() {
        Pricing::Free => f.model = "free".into(),
        Pricing::Flat { amount } => (f.model, f.base_fee) = ("flat".into(), d(*amount)),
        Pricing::PerUnit { unit_price, per } => (f.model, f.unit_price, f.per) = ("per_unit".into(), d(*unit_price), per.to_string()),
        Pricing::Graduated { tiers: ts } => (f.model, f.tiers) = ("graduated".into(), tiers(ts)),
        Pricing::Volume { tiers: ts } => (f.model, f.tiers) = ("volume".into(), tiers(ts)),
        Pricing::Package { package_size, package_price } => {
            (f.model, f.package_size, f.package_price) = ("package".into(), package_size.to_string(), d(*package_price));
        }
        Pricing::Quota { base_fee, included, overage } => {
            (f.model, f.base_fee, f.included) = ("quota".into(), d(*base_fee), included.to_string());
            match overage {
                Overage::HardCap => f.overage = "hard_cap".into(),
                Overage::Metered { unit_price, per } => {
                    (f.overage, f.unit_price, f.per) = ("metered".into(), d(*unit_price), per.to_string())
                }
            }
        }
    }
    f
}

/// A price version in the history table.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// `v2`.
    pub version: String,
    /// Summary.
    pub summary: String,
    /// Created.
    pub created: String,
}

/// `GET /admin/plans/{id}/pricing`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "billing/pricing.html")]
pub struct PricingPage {
    chrome: Chrome,
    plan_id: i64,
    plan_name: String,
    api_name: String,
    current: String,
    form: PricingForm,
    error: Option<String>,
    history: Vec<VersionRow>,
}

async fn pricing_page(
    state: &PortalState,
    ctx: &mut Ctx,
    plan_id: i64,
    form: Option<PricingForm>,
    error: Option<String>,
) -> PortalResult<PricingPage> {
    ctx.ensure_csrf().await?;
    let now = state.clock.now();
    let eff = ledger::price_at(&state.store, plan_id, now).await.map_err(|e| match e {
        LedgerError::Store(StoreError::NotFound) => PortalError::NotFound,
        e => ledger_err(e),
    })?;
    let api_name = state.store.list_apis().await?.into_iter().find(|a| a.id == eff.plan.api_id).map(|a| a.name).unwrap_or_default();
    let mut history = Vec::new();
    for r in state.store.plan_price_history(plan_id).await? {
        let summary = serde_json::from_str::<Pricing>(&r.pricing)
            .ok()
            .and_then(|p| Currency::parse(&r.currency).ok().and_then(|c| PlanPrice::new(c, p).ok()))
            .map_or_else(|| "unreadable".to_owned(), |p| describe(&p));
        history.push(VersionRow { version: format!("v{}", r.version), summary, created: datetime(r.created_at) });
    }
    Ok(PricingPage {
        chrome: ctx.chrome().await?,
        plan_id,
        plan_name: eff.plan.name.clone(),
        api_name,
        current: format!("{} (price {})", describe(&eff.price), eff.version_label()),
        form: form.unwrap_or_else(|| form_from(&eff.price, eff.trial_days, eff.billable)),
        error,
        history,
    })
}

/// `GET /admin/plans/{id}/pricing`.
pub async fn pricing_get(State(state): State<PortalState>, mut ctx: Ctx, Path(id): Path<String>) -> PortalResult<PricingPage> {
    let plan_id = parse_id(&id)?;
    pricing_page(&state, &mut ctx, plan_id, None, None).await
}

/// `POST /admin/plans/{id}/pricing`: a new price version; a bad form changes nothing (422).
pub async fn pricing_post(
    State(state): State<PortalState>,
    mut ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<PricingForm>,
) -> PortalResult<Response> {
    let plan_id = parse_id(&id)?;
    let plan = state.store.get_plan(plan_id).await.map_err(not_found)?;
    let (price, trial_days, billable) = match parse_pricing(&form) {
        Ok(v) => v,
        Err(msg) => {
            let page = pricing_page(&state, &mut ctx, plan_id, Some(form), Some(msg)).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let now = state.clock.now();
    let actor = ctx.account.as_ref().map(|a| a.id);
    let summary = describe(&price);
    let new = service::plans::NewPrice { price, trial_days, billable };
    let row = service::plans::set_price(&state.store, actor, &plan, &new, &summary, now).await?;
    ctx.flash(FlashKind::Success, format!("Saved price v{} of {}.", row.version, plan.name)).await?;
    Ok(Redirect::to(&format!("/admin/plans/{plan_id}/pricing")).into_response())
}

/// A plan row on `/admin/plans`.
#[derive(Debug, Clone)]
pub struct PlanRow {
    /// Id.
    pub id: i64,
    /// API.
    pub api: String,
    /// Name.
    pub name: String,
    /// Price.
    pub price: String,
}

/// `GET /admin/plans`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "billing/plans.html")]
pub struct PlansPage {
    chrome: Chrome,
    plans: Vec<PlanRow>,
}

/// `GET /admin/plans`: every plan with its current price.
pub async fn plans_page(State(state): State<PortalState>, ctx: Ctx) -> PortalResult<PlansPage> {
    let now = state.clock.now();
    let apis = state.store.list_apis().await?;
    let mut plans = Vec::new();
    for p in state.store.list_all_plans().await? {
        let eff = ledger::price_at(&state.store, p.id, now).await.map_err(ledger_err)?;
        plans.push(PlanRow {
            id: p.id,
            api: apis.iter().find(|a| a.id == p.api_id).map(|a| a.name.clone()).unwrap_or_default(),
            name: p.name,
            price: format!("{} ({})", describe(&eff.price), eff.version_label()),
        });
    }
    Ok(PlansPage { chrome: ctx.chrome().await?, plans })
}

// ------------------------------------------------------------------ admin: invoices

/// `GET /admin/invoices`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "billing/admin_invoices.html")]
pub struct AdminInvoicesPage {
    chrome: Chrome,
    invoices: Vec<InvoiceListRow>,
}

/// `GET /admin/invoices`.
pub async fn admin_invoices(State(state): State<PortalState>, mut ctx: Ctx) -> PortalResult<AdminInvoicesPage> {
    ctx.ensure_csrf().await?;
    let invoices = state.store.all_invoices().await?.iter().map(InvoiceListRow::new).collect();
    Ok(AdminInvoicesPage { chrome: ctx.chrome().await?, invoices })
}

/// `GET /admin/invoices/{id}`.
pub async fn admin_invoice(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<InvoicePage> {
    let inv = state.store.invoice_summary(parse_id(&id)?).await.map_err(not_found)?;
    invoice_page(&state, &ctx, inv, "/admin/invoices").await
}

/// `POST /admin/invoices/{id}/paid`: the local ledger's "payment received".
pub async fn mark_paid(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<Response> {
    let done = service::invoices::mark_paid(&state.store, ctx.account.as_ref().map(|a| a.id), parse_id(&id)?, state.clock.now()).await;
    invoice_changed(&ctx, done, "Invoice marked paid.", "Only open invoices can be marked paid.").await
}

/// `POST /admin/invoices/{id}/void`.
pub async fn void(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<Response> {
    let done = service::invoices::void(&state.store, ctx.account.as_ref().map(|a| a.id), parse_id(&id)?, state.clock.now()).await;
    invoice_changed(&ctx, done, "Invoice voided.", "Only open invoices can be voided.").await
}

async fn invoice_changed(ctx: &Ctx, done: ServiceResult<()>, success: &str, not_open: &str) -> PortalResult<Response> {
    match done {
        Ok(()) => ctx.flash(FlashKind::Success, success).await?,
        Err(ServiceError::NotOpen) => ctx.flash(FlashKind::Error, not_open).await?,
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to("/admin/invoices").into_response())
}

// ------------------------------------------------------------------ admin: reports

/// A formatted figure row.
#[derive(Debug, Clone)]
pub struct FigureRow {
    /// Label.
    pub label: String,
    /// Calls.
    pub calls: String,
    /// Revenue.
    pub revenue: String,
    /// Paid.
    pub paid: String,
    /// Invoices.
    pub invoices: i64,
}

fn rows(figs: &[Figure]) -> Vec<FigureRow> {
    figs.iter()
        .map(|f| FigureRow {
            label: f.label.clone(),
            calls: count(f.calls),
            revenue: Money::from_stored(f.revenue, &f.currency).format(),
            paid: Money::from_stored(f.paid, &f.currency).format(),
            invoices: f.invoices,
        })
        .collect()
}

/// `GET /admin/reports`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "billing/reports.html")]
pub struct ReportsPage {
    chrome: Chrome,
    by_month: Vec<FigureRow>,
    mrr: Vec<(String, String, String)>,
    by_api: Vec<FigureRow>,
    by_plan: Vec<FigureRow>,
    top_by_calls: Vec<FigureRow>,
    top_by_revenue: Vec<FigureRow>,
    overdue: Vec<(String, String, String, String)>,
    drift_checked: usize,
    drift_total: i64,
    drift: Vec<(String, String, String)>,
    invoiced_total: String,
    stripe_reported: Option<String>,
    revenue_chart: String,
    api_chart: String,
}

/// `GET /admin/reports`.
pub async fn reports(State(state): State<PortalState>, ctx: Ctx) -> PortalResult<ReportsPage> {
    let r: Report = ledger::report(&state.store, state.clock.now()).await.map_err(ledger_err)?;
    let mrr = r
        .mrr
        .iter()
        .map(|(c, last, before)| {
            let change = last - before;
            let sign = if change >= 0 { "+" } else { "" };
            (c.to_uppercase(), Money::from_stored(*last, c).format(), format!("{sign}{}", Money::from_stored(change, c).format()))
        })
        .collect();
    let revenue_chart = charts::hbars(
        "Revenue per month",
        &r.by_month
            .iter()
            .map(|f| (format!("{} {}", f.label, f.currency.to_uppercase()), f.revenue, Money::from_stored(f.revenue, &f.currency).format()))
            .collect::<Vec<_>>(),
    );
    let api_chart =
        charts::hbars("Calls per API", &r.by_api.iter().map(|f| (f.label.clone(), f.calls, count(f.calls))).collect::<Vec<_>>());
    Ok(ReportsPage {
        chrome: ctx.chrome().await?,
        by_month: rows(&r.by_month),
        mrr,
        by_api: rows(&r.by_api),
        by_plan: rows(&r.by_plan),
        top_by_calls: rows(&r.top_by_calls),
        top_by_revenue: rows(&r.top_by_revenue),
        overdue: r.overdue.iter().map(|(n, e, c, t, d)| (n.clone(), e.clone(), Money::from_stored(*t, c).format(), date(*d))).collect(),
        drift_checked: r.drift_checked,
        drift_total: r.drift_total,
        drift: r.drift.iter().map(|d| (d.number.clone(), count(d.invoiced), count(d.metered))).collect(),
        invoiced_total: count(r.invoiced_total),
        stripe_reported: r.stripe_reported.map(count),
        revenue_chart,
        api_chart,
    })
}

/// `GET /admin/reports/revenue.csv`: revenue per month, API, plan and consumer, in minor units and
/// as decimals of the currency (three places for KWD, none for JPY).
pub async fn revenue_csv(State(state): State<PortalState>) -> PortalResult<Response> {
    let r = ledger::report(&state.store, state.clock.now()).await.map_err(ledger_err)?;
    let mut rows = Vec::new();
    for (section, figs) in [("month", r.by_month), ("api", r.by_api), ("plan", r.by_plan), ("consumer", r.top_by_revenue)] {
        rows.extend(figs.into_iter().map(move |f| {
            csv::Row::new()
                .value(section)
                .text(&f.label)
                .value(&f.currency)
                .value(f.calls)
                .value(f.revenue)
                .value(f.paid)
                .value(f.invoices)
                .value(Money::from_stored(f.revenue, &f.currency).to_decimal_string())
                .value(Money::from_stored(f.paid, &f.currency).to_decimal_string())
        }));
    }
    Ok(csv::download("turnpike-revenue.csv", "section,label,currency,calls,revenue_minor,paid_minor,invoices,revenue,paid", rows))
}

/// `GET /admin/reports/invoices.csv`: every invoice; the total in minor units and as a decimal.
pub async fn invoices_csv(State(state): State<PortalState>) -> PortalResult<Response> {
    let rows = state.store.all_invoices().await?.into_iter().map(|i| {
        csv::Row::new()
            .text(&i.number.unwrap_or_default())
            .value(&i.status)
            .value(date(i.period_start))
            .value(date(i.period_end))
            .text(&i.email)
            .text(&i.app_name)
            .text(&i.api_name)
            .text(&i.plan_name)
            .value(i.usage_quantity)
            .value(&i.currency)
            .value(i.total_minor)
            .value(i.due_at.map(date).unwrap_or_default())
            .value(Money::from_stored(i.total_minor, &i.currency).to_decimal_string())
    });
    let header = "number,status,period_start,period_end,email,app,api,plan,calls,currency,total_minor,due,total";
    Ok(csv::download("turnpike-invoices.csv", header, rows))
}

/// Billing's admin pages, added to the admin console behind its guard.
pub fn register_admin(r: super::admin::AdminRoutes) -> super::admin::AdminRoutes {
    r.get("/admin/plans", plans_page)
        .get("/admin/plans/{id}/pricing", pricing_get)
        .post("/admin/plans/{id}/pricing", pricing_post)
        .get("/admin/invoices", admin_invoices)
        .get("/admin/invoices/{id}", admin_invoice)
        .post("/admin/invoices/{id}/paid", mark_paid)
        .post("/admin/invoices/{id}/void", void)
        .get("/admin/reports", reports)
        .get("/admin/reports/revenue.csv", revenue_csv)
        .get("/admin/reports/invoices.csv", invoices_csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly_or_not_at_all() {
        assert_eq!(parse_amount("12.50", Currency::USD, "fee"), Ok(1250));
        assert_eq!(parse_amount("12.5", Currency::USD, "fee"), Ok(1250));
        assert_eq!(parse_amount("0.07", Currency::USD, "fee"), Ok(7));
        assert_eq!(parse_amount(" 49 ", Currency::USD, "fee"), Ok(4900));
        assert!(parse_amount("12.505", Currency::USD, "fee").is_err());
        assert!(parse_amount("-1", Currency::USD, "fee").is_err());
        assert!(parse_amount("$5", Currency::USD, "fee").is_err());
        assert!(parse_amount("1,000", Currency::USD, "fee").is_err());
        assert!(parse_amount("", Currency::USD, "fee").is_err());
        assert_eq!(parse_amount("500", Currency::JPY, "fee"), Ok(500));
        assert!(parse_amount("500.5", Currency::JPY, "fee").is_err());
        assert_eq!(parse_amount("1.005", Currency::KWD, "fee"), Ok(1005));
    }

    #[test]
    fn a_price_round_trips_through_the_form() {
        let f = PricingForm {
            currency: "usd".into(),
            model: "graduated".into(),
            tiers: "1000 0.05\n10000 0.04 1 2.00\n* 1.50 1000".into(),
            trial_days: "14".into(),
            billable: "admitted".into(),
            ..PricingForm::default()
        };
        let (price, trial, billable) = parse_pricing(&f).unwrap();
        assert_eq!(
            price.pricing(),
            &Pricing::Graduated {
                tiers: vec![Tier::new(Some(1000), 5), Tier::new(Some(10000), 4).flat_fee(200), Tier::new(None, 150).per(1000)]
            }
        );
        let again = parse_pricing(&form_from(&price, trial, billable)).unwrap();
        assert_eq!(again, (price, 14, ledger::Billable::Admitted));
        let bad = PricingForm { tiers: "1000 0.05\n500 0.04\n* 1".into(), ..f };
        assert!(parse_pricing(&bad).unwrap_err().contains("does not make sense"));
    }
}
