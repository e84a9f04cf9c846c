//! The admin's revenue reports, their chart and their CSV exports.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::Response;
use turnpike_billing::Money;
use turnpike_ledger::{self as ledger, Figure, Report};

use crate::ctx::{Chrome, Ctx};
use crate::error::PortalResult;
use crate::format::count;
use crate::pages::stripe::StripeEnabled;
use crate::{charts, PortalState};

use super::{date, ledger_err};

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
    /// Drafts of the periods in progress, per currency.
    so_far: Vec<FigureRow>,
    /// Refunded through Stripe, per currency: (currency, amount, charges).
    refunds: Vec<(String, String, i64)>,
    /// Credited by Stripe credit notes beyond their refunds, per currency: (currency, amount, notes).
    credits: Vec<(String, String, i64)>,
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
    /// Stripe is configured: link the reconciliation with Stripe's invoices.
    stripe: bool,
    revenue_chart: String,
    api_chart: String,
}

/// `GET /admin/reports`.
pub async fn reports(State(state): State<PortalState>, StripeEnabled(stripe): StripeEnabled, ctx: Ctx) -> PortalResult<ReportsPage> {
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
        so_far: rows(&ledger::so_far(&state.store, state.clock.now()).await.map_err(ledger_err)?),
        refunds: state
            .store
            .stripe_refund_totals(0, state.clock.now().saturating_add(1))
            .await?
            .into_iter()
            .map(|r| (r.currency.to_uppercase(), Money::from_stored(r.refunded, &r.currency).format(), r.charges))
            .collect(),
        credits: state
            .store
            .stripe_credit_totals(0, state.clock.now().saturating_add(1))
            .await?
            .into_iter()
            .map(|c| (c.currency.to_uppercase(), Money::from_stored(c.credited, &c.currency).format(), c.notes))
            .collect(),
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
        stripe,
        revenue_chart,
        api_chart,
    })
}

/// `GET /admin/reports/revenue.csv`: see [`crate::reports::revenue_csv`].
pub async fn revenue_csv(State(state): State<PortalState>) -> PortalResult<Response> {
    Ok(crate::reports::revenue_csv(ledger::report(&state.store, state.clock.now()).await.map_err(ledger_err)?))
}

/// `GET /admin/reports/invoices.csv`: see [`crate::reports::invoices_csv`].
pub async fn invoices_csv(State(state): State<PortalState>) -> PortalResult<Response> {
    Ok(crate::reports::invoices_csv(state.store.all_invoices().await?))
}
