//! Periods to invoices: a period's bill, the live draft, finalizing ended periods exactly once, and the worker that does it.

use turnpike_store::period::{monthly_period, Period};
use turnpike_store::{NewInvoice, NewInvoiceLine, Store, Subscription};

use turnpike_billing::{forecast_exhaustion, invoice, prorate_credit, BillingError, Invoice};

use crate::*;

/// One subscription's bill for one period: usage, the engine's invoice, adjustments, total.
#[derive(Debug, Clone)]
pub struct PeriodBill {
    /// The subscription.
    pub subscription: Subscription,
    /// The period.
    pub period: Period,
    /// The price used.
    pub price: EffectivePrice,
    /// Bucket totals: admitted.
    pub admitted: i64,
    /// Bucket totals: 5xx.
    pub status_5xx: i64,
    /// Billable requests.
    pub billable: u64,
    /// The engine's invoice for (price, billable).
    pub invoice: Invoice,
    /// Adjustment lines: (description, signed minor units).
    pub adjustments: Vec<(String, i64)>,
    /// Invoice total plus adjustments, minor units.
    pub total: i64,
}

impl PeriodBill {
    /// The lines to store, in order: the engine's lines (usage lines carry their buckets), then
    /// the adjustments.
    pub fn lines(&self) -> Vec<NewInvoiceLine> {
        let mut out: Vec<NewInvoiceLine> = self
            .invoice
            .lines
            .iter()
            .map(|l| {
                let fee = l.description.starts_with("Base fee") || l.description.starts_with("Flat fee");
                NewInvoiceLine {
                    kind: if fee { "fee" } else { "usage" }.to_owned(),
                    description: l.description.clone(),
                    quantity: i64::try_from(l.quantity).unwrap_or(i64::MAX),
                    unit_price_minor: l.unit_price.map(|u| u.amount.minor()),
                    unit_per: l.unit_price.map(|u| i64::try_from(u.per).unwrap_or(i64::MAX)),
                    amount_minor: l.amount.minor(),
                    buckets: (!fee).then_some((self.period.start, self.period.end)),
                    source: (!fee).then_some((self.admitted, self.status_5xx)),
                }
            })
            .collect();
        out.extend(self.adjustments.iter().map(|(d, a)| NewInvoiceLine {
            kind: "adjustment".to_owned(),
            description: d.clone(),
            quantity: 1,
            unit_price_minor: None,
            unit_per: None,
            amount_minor: *a,
            buckets: None,
            source: None,
        }));
        out
    }
}

/// `2027-01-31`.
pub fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default()
}

/// `2027-01-31 10:00 UTC`.
pub fn datetime(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute()))
        .unwrap_or_default()
}

/// Bill `sub` for `period` with the plan it is on now and the usage recorded so far.
pub async fn bill_period(store: &Store, sub: &Subscription, period: Period) -> Result<PeriodBill, LedgerError> {
    let price = price_at(store, sub.plan_id, period.end - 1).await?;
    let (admitted, status_5xx) = store.subscription_usage_totals(sub.id, period.start, period.end).await?;
    let billable = price.billable.quantity(admitted, status_5xx);
    let inv = invoice(&price.price, billable, (period.start, period.end))?;
    let mut adjustments: Vec<(String, i64)> =
        store.adjustments(sub.id, period.start).await?.into_iter().map(|a| (a.description, a.amount_minor)).collect();
    // Free trial: the base fee is not charged for the trial's seconds inside the period.
    let base = price.base_fee();
    if price.trial_days > 0 && base > 0 {
        let trial_end = sub.created_at.saturating_add(price.trial_days.saturating_mul(86_400));
        let overlap = trial_end.min(period.end) - sub.created_at.max(period.start);
        if overlap > 0 {
            let credit = prorate_credit(base, overlap, period.end - period.start)?;
            if credit != 0 {
                adjustments.push((format!("Free trial until {}", datetime(trial_end)), -credit));
            }
        }
    }
    let mut total = inv.total.minor();
    for (_, a) in &adjustments {
        total = total.checked_add(*a).ok_or(BillingError::Overflow)?;
    }
    Ok(PeriodBill { subscription: sub.clone(), period, price, admitted, status_5xx, billable, invoice: inv, adjustments, total })
}

/// The live draft for the period containing `now`, and a forecast for the whole period.
#[derive(Debug, Clone)]
pub struct Draft {
    /// So far.
    pub bill: PeriodBill,
    /// Billable requests at the end of the period at the average rate so far.
    pub forecast_usage: u64,
    /// Total at the end of the period at that rate.
    pub forecast_total: i64,
    /// Seconds from now until a hard-cap quota runs out at that rate, if it will.
    pub quota_exhausted_in: Option<i64>,
}

/// The draft for the period of `sub` containing `now`.
pub async fn draft(store: &Store, sub: &Subscription, now: i64) -> Result<Draft, LedgerError> {
    let period = monthly_period(sub.billing_anchor, now);
    let bill = bill_period(store, sub, period).await?;
    let elapsed = (now - period.start).max(0);
    let len = period.end - period.start;
    let forecast_usage = if elapsed == 0 {
        bill.billable
    } else {
        u64::try_from(i128::from(bill.billable) * i128::from(len) / i128::from(elapsed)).unwrap_or(u64::MAX)
    };
    let f = invoice(&bill.price.price, forecast_usage, (period.start, period.end))?;
    let adj: i64 = bill.adjustments.iter().map(|(_, a)| a).sum();
    let quota_exhausted_in = bill.price.price.hard_cap().and_then(|cap| forecast_exhaustion(bill.billable, cap, elapsed, len));
    Ok(Draft { forecast_total: f.total.minor().saturating_add(adj), forecast_usage, quota_exhausted_in, bill })
}

/// What [`finalize_due`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalizeSummary {
    /// Invoices this run created.
    pub created: Vec<i64>,
    /// Periods found already invoiced (by another worker or an earlier run).
    pub existing: usize,
}

/// Finalize every ended, not yet invoiced period of one subscription, oldest first, applying
/// scheduled changes at each period end.
pub async fn finalize_subscription(store: &Store, subscription_id: i64, now: i64, out: &mut FinalizeSummary) -> Result<(), LedgerError> {
    finalize_subscription_ended_by(store, subscription_id, now, now, out).await
}

/// [`finalize_subscription`] for the periods that ended by `ended_by` (≤ `now`).
async fn finalize_subscription_ended_by(
    store: &Store,
    subscription_id: i64,
    ended_by: i64,
    now: i64,
    out: &mut FinalizeSummary,
) -> Result<(), LedgerError> {
    loop {
        let sub = store.get_subscription(subscription_id).await?;
        // A subscription taken up again after the periods of its cancellation starts afresh at
        // its new anchor: the months in between were not subscribed and are not billed.
        let from = store.last_invoiced_period_end(sub.id).await?.unwrap_or(sub.billing_anchor).max(sub.billing_anchor);
        let period = monthly_period(sub.billing_anchor, from);
        if period.end > ended_by {
            return Ok(());
        }
        if sub.status == "canceled" && sub.canceled_at.is_some_and(|c| c <= period.start) {
            return Ok(());
        }
        let bill = bill_period(store, &sub, period).await?;
        let new = NewInvoice {
            subscription_id: sub.id,
            period_start: period.start,
            period_end: period.end,
            currency: bill.price.price.currency().code().to_owned(),
            total_minor: bill.total,
            plan_id: sub.plan_id,
            plan_price_id: bill.price.row.as_ref().map(|r| r.id),
            usage_quantity: i64::try_from(bill.billable).unwrap_or(i64::MAX),
            due_at: period.end + PAYMENT_TERMS_DAYS * 86_400,
            lines: bill.lines(),
        };
        let (row, created) = store.finalize_invoice(&new, now).await?;
        if created {
            out.created.push(row.id);
        } else {
            out.existing += 1;
        }
        store.apply_period_end(sub.id, period.end, now).await?;
    }
}

/// Finalize every subscription's ended periods (the worker's job). Safe to run twice or on two
/// workers at once: each period yields one invoice.
pub async fn finalize_due(store: &Store, now: i64) -> Result<FinalizeSummary, LedgerError> {
    finalize_settled(store, now, 0).await
}

/// [`finalize_due`] for the periods that ended at least `settle_seconds` before `now`. Gateways
/// write a period's last requests into the usage buckets up to a flush later (longer while Redis
/// or the database is unreachable), so the worker waits this long after a period ends before its
/// invoice becomes final and can no longer take them.
pub async fn finalize_settled(store: &Store, now: i64, settle_seconds: i64) -> Result<FinalizeSummary, LedgerError> {
    let mut out = FinalizeSummary::default();
    let ended_by = now.saturating_sub(settle_seconds.max(0));
    for sub in store.all_subscriptions().await? {
        finalize_subscription_ended_by(store, sub.id, ended_by, now, &mut out).await?;
    }
    Ok(out)
}

/// Run [`finalize_settled`] every `interval` until `stop` turns true; the clock is the injected one.
pub async fn run_worker(
    store: Store,
    clock: turnpike_store::clock::SharedClock,
    interval: std::time::Duration,
    settle_seconds: i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match finalize_settled(&store, clock.now(), settle_seconds).await {
            Ok(s) if !s.created.is_empty() => tracing::info!(invoices = s.created.len(), "billing: finalized invoices"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "billing: finalizing invoices failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
