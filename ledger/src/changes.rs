//! Plan operations: subscribe, change plan, cancel, take a canceled subscription up again; each prices its change and writes it (and its audit row) in one conditional store transaction.

use turnpike_store::period::{monthly_period, Period};
use turnpike_store::{Audit, PlanChange, Store, StoreError, Subscription};

use turnpike_billing::{change_adjustments, prorate_charge, prorate_credit};

use crate::*;

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
