//! The drift check against Stripe, the payment system of record (issue #16): for each finalized
//! local invoice of a Stripe-billed subscription, the usage line Turnpike invoiced is compared with
//! the line Stripe's invoices hold for the same subscription and period (found by the invoice
//! item's metadata `subscription_id` / `period_start`, which Stripe copies onto the invoice line).
//! Stripe's invoices are read through the API (`GET /v1/invoices?customer=…`), never from
//! Turnpike's own push log, so an amount edited or a line deleted at Stripe shows up.
//!
//! The base fee is not compared line by line: Stripe bills it from the catalogue Price on its own
//! schedule (in advance, with its own proration), so the periods of the two do not line up.

use std::collections::HashMap;

use serde::Serialize;
use stripe_shared::Invoice;
use stripe_types::List;
use turnpike_store::Store;

use crate::{BridgeError, Stripe};

/// One (subscription, period) whose amounts differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StripeDrift {
    /// Local subscription.
    pub subscription_id: i64,
    /// Period start (unix seconds).
    pub period_start: i64,
    /// Period end (unix seconds, exclusive).
    pub period_end: i64,
    /// What Turnpike invoiced for usage, minor units.
    pub turnpike_minor: i64,
    /// What Stripe's invoices hold for it (`None`: no line at Stripe).
    pub stripe_minor: Option<i64>,
    /// Currency of both amounts (ISO 4217, lower case).
    pub currency: String,
    /// The local invoice's number.
    pub invoice_number: Option<String>,
    /// The subscribed app, for the reader.
    pub app_name: String,
    /// Its developer's email, for the reader.
    pub email: String,
}

/// The outcome of one check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StripeDriftReport {
    /// Local invoices compared.
    pub checked: usize,
    /// Those that differ.
    pub drift: Vec<StripeDrift>,
}

#[derive(Serialize)]
struct ByCustomer<'a> {
    customer: &'a str,
    limit: i64,
}

/// One line naming a drift for people and logs: subscription, period, invoice and both amounts
/// (minor units with the currency; the pages format them as money).
pub fn describe_drift(d: &StripeDrift) -> String {
    let stripe = d.stripe_minor.map_or_else(|| "no line".to_owned(), |m| m.to_string());
    format!(
        "subscription {} ({}, {}) period [{}, {}) invoice {}: Turnpike {} {}, Stripe {}",
        d.subscription_id,
        d.app_name,
        d.email,
        d.period_start,
        d.period_end,
        d.invoice_number.as_deref().unwrap_or("-"),
        d.turnpike_minor,
        d.currency,
        stripe
    )
}

/// Compare the usage lines of local invoices for periods inside `[from, until)` with Stripe's.
pub async fn drift_against_stripe(store: &Store, stripe: &Stripe, from: i64, until: i64) -> Result<StripeDriftReport, BridgeError> {
    let candidates = store.stripe_drift_candidates(from, until).await?;
    // (subscription, period start) → amount at Stripe, per customer read once.
    let mut at_stripe: HashMap<(i64, i64), i64> = HashMap::new();
    let mut customers_read: Vec<&str> = Vec::new();
    let mut report = StripeDriftReport::default();
    for c in &candidates {
        if !customers_read.contains(&c.customer_id.as_str()) {
            customers_read.push(&c.customer_id);
            let list: List<Invoice> = stripe.get("/invoices", &ByCustomer { customer: &c.customer_id, limit: 100 }).await?;
            for line in list.data.into_iter().flat_map(|i| i.lines.data) {
                let (Some(sub), Some(start)) = (line.metadata.get("subscription_id"), line.metadata.get("period_start")) else { continue };
                let (Ok(sub), Ok(start)) = (sub.parse::<i64>(), start.parse::<i64>()) else { continue };
                *at_stripe.entry((sub, start)).or_default() += line.amount;
            }
        }
        let turnpike_minor: i64 =
            store.invoice_lines(c.invoice_id).await?.iter().filter(|l| l.kind == "usage").map(|l| l.amount_minor).sum();
        let stripe_minor = at_stripe.get(&(c.subscription_id, c.period_start)).copied();
        report.checked += 1;
        if stripe_minor.unwrap_or(0) != turnpike_minor {
            report.drift.push(StripeDrift {
                subscription_id: c.subscription_id,
                period_start: c.period_start,
                period_end: c.period_end,
                turnpike_minor,
                stripe_minor,
                currency: c.currency.clone(),
                invoice_number: c.number.clone(),
                app_name: c.app_name.clone(),
                email: c.email.clone(),
            });
        }
    }
    Ok(report)
}
