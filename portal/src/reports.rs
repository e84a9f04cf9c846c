//! The admin's revenue and invoice exports as CSV: one builder each, called by the console's
//! download links and the admin API alike. Amounts are in minor units and as decimals of the
//! currency (three places for KWD, none for JPY); every text cell goes through the CSV injection
//! rule of [`crate::csv`].

use axum::response::Response;
use turnpike_billing::Money;
use turnpike_ledger::{self as ledger, Report};
use turnpike_store::InvoiceSummary;

use crate::csv;

/// Revenue per month, API, plan and consumer.
pub fn revenue_csv(r: Report) -> Response {
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
    csv::download("turnpike-revenue.csv", "section,label,currency,calls,revenue_minor,paid_minor,invoices,revenue,paid", rows)
}

/// Every invoice: the total in minor units and as a decimal.
pub fn invoices_csv(invoices: Vec<InvoiceSummary>) -> Response {
    let rows = invoices.into_iter().map(|i| {
        csv::Row::new()
            .text(&i.number.unwrap_or_default())
            .value(&i.status)
            .value(ledger::date(i.period_start))
            .value(ledger::date(i.period_end))
            .text(&i.email)
            .text(&i.app_name)
            .text(&i.api_name)
            .text(&i.plan_name)
            .value(i.usage_quantity)
            .value(&i.currency)
            .value(i.total_minor)
            .value(i.due_at.map(ledger::date).unwrap_or_default())
            .value(Money::from_stored(i.total_minor, &i.currency).to_decimal_string())
    });
    let header = "number,status,period_start,period_end,email,app,api,plan,calls,currency,total_minor,due,total";
    csv::download("turnpike-invoices.csv", header, rows)
}
