//! An administrator's plan actions: add a plan to an API, change its limits, set its price.

use turnpike_billing::{Overage, PlanPrice, Pricing};
use turnpike_ledger::{self as ledger, Billable};
use turnpike_store::{AccountId, Api, Audit, NewPlan, NewPlanPrice, Plan, PlanLimits, PlanPriceRow, Store, StoreError};

use super::{taken, FieldProblem, ServiceError, ServiceResult};

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

/// A new plan with limits `l`, free until billing prices it.
pub(crate) fn new_plan(l: &PlanLimits) -> NewPlan {
    NewPlan {
        slug: l.slug.clone(),
        name: l.name.clone(),
        rate_per_second: l.rate_per_second,
        burst: l.burst,
        monthly_quota: l.monthly_quota,
        currency: "usd".into(),
        flat_price_minor: 0,
        unit_price_minor_per_1000: 0,
        is_default: l.is_default,
    }
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
    let new = new_plan(l);
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
    // The plan's price may fix its quota (a hard-capped or metered quota price): the limit the
    // gateway enforces and the one billing charges for must not drift apart.
    if let Some(row) = store.plan_price_at(plan.id, now).await? {
        let pricing: Pricing = serde_json::from_str(&row.pricing).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if let Some(q) = quota_fixed_by(&pricing).filter(|q| *q != l.monthly_quota) {
            return Err(ServiceError::Invalid(vec![quota_problem(q)]));
        }
    }
    let audit = Audit::new(Some(admin_id.get()), "plan.update", format!("plan:{}", plan.id), limits_detail(l));
    store.update_plan(plan.id, l, fail_open_seconds, &audit, now).await.map_err(taken(ServiceError::SlugTaken))
}

/// "The price fixes the quota at `q`": the one message for the console, the API and apply.
pub(crate) fn quota_problem(q: Option<i64>) -> FieldProblem {
    let says = q.map_or_else(|| "unlimited (empty)".to_owned(), |q| q.to_string());
    FieldProblem::new("monthly_quota", format!("the plan's price sets its quota, so it must be {says}; change the price to change it"))
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

/// The quota a price gives its plan at the gateway: a hard-capped quota is the plan's limit
/// (`Some(Some(n))`), a metered one lifts it (`Some(None)`), any other price leaves it (`None`).
pub(crate) fn quota_set_by(new: &NewPrice) -> Option<Option<i64>> {
    quota_fixed_by(new.price.pricing())
}

/// See [`quota_set_by`], for a stored pricing.
pub(crate) fn quota_fixed_by(pricing: &Pricing) -> Option<Option<i64>> {
    match pricing {
        Pricing::Quota { included, overage: Overage::HardCap, .. } => Some(Some(i64::try_from(*included).unwrap_or(i64::MAX))),
        Pricing::Quota { overage: Overage::Metered { .. }, .. } => Some(None),
        _ => None,
    }
}

/// `new` as the store's price row.
pub(crate) fn price_row(new: &NewPrice) -> Result<NewPlanPrice, StoreError> {
    Ok(NewPlanPrice {
        currency: new.price.currency().code().to_owned(),
        pricing: serde_json::to_string(new.price.pricing()).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        trial_days: new.trial_days,
        billable: new.billable.as_str().to_owned(),
        base_fee: ledger::base_fee(new.price.pricing()),
        monthly_quota: quota_set_by(new),
    })
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
    let row = price_row(new)?;
    let audit = Audit::new(actor_id.map(AccountId::get), "plan.price", format!("plan:{}", plan.id), summary);
    Ok(store.set_plan_price_audited(plan.id, &row, Some(&audit), now).await?)
}

// ---- The rules of a plan's limits: one place for the console, the admin API and `apply` ----

use turnpike_store::domain::Slug;

/// A plan's limits as given, before any check. Problems name the fields `name`, `slug`,
/// `rate_per_second`, `burst`, `monthly_quota`, `fail_open_seconds`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanDraft {
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Requests per second.
    pub rate_per_second: String,
    /// Burst.
    pub burst: String,
    /// Monthly quota; empty is unlimited.
    pub monthly_quota: String,
    /// Given to new apps automatically.
    pub is_default: bool,
    /// Seconds of fail-open while Redis is unreachable; empty fails closed.
    pub fail_open_seconds: String,
}

impl PlanDraft {
    /// A draft from numbers (the JSON API and the declarative file).
    pub fn of_numbers(
        name: &str,
        slug: &str,
        rate_per_second: i64,
        burst: i64,
        monthly_quota: Option<i64>,
        is_default: bool,
        fail_open_seconds: Option<i64>,
    ) -> PlanDraft {
        PlanDraft {
            name: name.to_owned(),
            slug: slug.to_owned(),
            rate_per_second: rate_per_second.to_string(),
            burst: burst.to_string(),
            monthly_quota: monthly_quota.map(|q| q.to_string()).unwrap_or_default(),
            is_default,
            fail_open_seconds: fail_open_seconds.map(|s| s.to_string()).unwrap_or_default(),
        }
    }
}

/// A whole number in `range`, from text that may use thousands separators.
fn parse_count(raw: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
    let digits: String = raw.trim().chars().filter(|c| !matches!(c, ',' | '_' | ' ')).collect();
    digits.parse::<i64>().ok().filter(|n| range.contains(n))
}

/// Every field of `d` checked: the limits and the outage policy (`None`: fail closed), or
/// every problem found.
pub fn check(d: &PlanDraft) -> Result<(PlanLimits, Option<i64>), Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let name = super::apis::check_display_name(&d.name, "name", &mut problems);
    let slug = d.slug.trim().to_owned();
    if let Err(e) = Slug::parse(&slug) {
        problems.push(FieldProblem::new("slug", format!("The plan's slug: {e}.")));
    }
    let rate = parse_count(&d.rate_per_second, 1..=1_000_000);
    if rate.is_none() {
        problems.push(FieldProblem::new("rate_per_second", "The rate is a whole number of requests per second from 1 to 1,000,000."));
    }
    let burst = parse_count(&d.burst, 1..=10_000_000);
    if burst.is_none() {
        problems.push(FieldProblem::new("burst", "The burst is a whole number from 1 to 10,000,000."));
    }
    let quota = if d.monthly_quota.trim().is_empty() { Some(None) } else { parse_count(&d.monthly_quota, 1..=i64::MAX / 2).map(Some) };
    if quota.is_none() {
        problems.push(FieldProblem::new("monthly_quota", "The monthly quota is a whole number of requests, or empty for unlimited."));
    }
    let fail_open =
        if d.fail_open_seconds.trim().is_empty() { Some(None) } else { parse_count(&d.fail_open_seconds, 1..=86_400).map(Some) };
    if fail_open.is_none() {
        problems.push(FieldProblem::new(
            "fail_open_seconds",
            "Seconds from 1 to 86,400, or empty to refuse requests (503) while Redis is unreachable.",
        ));
    }
    match (rate, burst, quota, fail_open, problems.is_empty()) {
        (Some(rate_per_second), Some(burst), Some(monthly_quota), Some(fail_open), true) => {
            Ok((PlanLimits { slug, name, rate_per_second, burst, monthly_quota, is_default: d.is_default }, fail_open))
        }
        _ => Err(problems),
    }
}
