//! An app's subscriptions (with what the gateway enforces) and its usage over a period: calls by
//! status class per key, and quota used and left in each subscription's current billing period.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use turnpike_store::clock::hour_start;
use turnpike_store::period::monthly_period;
use turnpike_store::{Api, KeyUsage};
use utoipa::{IntoParams, ToSchema};

use super::apps::owned_app;
use super::auth::Caller;
use super::problem::{query_rejection, ApiError, ApiPath, ApiResult, FieldError, OwnedErrors, Problem};
use crate::format::month_start;
use crate::PortalState;

/// Longest usage range one request may ask for: a bit over a year.
const MAX_RANGE_SECS: i64 = 400 * 86_400;

/// An app's subscription to one API, with the limits its plan sets and its current period.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionOut {
    /// Id.
    pub id: i64,
    /// API id.
    pub api_id: i64,
    /// API slug.
    pub api_slug: String,
    /// API display name.
    pub api_name: String,
    /// Plan id.
    pub plan_id: i64,
    /// Plan slug.
    pub plan_slug: String,
    /// Plan display name.
    pub plan_name: String,
    /// `active`, `past_due` or `canceled`.
    pub status: String,
    /// Sustained requests per second.
    pub rate_per_second: i64,
    /// Burst.
    pub burst: i64,
    /// Requests per billing period; null is unlimited.
    pub monthly_quota: Option<i64>,
    /// Billing periods start on this instant's day and time each month (unix seconds).
    pub billing_anchor: i64,
    /// Start of the current billing period (unix seconds).
    pub period_start: i64,
    /// End (exclusive) of the current billing period (unix seconds).
    pub period_end: i64,
}

/// Calls by outcome.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Counts {
    /// Requests admitted (the billable count).
    pub calls: i64,
    /// Responses 2xx.
    pub status_2xx: i64,
    /// Responses 3xx.
    pub status_3xx: i64,
    /// Responses 4xx.
    pub status_4xx: i64,
    /// Responses 5xx.
    pub status_5xx: i64,
}

impl Counts {
    fn add(&mut self, u: &KeyUsage) {
        self.calls += u.admitted;
        self.status_2xx += u.status_2xx;
        self.status_3xx += u.status_3xx;
        self.status_4xx += u.status_4xx;
        self.status_5xx += u.status_5xx;
    }
}

/// One key's usage in the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyUsageOut {
    /// Key id.
    pub key_id: i64,
    /// Key label.
    pub name: String,
    /// Key prefix.
    pub prefix: String,
    /// Calls by outcome.
    #[serde(flatten)]
    pub counts: Counts,
}

/// Quota of one subscription in its current billing period.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaOut {
    /// Subscription id.
    pub subscription_id: i64,
    /// API slug.
    pub api_slug: String,
    /// Plan slug.
    pub plan_slug: String,
    /// Start of the current billing period (unix seconds).
    pub period_start: i64,
    /// End (exclusive) of the current billing period (unix seconds).
    pub period_end: i64,
    /// Requests per period; null is unlimited.
    pub quota: Option<i64>,
    /// Requests admitted so far this period.
    pub used: i64,
    /// Requests left this period; null is unlimited.
    pub left: Option<i64>,
}

/// An app's usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageOut {
    /// App id.
    pub app_id: i64,
    /// Range start (unix seconds, inclusive; usage is counted per hour).
    pub from: i64,
    /// Range end (unix seconds, exclusive).
    pub to: i64,
    /// All keys together.
    pub totals: Counts,
    /// Per key; keys without traffic in the range are listed with zeros.
    pub keys: Vec<KeyUsageOut>,
    /// Quota used and left per subscription, in each one's current billing period.
    pub quotas: Vec<QuotaOut>,
}

/// The usage range.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Range start, unix seconds (default: the start of the current UTC month).
    pub from: Option<i64>,
    /// Range end, unix seconds, exclusive (default: the end of the current hour).
    pub to: Option<i64>,
}

fn api_of(apis: &[Api], id: i64) -> (String, String) {
    apis.iter().find(|a| a.id == id).map_or_else(|| (String::new(), String::new()), |a| (a.slug.clone(), a.name.clone()))
}

/// The app's subscriptions with their limits.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}/subscriptions", tag = "usage",
    params(("app_id" = i64, Path, description = "App id")),
    responses((status = 200, description = "The app's subscriptions", body = Vec<SubscriptionOut>), OwnedErrors))]
pub async fn list_subscriptions(
    State(state): State<PortalState>,
    caller: Caller,
    ApiPath(app_id): ApiPath<i64>,
) -> ApiResult<Json<Vec<SubscriptionOut>>> {
    let app = owned_app(&state, &caller, app_id).await?;
    let now = state.clock.now();
    let apis = state.store.list_apis().await?;
    let mut out = Vec::new();
    for e in state.store.entitlements(app.id).await? {
        let (api_slug, api_name) = api_of(&apis, e.api_id);
        let plan_name = state.store.list_plans(e.api_id).await?.into_iter().find(|p| p.id == e.plan_id).map(|p| p.name).unwrap_or_default();
        let period = monthly_period(e.billing_anchor, now);
        out.push(SubscriptionOut {
            id: e.subscription_id,
            api_id: e.api_id,
            api_slug,
            api_name,
            plan_id: e.plan_id,
            plan_slug: e.plan_slug,
            plan_name,
            status: e.status,
            rate_per_second: e.rate_per_second,
            burst: e.burst,
            monthly_quota: e.monthly_quota,
            billing_anchor: e.billing_anchor,
            period_start: period.start,
            period_end: period.end,
        });
    }
    out.sort_by_key(|s| s.id);
    Ok(Json(out))
}

/// The app's usage in `[from, to)`, per key, and quota used and left this billing period.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}/usage", tag = "usage",
    params(("app_id" = i64, Path, description = "App id"), UsageQuery),
    responses(
        (status = 200, description = "Usage", body = UsageOut),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid range", body = Problem, content_type = "application/problem+json"),
        OwnedErrors,
    ))]
pub async fn app_usage(
    State(state): State<PortalState>,
    caller: Caller,
    ApiPath(app_id): ApiPath<i64>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Json<UsageOut>> {
    let app = owned_app(&state, &caller, app_id).await?;
    let now = state.clock.now();
    let (from, to) = range(query, now)?;
    let usage = state.store.app_key_usage(app.id, from, to).await?;
    let mut totals = Counts::default();
    let mut keys = Vec::new();
    for k in state.store.list_keys(app.id).await? {
        let mut counts = Counts::default();
        if let Some(u) = usage.iter().find(|u| u.key_id == k.id) {
            counts.add(u);
            totals.add(u);
        }
        keys.push(KeyUsageOut { key_id: k.id, name: k.name, prefix: k.display_prefix, counts });
    }

    let apis = state.store.list_apis().await?;
    let mut quotas = Vec::new();
    for e in state.store.entitlements(app.id).await? {
        let period = monthly_period(e.billing_anchor, now);
        let used = state.store.subscription_usage(e.subscription_id, period.start, period.end).await?;
        quotas.push(QuotaOut {
            subscription_id: e.subscription_id,
            api_slug: api_of(&apis, e.api_id).0,
            plan_slug: e.plan_slug,
            period_start: period.start,
            period_end: period.end,
            quota: e.monthly_quota,
            used,
            left: e.monthly_quota.map(|q| q.saturating_sub(used).max(0)),
        });
    }
    quotas.sort_by_key(|q| q.subscription_id);
    Ok(Json(UsageOut { app_id: app.id, from, to, totals, keys, quotas }))
}

/// `[from, to)` from the query, with the defaults, or the problem.
fn range(query: Result<Query<UsageQuery>, QueryRejection>, now: i64) -> ApiResult<(i64, i64)> {
    let Query(q) = query.map_err(|r| query_rejection(&r))?;
    let from = q.from.unwrap_or_else(|| month_start(now));
    let to = q.to.unwrap_or_else(|| hour_start(now).saturating_add(3600));
    let mut errors = Vec::new();
    if from < 0 {
        errors.push(FieldError::new("from", "must not be negative"));
    }
    if to <= from {
        errors.push(FieldError::new("to", "must be after `from`"));
    } else if to.saturating_sub(from) > MAX_RANGE_SECS {
        errors.push(FieldError::new("to", "the range must be at most 400 days"));
    }
    if errors.is_empty() {
        Ok((from, to))
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// One key's usage over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyUsageReport {
    /// App id.
    pub app_id: i64,
    /// Range start (unix seconds, inclusive; usage is counted per hour).
    pub from: i64,
    /// Range end (unix seconds, exclusive).
    pub to: i64,
    /// The key and its calls by outcome.
    #[serde(flatten)]
    pub key: KeyUsageOut,
}

/// One key's usage in `[from, to)`.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}/keys/{key_id}/usage", tag = "usage",
    params(("app_id" = i64, Path, description = "App id"), ("key_id" = i64, Path, description = "Key id"), UsageQuery),
    responses(
        (status = 200, description = "Usage", body = KeyUsageReport),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid range", body = Problem, content_type = "application/problem+json"),
        OwnedErrors,
    ))]
pub async fn key_usage(
    State(state): State<PortalState>,
    caller: Caller,
    ApiPath((app_id, key_id)): ApiPath<(i64, i64)>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Json<KeyUsageReport>> {
    let app = owned_app(&state, &caller, app_id).await?;
    let key = state.store.list_keys(app.id).await?.into_iter().find(|k| k.id == key_id).ok_or(ApiError::NotFound)?;
    let (from, to) = range(query, state.clock.now())?;
    let mut counts = Counts::default();
    if let Some(u) = state.store.app_key_usage(app.id, from, to).await?.iter().find(|u| u.key_id == key.id) {
        counts.add(u);
    }
    Ok(Json(KeyUsageReport {
        app_id: app.id,
        from,
        to,
        key: KeyUsageOut { key_id: key.id, name: key.name, prefix: key.display_prefix, counts },
    }))
}
