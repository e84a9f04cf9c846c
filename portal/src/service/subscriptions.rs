//! Subscription actions: subscribe an app to a plan, change a subscription's plan, cancel it.
//! The ledger prices each change; its audit row is written in the change's transaction.

use turnpike_ledger::{self as ledger, ChangeOutcome, Subscribed};
use turnpike_store::{AccountId, App, Audit, Plan, Store, Subscription};

use super::ServiceResult;

/// Put `app` (owned by `actor_id`) on `plan`: a new subscription, a plan change of a live one or
/// a canceled one taken up again ([`ledger::subscribe`]). Ownership and visibility are checked
/// by the caller.
pub async fn subscribe(store: &Store, actor_id: AccountId, app: &App, plan: &Plan, now: i64) -> ServiceResult<(Subscription, Subscribed)> {
    let audit = Audit::new(Some(actor_id.get()), "subscription.subscribe", "", format!("app:{} plan:{}", app.id, plan.id));
    Ok(ledger::subscribe_audited(store, app.id, plan.id, Some(&audit), now).await?)
}

/// Move `sub` (owned by `actor_id`) to `plan`: upgrades now (prorated), downgrades at the period
/// end ([`ledger::change_plan`]).
pub async fn change_plan(store: &Store, actor_id: AccountId, sub: &Subscription, plan: &Plan, now: i64) -> ServiceResult<ChangeOutcome> {
    let audit = Audit::new(Some(actor_id.get()), "subscription.plan", "", format!("plan:{}", plan.id));
    Ok(ledger::change_plan_audited(store, sub.id, plan.id, Some(&audit), now).await?)
}

/// Cancel `sub` (owned by `actor_id`) now, crediting the unused base fee, or at the period end.
pub async fn cancel(store: &Store, actor_id: AccountId, sub: &Subscription, at_period_end: bool, now: i64) -> ServiceResult<()> {
    let when = if at_period_end { "period_end" } else { "now" };
    let audit = Audit::new(Some(actor_id.get()), "subscription.cancel", "", when);
    Ok(ledger::cancel_audited(store, sub.id, at_period_end, Some(&audit), now).await?)
}
