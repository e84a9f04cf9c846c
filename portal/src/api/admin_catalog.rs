//! The admin API's catalog writes (`/api/v1/admin/apis…`, `/api/v1/admin/plans…`): publish and
//! change APIs, upload their OpenAPI documents, add and change plans, set price versions. Each
//! handler only turns the JSON into the service's draft and calls the same service function as
//! the console's form ([`service::apis`], [`service::plans`], [`service::prices`]): a rule
//! lives in one place. A field that fails its rule is a 422 problem naming it; a taken slug or
//! route is a 409; either way nothing changed.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use turnpike_store::{AccountId, Api, ApiSettings, Lifecycle, Plan, PlanPriceRow};
use utoipa::ToSchema;

use super::admin::{AdminApiOut, AdminErrors};
use super::auth::AdminCaller;
use super::problem::{ApiError, ApiJson, ApiPath, ApiResult, BodyErrors, FieldError};
use crate::openapi_import::{self, ImportedSpec};
use crate::service::apis::{Draft, TargetDraft};
use crate::service::plans::PlanDraft;
use crate::service::{self, ServiceError};
use crate::PortalState;

/// An upstream target.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetIn {
    /// `http://` or `https://` URL with a host, optionally a port and a base path.
    pub url: String,
    /// Relative weight, 1–1000 (default 1).
    pub weight: Option<u32>,
}

/// An API's settings (`POST` and `PUT`: every setting; omitted optional ones take their
/// defaults).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiIn {
    /// URL-safe identifier (lower-case letters, digits, `-`).
    pub slug: String,
    /// Display name (1–80 characters).
    #[serde(default)]
    pub name: String,
    /// Description (at most 2000 characters).
    #[serde(default)]
    pub description: String,
    /// Gateway path prefix such as `/payments/v1`.
    pub route_prefix: String,
    /// Host to match (`api.example.com`); none: any host.
    pub host: Option<String>,
    /// Upstream targets (1–32).
    pub targets: Vec<TargetIn>,
    /// `draft` (default), `public` or `private`.
    pub visibility: Option<String>,
    /// `alpha`, `beta`, `stable` (default) or `deprecated`.
    pub lifecycle: Option<String>,
    /// Whether `?api_key=` is accepted (default false).
    pub allow_query_key: Option<bool>,
}

/// Some of an API's settings (`PATCH`): what is omitted stays.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiPatch {
    /// URL-safe identifier.
    pub slug: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Gateway path prefix.
    pub route_prefix: Option<String>,
    /// Host to match; an empty string: any host.
    pub host: Option<String>,
    /// Upstream targets (replace the list).
    pub targets: Option<Vec<TargetIn>>,
    /// `draft`, `public` or `private`.
    pub visibility: Option<String>,
    /// `alpha`, `beta`, `stable` or `deprecated`.
    pub lifecycle: Option<String>,
    /// Whether `?api_key=` is accepted.
    pub allow_query_key: Option<bool>,
}

/// An API with every setting an admin changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogApiOut {
    /// What the read routes show.
    #[serde(flatten)]
    pub api: AdminApiOut,
    /// `alpha`, `beta`, `stable` or `deprecated`.
    pub lifecycle: String,
    /// Whether `?api_key=` is accepted.
    pub allow_query_key: bool,
}

fn targets(t: &[TargetIn]) -> Vec<TargetDraft> {
    t.iter().map(|t| TargetDraft { url: t.url.clone(), weight: t.weight.map(|w| w.to_string()).unwrap_or_default() }).collect()
}

impl ApiIn {
    fn draft(&self) -> Draft {
        Draft {
            name: self.name.clone(),
            slug: self.slug.clone(),
            description: self.description.clone(),
            route_prefix: self.route_prefix.clone(),
            host: self.host.clone().unwrap_or_default(),
            upstreams: targets(&self.targets),
            visibility: self.visibility.clone().unwrap_or_else(|| "draft".into()),
            lifecycle: self.lifecycle.clone().unwrap_or_else(|| "stable".into()),
            allow_query_key: self.allow_query_key.unwrap_or(false),
        }
    }
}

impl ApiPatch {
    fn onto(&self, mut d: Draft) -> Draft {
        let set = |field: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                field.clone_from(v);
            }
        };
        set(&mut d.slug, &self.slug);
        set(&mut d.name, &self.name);
        set(&mut d.description, &self.description);
        set(&mut d.route_prefix, &self.route_prefix);
        set(&mut d.host, &self.host);
        set(&mut d.visibility, &self.visibility);
        set(&mut d.lifecycle, &self.lifecycle);
        if let Some(t) = &self.targets {
            d.upstreams = targets(t);
        }
        if let Some(q) = self.allow_query_key {
            d.allow_query_key = q;
        }
        d
    }
}

async fn out(state: &PortalState, api: &Api) -> ApiResult<CatalogApiOut> {
    let lifecycle = state.store.api_lifecycle(api.id).await?;
    Ok(CatalogApiOut { api: AdminApiOut::from(api), lifecycle: lifecycle.as_str().to_owned(), allow_query_key: api.allow_query_key })
}

/// The stored settings of `api`, unchanged (for a document upload).
fn stored_settings(api: &Api, lifecycle: Lifecycle) -> ApiSettings {
    ApiSettings {
        slug: api.slug.clone(),
        name: api.name.clone(),
        description: api.description.clone(),
        route_prefix: api.route_prefix.clone(),
        host: api.host.clone(),
        upstreams: api.upstreams.clone(),
        visibility: api.visibility,
        allow_query_key: api.allow_query_key,
        lifecycle,
    }
}

/// Publish a new API; gateways route it within a second unless it is a draft.
#[utoipa::path(post, path = "/api/v1/admin/apis", tag = "admin", request_body = ApiIn,
    responses((status = 201, description = "Created", body = CatalogApiOut), BodyErrors, AdminErrors))]
pub async fn create_api(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiJson(body): ApiJson<ApiIn>,
) -> ApiResult<(StatusCode, Json<CatalogApiOut>)> {
    let settings = service::apis::validate(&state.store, &body.draft(), None).await?;
    let api = service::apis::publish(&state.store, AccountId(admin.account.id), &settings, None, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(out(&state, &api).await?)))
}

async fn change_api(state: &PortalState, admin: &super::auth::Caller, api: &Api, d: &Draft) -> ApiResult<Json<CatalogApiOut>> {
    let settings = service::apis::validate(&state.store, d, Some(api.id)).await?;
    let api = service::apis::update(&state.store, AccountId(admin.account.id), api, &settings, None, state.clock.now()).await?;
    Ok(Json(out(state, &api).await?))
}

/// Replace an API's settings (its document is kept).
#[utoipa::path(put, path = "/api/v1/admin/apis/{api_id}", tag = "admin", request_body = ApiIn,
    params(("api_id" = i64, Path, description = "API id")),
    responses((status = 200, description = "Saved", body = CatalogApiOut), BodyErrors, AdminErrors))]
pub async fn replace_api(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(api_id): ApiPath<i64>,
    ApiJson(body): ApiJson<ApiIn>,
) -> ApiResult<Json<CatalogApiOut>> {
    let api = state.store.get_api(api_id).await?;
    change_api(&state, &admin, &api, &body.draft()).await
}

/// Change some of an API's settings; what is omitted stays.
#[utoipa::path(patch, path = "/api/v1/admin/apis/{api_id}", tag = "admin", request_body = ApiPatch,
    params(("api_id" = i64, Path, description = "API id")),
    responses((status = 200, description = "Saved", body = CatalogApiOut), BodyErrors, AdminErrors))]
pub async fn patch_api(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(api_id): ApiPath<i64>,
    ApiJson(body): ApiJson<ApiPatch>,
) -> ApiResult<Json<CatalogApiOut>> {
    let api = state.store.get_api(api_id).await?;
    let lifecycle = state.store.api_lifecycle(api.id).await?;
    change_api(&state, &admin, &api, &body.onto(Draft::of(&api, lifecycle))).await
}

/// The import's problems as field errors of `openapi`.
fn spec_problems(errors: Vec<String>) -> ApiError {
    ApiError::Validation(errors.into_iter().map(|m| FieldError::new("openapi", m)).collect())
}

/// Read and import an uploaded document (JSON or YAML), with the console's rules.
pub(crate) async fn read_spec(body: Body) -> ApiResult<ImportedSpec> {
    // The console's upload limit (`security::MAX_UPLOAD_BYTES`): the document's limit plus room.
    let bytes = axum::body::to_bytes(body, openapi_import::MAX_SPEC_BYTES + 1024 * 1024)
        .await
        .map_err(|_| ApiError::BadRequest { status: StatusCode::PAYLOAD_TOO_LARGE, detail: "The document is too large.".into() })?;
    openapi_import::import(&bytes).map_err(spec_problems)
}

/// Upload (replace) an API's OpenAPI document, as JSON or YAML (OpenAPI 3.x; the console's
/// import rules). The catalog and the gateways use it within a second.
#[utoipa::path(put, path = "/api/v1/admin/apis/{api_id}/openapi", tag = "admin",
    request_body(content = Object, content_type = "application/json", description = "The OpenAPI document (JSON, or YAML sent as `application/yaml`)"),
    params(("api_id" = i64, Path, description = "API id")),
    responses((status = 200, description = "Stored", body = CatalogApiOut),
        (status = 413, description = "Body too large", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an OpenAPI document this import accepts; nothing changed", body = super::problem::Problem, content_type = "application/problem+json"),
        AdminErrors))]
pub async fn put_api_openapi(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(api_id): ApiPath<i64>,
    body: Body,
) -> ApiResult<Json<CatalogApiOut>> {
    let api = state.store.get_api(api_id).await?;
    let spec = read_spec(body).await?;
    let lifecycle = state.store.api_lifecycle(api.id).await?;
    let settings = stored_settings(&api, lifecycle);
    let api = service::apis::update(&state.store, AccountId(admin.account.id), &api, &settings, Some(&spec), state.clock.now()).await?;
    Ok(Json(out(&state, &api).await?))
}

/// A plan with its limits and outage policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminPlanOut {
    /// Id.
    pub id: i64,
    /// The API's id.
    pub api_id: i64,
    /// URL-safe identifier, unique per API.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Sustained requests per second.
    pub rate_per_second: i64,
    /// Requests allowed at once above the rate.
    pub burst: i64,
    /// Requests per billing period; none: unlimited.
    pub monthly_quota: Option<i64>,
    /// Given to new apps automatically.
    pub is_default: bool,
    /// Seconds each gateway admits on local limits while Redis is unreachable; none: refuse (503).
    pub fail_open_seconds: Option<i64>,
}

async fn plan_out(state: &PortalState, p: &Plan) -> ApiResult<AdminPlanOut> {
    Ok(AdminPlanOut {
        id: p.id,
        api_id: p.api_id,
        slug: p.slug.clone(),
        name: p.name.clone(),
        rate_per_second: p.rate_per_second,
        burst: p.burst,
        monthly_quota: p.monthly_quota,
        is_default: p.is_default,
        fail_open_seconds: state.store.plan_failure_policy(p.id).await?,
    })
}

/// A new plan.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanIn {
    /// URL-safe identifier, unique per API.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Requests per second, 1–1,000,000.
    pub rate_per_second: i64,
    /// Burst, 1–10,000,000.
    pub burst: i64,
    /// Requests per billing period; none: unlimited.
    pub monthly_quota: Option<i64>,
    /// Given to new apps automatically (clears the API's other default).
    #[serde(default)]
    pub is_default: bool,
    /// Seconds of fail-open (1–86,400) while Redis is unreachable; none: refuse (503).
    pub fail_open_seconds: Option<i64>,
}

/// Some of a plan's settings; what is omitted stays. `monthly_quota` and `fail_open_seconds`
/// take `null` to clear them.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanPatch {
    /// URL-safe identifier.
    pub slug: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Requests per second.
    pub rate_per_second: Option<i64>,
    /// Burst.
    pub burst: Option<i64>,
    /// Requests per period (`null`: unlimited).
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<i64>)]
    pub monthly_quota: Option<Option<i64>>,
    /// Given to new apps automatically.
    pub is_default: Option<bool>,
    /// Fail-open seconds (`null`: fail closed).
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<i64>)]
    pub fail_open_seconds: Option<Option<i64>>,
}

/// A present field (even `null`) is `Some`.
fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// The plans of an API.
#[utoipa::path(get, path = "/api/v1/admin/apis/{api_id}/plans", tag = "admin",
    params(("api_id" = i64, Path, description = "API id")),
    responses((status = 200, description = "Its plans", body = Vec<AdminPlanOut>), AdminErrors))]
pub async fn list_plans(
    State(state): State<PortalState>,
    _admin: AdminCaller,
    ApiPath(api_id): ApiPath<i64>,
) -> ApiResult<Json<Vec<AdminPlanOut>>> {
    let api = state.store.get_api(api_id).await?;
    let mut out = Vec::new();
    for p in state.store.list_plans(api.id).await? {
        out.push(plan_out(&state, &p).await?);
    }
    Ok(Json(out))
}

/// Add a plan to an API (free until a price is set).
#[utoipa::path(post, path = "/api/v1/admin/apis/{api_id}/plans", tag = "admin", request_body = PlanIn,
    params(("api_id" = i64, Path, description = "API id")),
    responses((status = 201, description = "Created", body = AdminPlanOut), BodyErrors, AdminErrors))]
pub async fn create_plan(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(api_id): ApiPath<i64>,
    ApiJson(b): ApiJson<PlanIn>,
) -> ApiResult<(StatusCode, Json<AdminPlanOut>)> {
    let api = state.store.get_api(api_id).await?;
    let draft = PlanDraft::of_numbers(&b.name, &b.slug, b.rate_per_second, b.burst, b.monthly_quota, b.is_default, b.fail_open_seconds);
    let (limits, fail_open) = service::plans::check(&draft).map_err(ServiceError::Invalid)?;
    let plan = service::plans::create(&state.store, AccountId(admin.account.id), &api, &limits, fail_open, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(plan_out(&state, &plan).await?)))
}

/// One plan.
#[utoipa::path(get, path = "/api/v1/admin/plans/{plan_id}", tag = "admin",
    params(("plan_id" = i64, Path, description = "Plan id")),
    responses((status = 200, description = "The plan", body = AdminPlanOut), AdminErrors))]
pub async fn get_plan(
    State(state): State<PortalState>,
    _admin: AdminCaller,
    ApiPath(plan_id): ApiPath<i64>,
) -> ApiResult<Json<AdminPlanOut>> {
    Ok(Json(plan_out(&state, &state.store.get_plan(plan_id).await?).await?))
}

/// Change some of a plan's settings; gateways apply new limits within a second.
#[utoipa::path(patch, path = "/api/v1/admin/plans/{plan_id}", tag = "admin", request_body = PlanPatch,
    params(("plan_id" = i64, Path, description = "Plan id")),
    responses((status = 200, description = "Saved", body = AdminPlanOut), BodyErrors, AdminErrors))]
pub async fn patch_plan(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(plan_id): ApiPath<i64>,
    ApiJson(b): ApiJson<PlanPatch>,
) -> ApiResult<Json<AdminPlanOut>> {
    let plan = state.store.get_plan(plan_id).await?;
    let fail_open = state.store.plan_failure_policy(plan.id).await?;
    let draft = PlanDraft::of_numbers(
        b.name.as_deref().unwrap_or(&plan.name),
        b.slug.as_deref().unwrap_or(&plan.slug),
        b.rate_per_second.unwrap_or(plan.rate_per_second),
        b.burst.unwrap_or(plan.burst),
        b.monthly_quota.unwrap_or(plan.monthly_quota),
        b.is_default.unwrap_or(plan.is_default),
        b.fail_open_seconds.unwrap_or(fail_open),
    );
    let (limits, fail_open) = service::plans::check(&draft).map_err(ServiceError::Invalid)?;
    let plan = service::plans::update(&state.store, AccountId(admin.account.id), &plan, &limits, fail_open, state.clock.now()).await?;
    Ok(Json(plan_out(&state, &plan).await?))
}

/// A price version.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceOut {
    /// Id (recorded on invoices).
    pub id: i64,
    /// 1, 2, … per plan.
    pub version: i64,
    /// ISO 4217 code, lower case.
    pub currency: String,
    /// The pricing, e.g. `{"model": "flat", "amount": 4900}` (minor units).
    #[schema(value_type = Object)]
    pub pricing: serde_json::Value,
    /// Free trial days.
    pub trial_days: i64,
    /// `admitted` or `admitted_non_5xx`.
    pub billable: String,
    /// Created (unix seconds).
    pub created_at: i64,
}

impl From<PlanPriceRow> for PriceOut {
    fn from(r: PlanPriceRow) -> Self {
        PriceOut {
            id: r.id,
            version: r.version,
            currency: r.currency,
            pricing: serde_json::from_str(&r.pricing).unwrap_or(serde_json::Value::Null),
            trial_days: r.trial_days,
            billable: r.billable,
            created_at: r.created_at,
        }
    }
}

/// A new price version.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceIn {
    /// ISO 4217 code (`usd`, `EUR`).
    pub currency: String,
    /// The pricing: `{"model": "free"}`, `{"model": "flat", "amount": 4900}`, `{"model":
    /// "per_unit", "unit_price": 50, "per": 1000}`, `graduated`/`volume` with `tiers`, `package`,
    /// or `quota` (`base_fee`, `included`, `overage`); amounts in minor units.
    #[schema(value_type = Object)]
    pub pricing: serde_json::Value,
    /// Free trial days, 0–365 (default 0).
    #[serde(default)]
    pub trial_days: i64,
    /// `admitted` (default) or `admitted_non_5xx`.
    #[serde(default = "admitted")]
    pub billable: String,
}

fn admitted() -> String {
    "admitted".into()
}

/// A plan's price versions, newest first.
#[utoipa::path(get, path = "/api/v1/admin/plans/{plan_id}/prices", tag = "admin",
    params(("plan_id" = i64, Path, description = "Plan id")),
    responses((status = 200, description = "Price versions, newest first", body = Vec<PriceOut>), AdminErrors))]
pub async fn list_prices(
    State(state): State<PortalState>,
    _admin: AdminCaller,
    ApiPath(plan_id): ApiPath<i64>,
) -> ApiResult<Json<Vec<PriceOut>>> {
    let plan = state.store.get_plan(plan_id).await?;
    Ok(Json(state.store.plan_price_history(plan.id).await?.into_iter().map(PriceOut::from).collect()))
}

/// Set a new price version (versions are never changed, only added).
#[utoipa::path(post, path = "/api/v1/admin/plans/{plan_id}/prices", tag = "admin", request_body = PriceIn,
    params(("plan_id" = i64, Path, description = "Plan id")),
    responses((status = 201, description = "The new version", body = PriceOut), BodyErrors, AdminErrors))]
pub async fn create_price(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(plan_id): ApiPath<i64>,
    ApiJson(b): ApiJson<PriceIn>,
) -> ApiResult<(StatusCode, Json<PriceOut>)> {
    let plan = state.store.get_plan(plan_id).await?;
    let new = service::prices::check_price_parts(&b.currency, &b.pricing, b.trial_days, &b.billable)
        .map_err(|p| ServiceError::Invalid(vec![p]))?;
    let summary = service::prices::summary(&new);
    let row = service::plans::set_price(&state.store, Some(AccountId(admin.account.id)), &plan, &new, &summary, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(PriceOut::from(row))))
}
