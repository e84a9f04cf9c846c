//! The admin revenue report: calls and revenue by month, API, plan and consumer, MRR, overdue invoices and the metering drift check.

use std::collections::BTreeMap;

use turnpike_store::Store;

use crate::*;

/// Calls and revenue for one group (API, plan, consumer, month).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figure {
    /// Label.
    pub label: String,
    /// Currency code.
    pub currency: String,
    /// Billable requests invoiced.
    pub calls: i64,
    /// Invoiced (non-void), minor units.
    pub revenue: i64,
    /// Of which paid.
    pub paid: i64,
    /// Invoices.
    pub invoices: i64,
}

/// One drift-check line that does not read zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Invoice number.
    pub number: String,
    /// Invoiced quantity.
    pub invoiced: i64,
    /// Billable quantity in the buckets now.
    pub metered: i64,
}

/// The admin revenue report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// By calendar month of the period start (`2027-01`), oldest first, per currency.
    pub by_month: Vec<Figure>,
    /// MRR: revenue of the latest month with invoices (per currency), and the month before.
    pub mrr: Vec<(String, i64, i64)>,
    /// By API.
    pub by_api: Vec<Figure>,
    /// By plan (`API / Plan`).
    pub by_plan: Vec<Figure>,
    /// Top consumers by calls.
    pub top_by_calls: Vec<Figure>,
    /// Top consumers by revenue.
    pub top_by_revenue: Vec<Figure>,
    /// Open invoices past their due date: (number, email, currency, total, due).
    pub overdue: Vec<(String, String, String, i64, i64)>,
    /// Invoices compared with the buckets.
    pub drift_checked: usize,
    /// Non-zero drifts.
    pub drift: Vec<Drift>,
    /// Sum of |invoiced − metered| over every invoice; must read zero.
    pub drift_total: i64,
    /// Billable requests on every non-void invoice. (What Stripe holds is compared with
    /// Turnpike's invoices by `turnpike_stripe::drift_against_stripe`, which asks Stripe.)
    pub invoiced_total: i64,
}

fn add(map: &mut BTreeMap<(String, String), Figure>, label: &str, currency: &str, calls: i64, revenue: i64, paid: i64) {
    let f = map.entry((label.to_owned(), currency.to_owned())).or_insert_with(|| Figure {
        label: label.to_owned(),
        currency: currency.to_owned(),
        ..Figure::default()
    });
    f.calls += calls;
    f.revenue += revenue;
    f.paid += paid;
    f.invoices += 1;
}

/// Build the report from every invoice and the usage buckets.
pub async fn report(store: &Store, now: i64) -> Result<Report, LedgerError> {
    let invoices = store.all_invoices().await?;
    let (mut months, mut apis, mut plans, mut consumers) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut overdue = Vec::new();
    for i in invoices.iter().filter(|i| i.status != "void") {
        let paid = if i.status == "paid" { i.total_minor } else { 0 };
        let month = date(i.period_start).get(..7).unwrap_or_default().to_owned();
        add(&mut months, &month, &i.currency, i.usage_quantity, i.total_minor, paid);
        add(&mut apis, &i.api_name, &i.currency, i.usage_quantity, i.total_minor, paid);
        add(&mut plans, &format!("{} / {}", i.api_name, i.plan_name), &i.currency, i.usage_quantity, i.total_minor, paid);
        add(&mut consumers, &i.email, &i.currency, i.usage_quantity, i.total_minor, paid);
        if i.status == "open" && i.due_at.is_some_and(|d| d < now) {
            overdue.push((i.number.clone().unwrap_or_default(), i.email.clone(), i.currency.clone(), i.total_minor, i.due_at.unwrap_or(0)));
        }
    }
    let by_month: Vec<Figure> = months.into_values().collect();
    let mut mrr = Vec::new();
    let currencies: std::collections::BTreeSet<String> = by_month.iter().map(|f| f.currency.clone()).collect();
    for c in currencies {
        let series: Vec<&Figure> = by_month.iter().filter(|f| f.currency == c).collect();
        let last = series.last().map_or(0, |f| f.revenue);
        let before = if series.len() >= 2 { series[series.len() - 2].revenue } else { 0 };
        mrr.push((c, last, before));
    }
    let consumers: Vec<Figure> = consumers.into_values().collect();
    let mut top_by_calls = consumers.clone();
    top_by_calls.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.label.cmp(&b.label)));
    top_by_calls.truncate(10);
    let mut top_by_revenue = consumers;
    top_by_revenue.sort_by(|a, b| b.revenue.cmp(&a.revenue).then(a.label.cmp(&b.label)));
    top_by_revenue.truncate(10);

    let rows = store.drift_rows().await?;
    let mut drift = Vec::new();
    let mut drift_total = 0i64;
    for r in &rows {
        let rule = r.billable.as_deref().and_then(Billable::parse).unwrap_or(Billable::AdmittedNon5xx);
        let metered = i64::try_from(rule.quantity(r.admitted, r.status_5xx)).unwrap_or(i64::MAX);
        if metered != r.usage_quantity {
            drift_total = drift_total.saturating_add((metered - r.usage_quantity).abs());
            drift.push(Drift { number: r.number.clone().unwrap_or_default(), invoiced: r.usage_quantity, metered });
        }
    }
    Ok(Report {
        by_month,
        mrr,
        by_api: apis.into_values().collect(),
        by_plan: plans.into_values().collect(),
        top_by_calls,
        top_by_revenue,
        overdue,
        drift_checked: rows.len(),
        drift,
        drift_total,
        invoiced_total: rows.iter().map(|r| r.usage_quantity).sum(),
    })
}

/// The periods in progress: per currency, what the drafts of every subscription that is not
/// canceled come to so far (the invoices they become if nothing else happens before each period
/// ends). `invoices` counts the drafts, `calls` their billable requests; nothing is paid yet.
pub async fn so_far(store: &Store, now: i64) -> Result<Vec<Figure>, LedgerError> {
    let mut by_currency = BTreeMap::new();
    for sub in store.all_subscriptions().await?.into_iter().filter(|s| s.status != "canceled") {
        let d = draft(store, &sub, now).await?;
        let calls = i64::try_from(d.bill.billable).unwrap_or(i64::MAX);
        let code = d.bill.price.price.currency().code().to_owned();
        add(&mut by_currency, &code.to_uppercase(), &code, calls, d.bill.total, 0);
    }
    Ok(by_currency.into_values().collect())
}
