//! An administrator's plan actions: add a plan to an API, change its limits, set its price.

use turnpike_billing::{Overage, PlanPrice, Pricing};
use turnpike_ledger::{self as ledger, Billable};
use turnpike_store::{AccountId, Api, Audit, NewPlan, NewPlanPrice, Plan, PlanLimits, PlanPriceRow, Store, StoreError};

use super::{taken, ServiceError, ServiceResult};

/// The audit detail of a plan's limits.
fn limits_detail(l: &PlanLimits) -> String {
    format!(
        "rate={}/s burst={} quota={} default={}",
        l.rate_per_second,
        l.burst,
        l.monthly_quota.map_or_else(|| "unlimited".to_owned(), |q| q.to_string()),
        l.is_default
    )
}

/// Add a plan with limits `l` and outage policy `fail_open_seconds` to `api` (free until billing
/// prices it). A slug the API already uses is [`ServiceError::SlugTaken`].
pub async fn create(
    store: &Store,
    admin_id: AccountId,
    api: &Api,
    l: &PlanLimits,
    fail_open_seconds: Option<i64>,
    now: i64,
) -> ServiceResult<Plan> {
    let new = NewPlan {
        slug: l.slug.clone(),
        name: l.name.clone(),
        rate_per_second: l.rate_per_second,
        burst: l.burst,
        monthly_quota: l.monthly_quota,
        currency: "usd".into(),
        flat_price_minor: 0,
        unit_price_minor_per_1000: 0,
        is_default: l.is_default,
    };
    let audit = Audit::new(Some(admin_id.get()), "plan.create", "", format!("{} on {}: {}", l.slug, api.slug, limits_detail(l)));
    store.create_plan_audited(api.id, &new, fail_open_seconds, &audit, now).await.map_err(taken(ServiceError::SlugTaken))
}

/// Change `plan`'s name, slug, limits, default flag and outage policy; gateways apply the new
/// limits within a second. A slug the API already uses is [`ServiceError::SlugTaken`].
pub async fn update(
    store: &Store,
    admin_id: AccountId,
    plan: &Plan,
    l: &PlanLimits,
    fail_open_seconds: Option<i64>,
    now: i64,
) -> ServiceResult<Plan> {
    let audit = Audit::new(Some(admin_id.get()), "plan.update", format!("plan:{}", plan.id), limits_detail(l));
    store.update_plan(plan.id, l, fail_open_seconds, &audit, now).await.map_err(taken(ServiceError::SlugTaken))
}

/// A price version as the admin's form gives it.
#[derive(Debug, Clone)]
pub struct NewPrice {
    /// The price.
    pub price: PlanPrice,
    /// Free trial length.
    pub trial_days: i64,
    /// Which requests it charges for.
    pub billable: Billable,
}

/// Store `new` as the plan's next price version (a hard-capped quota also becomes the plan's
/// gateway quota). `summary` describes the price for the audit log.
pub async fn set_price(
    store: &Store,
    actor_id: Option<AccountId>,
    plan: &Plan,
    new: &NewPrice,
    summary: &str,
    now: i64,
) -> ServiceResult<PlanPriceRow> {
    let NewPrice { price, trial_days, billable } = new;
    let (trial_days, billable) = (*trial_days, *billable);
    let monthly_quota = match price.pricing() {
        Pricing::Quota { included, overage: Overage::HardCap, .. } => Some(Some(i64::try_from(*included).unwrap_or(i64::MAX))),
        Pricing::Quota { overage: Overage::Metered { .. }, .. } => Some(None),
        _ => None,
    };
    let row = NewPlanPrice {
        currency: price.currency().code().to_owned(),
        pricing: serde_json::to_string(price.pricing()).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        trial_days,
        billable: billable.as_str().to_owned(),
        base_fee: ledger::base_fee(price.pricing()),
        monthly_quota,
    };
    let audit = Audit::new(actor_id.map(AccountId::get), "plan.price", format!("plan:{}", plan.id), summary);
    Ok(store.set_plan_price_audited(plan.id, &row, Some(&audit), now).await?)
}
