//! Plans (limits, the outage policy, the default flag) and their price versions.

use serde::Serialize;

use crate::changes::{record_change, ChangeKind};
use crate::db::{in_tx, on_pool};
use crate::{Audit, Store, StoreError};

/// A plan: limits and prices for one API.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Plan {
    /// Id.
    pub id: i64,
    /// The API it belongs to.
    pub api_id: i64,
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Sustained requests per second.
    pub rate_per_second: i64,
    /// Requests allowed at once above the sustained rate.
    pub burst: i64,
    /// Requests per billing period; `None` is unlimited.
    pub monthly_quota: Option<i64>,
    /// ISO 4217 code, lower case.
    pub currency: String,
    /// Flat price per period, minor units.
    pub flat_price_minor: i64,
    /// Price per 1,000 requests, minor units.
    pub unit_price_minor_per_1000: i64,
    /// Given to new apps automatically.
    pub is_default: bool,
}

/// Fields of a new plan.
#[derive(Debug, Clone)]
pub struct NewPlan {
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Requests per second.
    pub rate_per_second: i64,
    /// Burst.
    pub burst: i64,
    /// Requests per period.
    pub monthly_quota: Option<i64>,
    /// Currency.
    pub currency: String,
    /// Flat price, minor units.
    pub flat_price_minor: i64,
    /// Per-1,000 price, minor units.
    pub unit_price_minor_per_1000: i64,
    /// Given to new apps automatically.
    pub is_default: bool,
}

/// Insert a plan row inside the caller's transaction (no change-log entry); evaluates to the
/// new [`Plan`]. The one INSERT of a plan.
macro_rules! insert_plan {
    ($tx:ident, $api_id:expr, $plan:expr, $now:expr) => {{
        let plan: &$crate::NewPlan = $plan;
        let row: $crate::Plan = sqlx::query_as(&format!(
            "INSERT INTO plans (api_id, slug, name, rate_per_second, burst, monthly_quota, currency, flat_price_minor, unit_price_minor_per_1000, is_default, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {}", $crate::plans::PLAN_COLUMNS))
            .bind($api_id).bind(&plan.slug).bind(&plan.name).bind(plan.rate_per_second).bind(plan.burst)
            .bind(plan.monthly_quota).bind(&plan.currency).bind(plan.flat_price_minor)
            .bind(plan.unit_price_minor_per_1000).bind(plan.is_default).bind($now)
            .fetch_one(&mut *$tx).await?;
        row
    }};
}
pub(crate) use insert_plan;

/// The admin's "new plan" inside the caller's transaction: insert it, make it the API's only
/// default when flagged, set its outage policy, log the change and write `audit` (target: the
/// new plan). Shared by [`Store::create_plan_audited`] and the catalog apply.
macro_rules! create_plan_audited {
    ($tx:ident, $api_id:expr, $plan:expr, $fail_open_seconds:expr, $audit:expr, $now:expr) => {{
        let api_id: i64 = $api_id;
        let (policy, secs) = $crate::plans::failure_policy($fail_open_seconds);
        let row: $crate::Plan = $crate::plans::insert_plan!($tx, api_id, $plan, $now);
        if row.is_default {
            sqlx::query($crate::plans::CLEAR_OTHER_DEFAULTS).bind(api_id).bind(row.id).execute(&mut *$tx).await?;
        }
        sqlx::query($crate::plans::SET_FAILURE_POLICY).bind(row.id).bind(policy).bind(secs).execute(&mut *$tx).await?;
        $crate::changes::record_change!($tx, $crate::ChangeKind::Api, api_id.to_string(), $now);
        let audit: &$crate::Audit = $audit;
        $crate::audit::record_audit!($tx, audit.on(format!("plan:{}", row.id)), $now);
        row
    }};
}
pub(crate) use create_plan_audited;

/// Change a plan's name, slug, limits, default flag and outage policy inside the caller's
/// transaction, with its change-log entry and the optional audit; evaluates to the [`Plan`] or
/// returns [`StoreError::NotFound`]. Shared by [`Store::update_plan`] and the catalog apply.
macro_rules! update_plan {
    ($tx:ident, $plan_id:expr, $l:expr, $fail_open_seconds:expr, $audit:expr, $now:expr) => {{
        let (plan_id, l): (i64, &$crate::PlanLimits) = ($plan_id, $l);
        let (policy, secs) = $crate::plans::failure_policy($fail_open_seconds);
        let row: Option<$crate::Plan> = sqlx::query_as(&format!(
            "UPDATE plans SET slug = $2, name = $3, rate_per_second = $4, burst = $5, monthly_quota = $6, is_default = $7
             WHERE id = $1 RETURNING {}",
            $crate::plans::PLAN_COLUMNS
        ))
        .bind(plan_id)
        .bind(&l.slug)
        .bind(&l.name)
        .bind(l.rate_per_second)
        .bind(l.burst)
        .bind(l.monthly_quota)
        .bind(l.is_default)
        .fetch_optional(&mut *$tx)
        .await?;
        let Some(row) = row else { return Err(StoreError::NotFound) };
        if l.is_default {
            sqlx::query($crate::plans::CLEAR_OTHER_DEFAULTS).bind(row.api_id).bind(plan_id).execute(&mut *$tx).await?;
        }
        sqlx::query($crate::plans::SET_FAILURE_POLICY).bind(plan_id).bind(policy).bind(secs).execute(&mut *$tx).await?;
        $crate::changes::record_change!($tx, $crate::ChangeKind::Api, row.api_id.to_string(), $now);
        $crate::audit::record_audit_opt!($tx, $audit, $now);
        row
    }};
}
pub(crate) use update_plan;

/// Store a new price version (version = previous + 1) and apply its quota to the plan inside the
/// caller's transaction, with its change-log entry and the optional audit (detail prefixed with
/// the version); evaluates to the [`PlanPriceRow`]. Shared by [`Store::set_plan_price_audited`]
/// and the catalog apply: price versions are only ever appended.
macro_rules! set_plan_price {
    ($tx:ident, $plan_id:expr, $price:expr, $audit:expr, $now:expr) => {{
        let (plan_id, price): (i64, &$crate::NewPlanPrice) = ($plan_id, $price);
        let api: Option<(i64,)> = sqlx::query_as("UPDATE plans SET currency = $2, flat_price_minor = $3 WHERE id = $1 RETURNING api_id")
            .bind(plan_id)
            .bind(&price.currency)
            .bind(price.base_fee)
            .fetch_optional(&mut *$tx)
            .await?;
        let Some((api_id,)) = api else { return Err(StoreError::NotFound) };
        if let Some(quota) = price.monthly_quota {
            sqlx::query("UPDATE plans SET monthly_quota = $2 WHERE id = $1").bind(plan_id).bind(quota).execute(&mut *$tx).await?;
        }
        let row: $crate::PlanPriceRow = sqlx::query_as(&format!(
            "INSERT INTO plan_prices (plan_id, version, currency, pricing, trial_days, billable, created_at)
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6 FROM plan_prices WHERE plan_id = $1
             RETURNING {}",
            $crate::plans::PRICE_COLUMNS
        ))
        .bind(plan_id)
        .bind(&price.currency)
        .bind(&price.pricing)
        .bind(price.trial_days)
        .bind(&price.billable)
        .bind($now)
        .fetch_one(&mut *$tx)
        .await?;
        $crate::changes::record_change!($tx, $crate::ChangeKind::Api, api_id.to_string(), $now);
        let audit: Option<&$crate::Audit> = $audit;
        $crate::audit::record_audit_opt!(
            $tx,
            audit.map(|a| $crate::Audit { detail: format!("v{}: {}", row.version, a.detail), ..a.clone() }),
            $now
        );
        row
    }};
}
pub(crate) use set_plan_price;

pub(crate) const PLAN_COLUMNS: &str =
    "id, api_id, slug, name, rate_per_second, burst, monthly_quota, currency, flat_price_minor, unit_price_minor_per_1000, is_default";

/// A plan's fields an admin edits (prices belong to billing and are left alone).
#[derive(Debug, Clone)]
pub struct PlanLimits {
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Requests per second.
    pub rate_per_second: i64,
    /// Burst.
    pub burst: i64,
    /// Requests per period; `None` is unlimited.
    pub monthly_quota: Option<i64>,
    /// Given to new apps automatically (at most one per API: setting it clears the others).
    pub is_default: bool,
}

impl Store {
    /// Add a plan to an API. A taken slug is [`StoreError::Conflict`].
    pub async fn create_plan(&self, api_id: i64, plan: &NewPlan, now: i64) -> Result<Plan, StoreError> {
        Ok(in_tx!(self, tx => {
            let row: Plan = insert_plan!(tx, api_id, plan, now);
            record_change!(tx, ChangeKind::Api, api_id.to_string(), now);
            row
        }))
    }

    /// Change a plan's limits; every gateway re-reads them at once.
    pub async fn update_plan_limits(
        &self,
        plan_id: i64,
        rate_per_second: i64,
        burst: i64,
        monthly_quota: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let api: Option<(i64,)> = sqlx::query_as(
                "UPDATE plans SET rate_per_second = $2, burst = $3, monthly_quota = $4 WHERE id = $1 RETURNING api_id")
                .bind(plan_id).bind(rate_per_second).bind(burst).bind(monthly_quota).fetch_optional(&mut *tx).await?;
            let Some((api_id,)) = api else { return Err(StoreError::NotFound) };
            record_change!(tx, ChangeKind::Api, api_id.to_string(), now);
        });
        Ok(())
    }

    /// A plan's policy for a counter-store outage: `None` fails closed, `Some(secs)` fails open.
    pub async fn plan_failure_policy(&self, plan_id: i64) -> Result<Option<i64>, StoreError> {
        let row: Option<(String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT redis_failure_policy, fail_open_seconds FROM plans WHERE id = $1").bind(plan_id).fetch_optional(p).await?);
        let (policy, secs) = row.ok_or(StoreError::NotFound)?;
        Ok((policy == "open").then_some(secs))
    }

    /// Set a plan's policy for a counter-store outage: `None` fails closed (503), `Some(secs)`
    /// admits on local limits for that long. Gateways pick it up through the change log.
    pub async fn set_plan_failure_policy(&self, plan_id: i64, fail_open_seconds: Option<i64>, now: i64) -> Result<(), StoreError> {
        let (policy, secs) = failure_policy(fail_open_seconds);
        in_tx!(self, tx => {
            let api: Option<(i64,)> = sqlx::query_as(SET_FAILURE_POLICY).bind(plan_id).bind(policy).bind(secs).fetch_optional(&mut *tx).await?;
            let Some((api_id,)) = api else { return Err(StoreError::NotFound) };
            record_change!(tx, ChangeKind::Api, api_id.to_string(), now);
        });
        Ok(())
    }

    /// The admin's "new plan": add it to `api_id`, make it the API's only default when flagged,
    /// set its outage policy ([`Store::set_plan_failure_policy`]) and write `audit` (target: the
    /// new plan), all in one transaction. A taken slug is [`StoreError::Conflict`].
    pub async fn create_plan_audited(
        &self,
        api_id: i64,
        plan: &NewPlan,
        fail_open_seconds: Option<i64>,
        audit: &Audit,
        now: i64,
    ) -> Result<Plan, StoreError> {
        Ok(in_tx!(self, tx => create_plan_audited!(tx, api_id, plan, fail_open_seconds, audit, now)))
    }

    /// The plans of an API, cheapest first.
    pub async fn list_plans(&self, api_id: i64) -> Result<Vec<Plan>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE api_id = $1 ORDER BY flat_price_minor, id"))
            .bind(api_id).fetch_all(p).await?))
    }

    /// Every plan flagged default, one per API at most (the first by id).
    pub async fn default_plans(&self) -> Result<Vec<Plan>, StoreError> {
        let plans: Vec<Plan> = on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE is_default ORDER BY api_id, id"))
            .fetch_all(p).await?);
        let mut out: Vec<Plan> = Vec::new();
        for plan in plans {
            if out.last().map(|l| l.api_id) != Some(plan.api_id) {
                out.push(plan);
            }
        }
        Ok(out)
    }

    /// A plan by id.
    pub async fn get_plan(&self, id: i64) -> Result<Plan, StoreError> {
        on_pool!(self, p => sqlx::query_as(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
            .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// Change a plan's name, slug, limits, default flag and outage policy (never its prices) and
    /// write `audit`, in one transaction; when it becomes the default, the API's other plans stop
    /// being default. Gateways re-read the limits at once.
    pub async fn update_plan(
        &self,
        plan_id: i64,
        l: &PlanLimits,
        fail_open_seconds: Option<i64>,
        audit: &Audit,
        now: i64,
    ) -> Result<Plan, StoreError> {
        Ok(in_tx!(self, tx => update_plan!(tx, plan_id, l, fail_open_seconds, Some(audit), now)))
    }
}

pub(crate) const CLEAR_OTHER_DEFAULTS: &str = "UPDATE plans SET is_default = FALSE WHERE api_id = $1 AND id <> $2";
pub(crate) const SET_FAILURE_POLICY: &str =
    "UPDATE plans SET redis_failure_policy = $2, fail_open_seconds = $3 WHERE id = $1 RETURNING api_id";

/// The stored columns of an outage policy: `None` fails closed, `Some(secs)` fails open.
pub(crate) fn failure_policy(fail_open_seconds: Option<i64>) -> (&'static str, i64) {
    match fail_open_seconds {
        Some(s) => ("open", s.max(0)),
        None => ("closed", 300),
    }
}

// ---- Plan pricing (billing) ----

/// One version of a plan's price. `pricing` is `turnpike_billing::Pricing` as JSON; the store
/// keeps it opaque.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PlanPriceRow {
    /// Id (recorded on invoices).
    pub id: i64,
    /// Plan.
    pub plan_id: i64,
    /// 1, 2, … per plan.
    pub version: i64,
    /// ISO 4217 code, lower case.
    pub currency: String,
    /// The price description, JSON.
    pub pricing: String,
    /// Free trial length.
    pub trial_days: i64,
    /// `admitted` or `admitted_non_5xx`.
    pub billable: String,
    /// When this version was created (unix seconds).
    pub created_at: i64,
}

/// A new price version.
#[derive(Debug, Clone)]
pub struct NewPlanPrice {
    /// ISO 4217 code, lower case.
    pub currency: String,
    /// `turnpike_billing::Pricing` as JSON.
    pub pricing: String,
    /// Free trial length.
    pub trial_days: i64,
    /// `admitted` or `admitted_non_5xx`.
    pub billable: String,
    /// Base fee (minor units), copied to `plans.flat_price_minor` for catalog ordering.
    pub base_fee: i64,
    /// `Some(q)`: set the plan's gateway quota to `q` (a hard cap, or `None` = unlimited).
    pub monthly_quota: Option<Option<i64>>,
}

pub(crate) const PRICE_COLUMNS: &str = "id, plan_id, version, currency, pricing, trial_days, billable, created_at";

impl Store {
    /// Every plan of every API, by API then price.
    pub async fn list_all_plans(&self) -> Result<Vec<Plan>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!("SELECT {PLAN_COLUMNS} FROM plans ORDER BY api_id, flat_price_minor, id"))
            .fetch_all(p).await?))
    }

    /// Store a new price version for `plan_id` (version = previous + 1) and apply its quota to the
    /// plan; gateways re-read the plan at once.
    pub async fn set_plan_price(&self, plan_id: i64, price: &NewPlanPrice, now: i64) -> Result<PlanPriceRow, StoreError> {
        self.set_plan_price_audited(plan_id, price, None, now).await
    }

    /// [`Store::set_plan_price`] and `audit`, in one transaction; the audit detail is prefixed
    /// with the new version (`v3: …`).
    pub async fn set_plan_price_audited(
        &self,
        plan_id: i64,
        price: &NewPlanPrice,
        audit: Option<&Audit>,
        now: i64,
    ) -> Result<PlanPriceRow, StoreError> {
        Ok(in_tx!(self, tx => set_plan_price!(tx, plan_id, price, audit, now)))
    }

    /// The price version in effect at `at`: the newest created at or before it, else the first
    /// version ever (a price set after `at` still applies to a plan that had none). `None` when the
    /// plan has no stored price (its legacy columns apply).
    pub async fn plan_price_at(&self, plan_id: i64, at: i64) -> Result<Option<PlanPriceRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PRICE_COLUMNS} FROM plan_prices WHERE plan_id = $1
             ORDER BY CASE WHEN created_at <= $2 THEN 0 ELSE 1 END, CASE WHEN created_at <= $2 THEN -version ELSE version END LIMIT 1"))
            .bind(plan_id).bind(at).fetch_optional(p).await?))
    }

    /// A price version by id.
    pub async fn get_plan_price(&self, id: i64) -> Result<PlanPriceRow, StoreError> {
        on_pool!(self, p => sqlx::query_as(&format!("SELECT {PRICE_COLUMNS} FROM plan_prices WHERE id = $1"))
            .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// Every price version of a plan, newest first.
    pub async fn plan_price_history(&self, plan_id: i64) -> Result<Vec<PlanPriceRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PRICE_COLUMNS} FROM plan_prices WHERE plan_id = $1 ORDER BY version DESC"))
            .bind(plan_id).fetch_all(p).await?))
    }
}
