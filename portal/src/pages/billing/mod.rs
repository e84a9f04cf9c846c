//! Developers' billing pages (plans per API, the live draft and forecast, invoices) and the
//! admin's pricing editor, invoice list and revenue reports. Pricing and invoicing live in
//! `turnpike_billing` (the pure engine) and `turnpike_ledger`; this module only parses forms and renders.

mod developer;
mod invoices;
mod pricing;
mod reports;

use developer::{app_subscriptions, billing_page, cancel, change_plan};
use invoices::{admin_invoice, admin_invoices, invoice_detail, mark_paid, void};
use pricing::{plans_page, pricing_get, pricing_post};
use reports::{invoices_csv, revenue_csv};

use axum::routing::{get, post};
use turnpike_billing::{Currency, Money, Overage, PlanPrice, Pricing, Tier};
use turnpike_ledger as ledger;
use turnpike_store::StoreError;

use crate::error::PortalError;
use crate::format::count;
use crate::PortalState;

/// What a developer reads when a concurrent change of the same subscription won (nothing of
/// theirs was recorded).
pub(crate) const CHANGED_MEANWHILE: &str =
    "This subscription changed meanwhile (another change was made at the same moment), so nothing was changed. Reload the page and try again.";

use crate::error::ledger_err;

fn not_found(e: StoreError) -> PortalError {
    match e {
        StoreError::NotFound => PortalError::NotFound,
        e => e.into(),
    }
}

fn date(unix: i64) -> String {
    ledger::date(unix)
}

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

/// A price in words: "$49.00/month, 100,000 included, then $0.50 per 1,000". Only what is
/// charged: the limits the gateway enforces (quota, rate) are the plan's, in words by
/// [`crate::views::PlanView`] (a flat fee is not "unlimited" when the plan has a quota).
pub fn describe(price: &PlanPrice) -> String {
    let c = price.currency();
    let m = |minor: i64| Money::new(minor, c).format();
    let per = |unit: i64, per: u64| if per == 1 { format!("{} each", m(unit)) } else { format!("{} per {}", m(unit), count(per as i64)) };
    match price.pricing() {
        Pricing::Free => "Free".to_owned(),
        Pricing::Flat { amount } => format!("{}/month", m(*amount)),
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

/// Developer billing routes.
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new()
        .route("/billing", get(billing_page))
        .route("/billing/invoices/{id}", get(invoice_detail))
        .route("/billing/subscriptions/{id}/plan", post(change_plan))
        .route("/billing/subscriptions/{id}/cancel", post(cancel))
        .route("/apps/{id}/subscriptions", get(app_subscriptions))
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
        .get("/admin/reports", reports::reports)
        .get("/admin/reports/revenue.csv", revenue_csv)
        .get("/admin/reports/invoices.csv", invoices_csv)
}
