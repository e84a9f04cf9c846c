//! The local ledger: the I/O side of billing. Reads plans, prices and usage buckets through
//! `turnpike-store`, prices them with the pure engine (`turnpike_billing::invoice`, `prorate_*`) and
//! writes subscription changes and finalized invoices. Everything here takes `now` from the
//! caller (the injected clock), never the system clock.
//!
//! # What is billable
//!
//! The gateway meters per key × API × hour: `admitted` (requests let through by the limiter:
//! the quota counts these) and the response classes `status_2xx`…`status_5xx`. It does not record
//! which 5xx responses the gateway made itself (502 upstream unreachable, 504 upstream timeout)
//! and which the upstream sent, so the two rules a price can choose are:
//!
//! - [`Billable::AdmittedNon5xx`] (the default): `admitted − status_5xx`. Never charges for a
//!   gateway-made 502/504, and also does not charge for 5xx responses sent by the upstream.
//! - [`Billable::Admitted`]: every admitted request, whatever the response (what the quota counts).
//!
//! # Periods, plan changes, invoices
//!
//! Periods are [`turnpike_store::period::monthly_period`] of the subscription's billing anchor,
//! the same the gateway's quota uses; usage of a period is the buckets with
//! `period.start <= hour < period.end` (anchors are on the hour). Usage is priced on the plan in
//! effect at the period's end, at the price version in effect at the period's end
//! ([`Store::plan_price_at`]). Base fees are prorated by the second on upgrades (see
//! `turnpike_billing::proration`); a move to a cheaper paid plan waits for the period end; a move to a plan
//! that needs no payment, or one with an equal or higher base fee, happens at once. Canceling now
//! credits the unused part of the base fee; canceling at period end just stops renewal.
//! A free trial credits the base fee for the trial's seconds inside the period.
//!
//! [`finalize_due`] finalizes every ended period exactly once ([`Store::finalize_invoice`]), then
//! applies scheduled changes. Invoices are due [`PAYMENT_TERMS_DAYS`] days after the period end.

use std::collections::BTreeMap;

use turnpike_store::period::{monthly_period, Period};
use turnpike_store::{Audit, NewInvoice, NewInvoiceLine, Plan, PlanChange, PlanPriceRow, Store, StoreError, Subscription};

use turnpike_billing::{
    change_adjustments, forecast_exhaustion, invoice, prorate_charge, prorate_credit, BillingError, Currency, Invoice, Overage, PlanPrice,
    Pricing,
};

/// Days between a period's end and its invoice's due date.
pub const PAYMENT_TERMS_DAYS: i64 = 14;

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database failed (or the row does not exist: [`StoreError::NotFound`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Pricing or arithmetic failed.
    #[error(transparent)]
    Billing(#[from] BillingError),
    /// A stored price could not be read.
    #[error("stored price of plan {0} is invalid: {1}")]
    BadPrice(i64, String),
}

/// Which metered requests a price charges for (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Billable {
    /// Every admitted request.
    Admitted,
    /// Admitted requests minus 5xx responses.
    AdmittedNon5xx,
}

impl Billable {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Billable::Admitted => "admitted",
            Billable::AdmittedNon5xx => "admitted_non_5xx",
        }
    }
    /// Parse the stored value.
    pub fn parse(s: &str) -> Option<Billable> {
        match s {
            "admitted" => Some(Billable::Admitted),
            "admitted_non_5xx" => Some(Billable::AdmittedNon5xx),
            _ => None,
        }
    }
    /// Billable quantity from bucket totals (never negative).
    pub fn quantity(self, admitted: i64, status_5xx: i64) -> u64 {
        let n = match self {
            Billable::Admitted => admitted,
            Billable::AdmittedNon5xx => admitted - status_5xx,
        };
        u64::try_from(n).unwrap_or(0)
    }
}

/// A plan's price as in effect at some instant.
#[derive(Debug, Clone)]
pub struct EffectivePrice {
    /// The plan.
    pub plan: Plan,
    /// The stored version, if any (`None`: derived from the plan's legacy price columns).
    pub row: Option<PlanPriceRow>,
    /// The validated price.
    pub price: PlanPrice,
    /// Free trial days.
    pub trial_days: i64,
    /// Billable rule.
    pub billable: Billable,
}

impl EffectivePrice {
    /// The fixed fee per period.
    pub fn base_fee(&self) -> i64 {
        base_fee(self.price.pricing())
    }
    /// `v3` or `legacy`.
    pub fn version_label(&self) -> String {
        self.row.as_ref().map_or_else(|| "legacy".to_owned(), |r| format!("v{}", r.version))
    }
}

/// The fixed part of a price per period.
pub fn base_fee(pricing: &Pricing) -> i64 {
    match pricing {
        Pricing::Flat { amount } => *amount,
        Pricing::Quota { base_fee, .. } => *base_fee,
        _ => 0,
    }
}

/// Whether subscribing to a plan at this price needs a payment method: anything that can
/// charge money. **The Stripe hook**: when Stripe is configured and this is true, the plan change
/// goes through Checkout instead of [`change_plan`].
pub fn needs_payment(price: &PlanPrice) -> bool {
    match price.pricing() {
        Pricing::Free => false,
        Pricing::Flat { amount } => *amount > 0,
        Pricing::PerUnit { unit_price, .. } => *unit_price > 0,
        Pricing::Graduated { tiers } | Pricing::Volume { tiers } => tiers.iter().any(|t| t.unit_price > 0 || t.flat_fee.unwrap_or(0) > 0),
        Pricing::Package { package_price, .. } => *package_price > 0,
        Pricing::Quota { base_fee, overage, .. } => {
            *base_fee > 0 || matches!(overage, Overage::Metered { unit_price, .. } if *unit_price > 0)
        }
    }
}

/// [`needs_payment`] for a plan's current price.
pub async fn plan_needs_payment(store: &Store, plan_id: i64, now: i64) -> Result<bool, LedgerError> {
    Ok(needs_payment(&price_at(store, plan_id, now).await?.price))
}

/// The price of a plan that has no stored version: its legacy columns (flat fee, price per
/// 1,000, quota as a hard cap when unpriced beyond it).
pub fn legacy_pricing(plan: &Plan) -> Pricing {
    match (plan.flat_price_minor, plan.unit_price_minor_per_1000, plan.monthly_quota) {
        (0, 0, _) => Pricing::Free,
        (fee, 0, Some(q)) => Pricing::Quota { base_fee: fee, included: u64::try_from(q).unwrap_or(0), overage: Overage::HardCap },
        (fee, 0, None) => Pricing::Flat { amount: fee },
        (fee, unit, _) => Pricing::Quota { base_fee: fee, included: 0, overage: Overage::Metered { unit_price: unit, per: 1_000 } },
    }
}

/// The price of `plan_id` in effect at `at`.
pub async fn price_at(store: &Store, plan_id: i64, at: i64) -> Result<EffectivePrice, LedgerError> {
    let plan = store.get_plan(plan_id).await?;
    let row = store.plan_price_at(plan_id, at).await?;
    let bad = |e: String| LedgerError::BadPrice(plan_id, e);
    let (price, trial_days, billable) = match &row {
        Some(r) => {
            let pricing: Pricing = serde_json::from_str(&r.pricing).map_err(|e| bad(e.to_string()))?;
            let currency = Currency::parse(&r.currency).map_err(|e| bad(e.to_string()))?;
            let price = PlanPrice::new(currency, pricing).map_err(|e| bad(e.to_string()))?;
            (price, r.trial_days, Billable::parse(&r.billable).unwrap_or(Billable::AdmittedNon5xx))
        }
        None => {
            let currency = Currency::parse(&plan.currency).map_err(|e| bad(e.to_string()))?;
            (PlanPrice::new(currency, legacy_pricing(&plan)).map_err(|e| bad(e.to_string()))?, 0, Billable::AdmittedNon5xx)
        }
    };
    Ok(EffectivePrice { plan, row, price, trial_days, billable })
}

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
    loop {
        let sub = store.get_subscription(subscription_id).await?;
        // A subscription taken up again after the periods of its cancellation starts afresh at
        // its new anchor: the months in between were not subscribed and are not billed.
        let from = store.last_invoiced_period_end(sub.id).await?.unwrap_or(sub.billing_anchor).max(sub.billing_anchor);
        let period = monthly_period(sub.billing_anchor, from);
        if period.end > now {
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
    let mut out = FinalizeSummary::default();
    for sub in store.all_subscriptions().await? {
        finalize_subscription(store, sub.id, now, &mut out).await?;
    }
    Ok(out)
}

/// Run [`finalize_due`] every `interval` until `stop` turns true; the clock is the injected one.
pub async fn run_worker(
    store: Store,
    clock: turnpike_store::clock::SharedClock,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match finalize_due(&store, clock.now()).await {
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

/// How a plan change was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// In effect now (upgrade, equal base fee, or a plan needing no payment).
    Now,
    /// Scheduled for the period end (a cheaper paid plan).
    AtPeriodEnd(i64),
    /// Already on that plan (a scheduled change or cancellation, if any, was removed).
    Unchanged,
}

/// How [`subscribe`] put an app on a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscribed {
    /// A new subscription, starting on the hour.
    New,
    /// A live subscription changed plan ([`change_plan`]).
    Changed(ChangeOutcome),
    /// A canceled subscription taken up again, now.
    Resumed,
}

/// Put `app_id` on `plan_id` (the one entry point of every surface that subscribes): a new
/// subscription, a plan change of a live one ([`change_plan`]), or a canceled one taken up again
/// ([`resubscribe`]). Ownership and visibility are the caller's to check. A concurrent change of
/// the same subscription is [`StoreError::Stale`] and records nothing.
pub async fn subscribe(store: &Store, app_id: i64, plan_id: i64, now: i64) -> Result<(Subscription, Subscribed), LedgerError> {
    subscribe_audited(store, app_id, plan_id, None, now).await
}

/// [`subscribe`] writing `audit` (target: the subscription) in the transaction of the change, so
/// the subscription and its audit row are kept or lost together. An unchanged plan writes neither.
pub async fn subscribe_audited(
    store: &Store,
    app_id: i64,
    plan_id: i64,
    audit: Option<&Audit>,
    now: i64,
) -> Result<(Subscription, Subscribed), LedgerError> {
    let plan = store.get_plan(plan_id).await?;
    let existing = match store.list_subscriptions(app_id).await?.into_iter().find(|s| s.api_id == plan.api_id) {
        // What fell due first (a scheduled cancellation may have ended it), then decide.
        Some(sub) => {
            finalize_subscription(store, sub.id, now, &mut FinalizeSummary::default()).await?;
            Some(store.get_subscription(sub.id).await?)
        }
        None => None,
    };
    Ok(match existing {
        None => match store.subscribe_audited(app_id, plan_id, audit, now).await {
            Ok(sub) => (sub, Subscribed::New),
            // Someone created it in between: their subscription stands; reload and decide.
            Err(StoreError::Conflict) => return Err(StoreError::Stale.into()),
            Err(e) => return Err(e.into()),
        },
        Some(sub) if sub.status != "canceled" => {
            let outcome = change_plan_audited(store, sub.id, plan_id, audit, now).await?;
            (store.get_subscription(sub.id).await?, Subscribed::Changed(outcome))
        }
        Some(sub) => (resubscribe(store, sub.id, plan_id, audit, now).await?, Subscribed::Resumed),
    })
}

/// Take a canceled subscription up again on `plan_id`, now.
///
/// - Canceled in the **current** period: the period goes on. Canceling credited the base fee
///   from the cancellation to the period end; the part of that credit from now on is withdrawn
///   (a charge line), and if the plan differs, the usual change lines move the rest of the
///   period to the new plan. So the period charges the old plan until the cancellation and the
///   new plan from now: the gap is free, nothing is charged twice, nothing is credited twice.
/// - Canceled in an **earlier** period (all of whose periods are invoiced by then): a fresh
///   period starts on the hour, as for a new subscription; the months in between are not billed.
///   The trial is not given again (it counts from the first subscription).
pub async fn resubscribe(
    store: &Store,
    subscription_id: i64,
    plan_id: i64,
    audit: Option<&Audit>,
    now: i64,
) -> Result<Subscription, LedgerError> {
    finalize_subscription(store, subscription_id, now, &mut FinalizeSummary::default()).await?;
    let sub = store.get_subscription(subscription_id).await?;
    if sub.status != "canceled" {
        // Taken up (or changed) by a concurrent request since the caller looked.
        return Err(StoreError::Stale.into());
    }
    let period = monthly_period(sub.billing_anchor, now);
    let canceled_at = sub.canceled_at.unwrap_or(now).min(now);
    // Canceled at (or before) this period's start: nothing of this period was charged or credited.
    if canceled_at <= period.start {
        let anchor = turnpike_store::clock::hour_start(now);
        let change = PlanChange::Resubscribe { plan: plan_id, anchor: Some(anchor) };
        return Ok(store.change_subscription(sub.id, sub.revision, change, &[], audit, now).await?);
    }
    let len = period.end - period.start;
    let old = price_at(store, sub.plan_id, canceled_at).await?;
    let mut adj = Vec::new();
    let back = prorate_charge(old.base_fee(), period.end - now, len)?;
    if back != 0 {
        adj.push((period.start, format!("{} base fee from {} (re-subscribed)", old.plan.name, datetime(now)), back));
    }
    if plan_id != sub.plan_id {
        let new = price_at(store, plan_id, now).await?;
        adj.extend(change_lines(&old, &new, period, now)?);
    }
    let change = PlanChange::Resubscribe { plan: plan_id, anchor: None };
    Ok(store.change_subscription(sub.id, sub.revision, change, &adj, audit, now).await?)
}

/// The two lines of a change from `old` to `new` at `now` inside `period` (see
/// `turnpike_billing::proration`): `+old` for the elapsed part, `−new` for the same part.
fn change_lines(old: &EffectivePrice, new: &EffectivePrice, period: Period, now: i64) -> Result<Vec<(i64, String, i64)>, LedgerError> {
    let elapsed = (now - period.start).clamp(0, period.end - period.start);
    let (old_used, new_unused) = change_adjustments(old.base_fee(), new.base_fee(), elapsed, period.end - period.start)?;
    let mut adj = Vec::new();
    if old_used != 0 {
        adj.push((period.start, format!("{} base fee, {} to {}", old.plan.name, datetime(period.start), datetime(now)), old_used));
    }
    if new_unused != 0 {
        adj.push((period.start, format!("{} base fee not due before {}", new.plan.name, datetime(now)), -new_unused));
    }
    Ok(adj)
}

/// Move a subscription to `new_plan_id` (of the same API) following the rules in the module docs.
/// The write is conditional on the subscription being as read: a concurrent change makes this
/// [`StoreError::Stale`] and records nothing (no second proration).
pub async fn change_plan(store: &Store, subscription_id: i64, new_plan_id: i64, now: i64) -> Result<ChangeOutcome, LedgerError> {
    change_plan_audited(store, subscription_id, new_plan_id, None, now).await
}

/// [`change_plan`] writing `audit` (target: the subscription) in the change's transaction.
pub async fn change_plan_audited(
    store: &Store,
    subscription_id: i64,
    new_plan_id: i64,
    audit: Option<&Audit>,
    now: i64,
) -> Result<ChangeOutcome, LedgerError> {
    // Ended periods are invoiced on the plan they ended on before anything changes.
    finalize_subscription(store, subscription_id, now, &mut FinalizeSummary::default()).await?;
    let sub = store.get_subscription(subscription_id).await?;
    if sub.status == "canceled" {
        return Err(StoreError::NotFound.into());
    }
    if new_plan_id == sub.plan_id {
        if sub.pending_plan_id.is_some() || sub.cancel_at_period_end {
            store.change_subscription(sub.id, sub.revision, PlanChange::Resume, &[], audit, now).await?;
        }
        return Ok(ChangeOutcome::Unchanged);
    }
    let new_plan = store.get_plan(new_plan_id).await?;
    if new_plan.api_id != sub.api_id {
        return Err(StoreError::NotFound.into());
    }
    let old = price_at(store, sub.plan_id, now).await?;
    let new = price_at(store, new_plan_id, now).await?;
    let period = monthly_period(sub.billing_anchor, now);
    if needs_payment(&new.price) && new.base_fee() < old.base_fee() {
        store.change_subscription(sub.id, sub.revision, PlanChange::AtPeriodEnd(Some(new_plan_id)), &[], audit, now).await?;
        return Ok(ChangeOutcome::AtPeriodEnd(period.end));
    }
    let adj = change_lines(&old, &new, period, now)?;
    store.change_subscription(sub.id, sub.revision, PlanChange::Now(new_plan_id), &adj, audit, now).await?;
    Ok(ChangeOutcome::Now)
}

/// Cancel a subscription now (crediting the unused base fee, rounded down) or at the period end.
/// Conditional like [`change_plan`]: a concurrent change makes this [`StoreError::Stale`].
pub async fn cancel(store: &Store, subscription_id: i64, at_period_end: bool, now: i64) -> Result<(), LedgerError> {
    cancel_audited(store, subscription_id, at_period_end, None, now).await
}

/// [`cancel`] writing `audit` (target: the subscription) in the change's transaction.
pub async fn cancel_audited(
    store: &Store,
    subscription_id: i64,
    at_period_end: bool,
    audit: Option<&Audit>,
    now: i64,
) -> Result<(), LedgerError> {
    finalize_subscription(store, subscription_id, now, &mut FinalizeSummary::default()).await?;
    let sub = store.get_subscription(subscription_id).await?;
    if at_period_end {
        store.change_subscription(sub.id, sub.revision, PlanChange::CancelAtPeriodEnd(true), &[], audit, now).await?;
        return Ok(());
    }
    let price = price_at(store, sub.plan_id, now).await?;
    let period = monthly_period(sub.billing_anchor, now);
    let remaining = (period.end - now).clamp(0, period.end - period.start);
    let credit = prorate_credit(price.base_fee(), remaining, period.end - period.start)?;
    // Canceled at the very start of a period: that period is never invoiced (nothing of it was
    // subscribed), so there is nothing to credit.
    let adj = if credit != 0 && now > period.start {
        vec![(period.start, format!("Canceled {}: unused base fee", datetime(now)), -credit)]
    } else {
        vec![]
    };
    store.change_subscription(sub.id, sub.revision, PlanChange::CancelNow, &adj, audit, now).await?;
    Ok(())
}

// ---------------------------------------------------------------- reports

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
    /// Usage Stripe reports for the same invoices, when Stripe is configured: the Stripe
    /// integration fills this in (`None` = not configured) and compares it with the invoiced total.
    pub stripe_reported: Option<i64>,
    /// Billable requests on every non-void invoice (what Stripe's figure is compared with).
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
        // What Stripe was told for this invoice must equal what was invoiced.
        if let Some(pushed) = r.stripe_quantity {
            if pushed != r.usage_quantity {
                drift_total = drift_total.saturating_add((pushed - r.usage_quantity).abs());
                drift.push(Drift {
                    number: format!("{} (Stripe)", r.number.clone().unwrap_or_default()),
                    invoiced: r.usage_quantity,
                    metered: pushed,
                });
            }
        }
    }
    let pushed: Vec<i64> = rows.iter().filter_map(|r| r.stripe_quantity).collect();
    let stripe_reported = (!pushed.is_empty()).then(|| pushed.iter().sum());
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
        stripe_reported,
        invoiced_total: rows.iter().map(|r| r.usage_quantity).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_billing::Tier;

    #[test]
    fn billable_rules() {
        assert_eq!(Billable::Admitted.quantity(10, 3), 10);
        assert_eq!(Billable::AdmittedNon5xx.quantity(10, 3), 7);
        // Status counts can briefly lead admitted counts between flushes: never negative.
        assert_eq!(Billable::AdmittedNon5xx.quantity(1, 3), 0);
        assert_eq!(Billable::parse("admitted"), Some(Billable::Admitted));
        assert_eq!(Billable::parse("x"), None);
    }

    #[test]
    fn payment_is_needed_only_when_something_can_cost_money() {
        let p = |pricing| PlanPrice::new(Currency::USD, pricing).unwrap();
        assert!(!needs_payment(&p(Pricing::Free)));
        assert!(!needs_payment(&p(Pricing::Quota { base_fee: 0, included: 100, overage: Overage::HardCap })));
        assert!(!needs_payment(&p(Pricing::Graduated { tiers: vec![Tier::new(None, 0)] })));
        assert!(needs_payment(&p(Pricing::Quota { base_fee: 0, included: 100, overage: Overage::Metered { unit_price: 1, per: 1 } })));
        assert!(needs_payment(&p(Pricing::Flat { amount: 1 })));
        assert!(needs_payment(&p(Pricing::Package { package_size: 10, package_price: 5 })));
    }
}
