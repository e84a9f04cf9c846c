//! `GET /api/v1/apis`, `GET /api/v1/apis/{slug}`: the published catalog. Public, like the
//! catalog pages: no authentication needed.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use turnpike_store::{Api, Plan, Visibility};
use utoipa::ToSchema;

use super::problem::{ApiError, ApiPath, ApiResult, Problem};
use crate::PortalState;

/// A plan on offer: limits and prices (money in minor units of `currency`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanOut {
    /// Id.
    pub id: i64,
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Sustained requests per second.
    pub rate_per_second: i64,
    /// Requests allowed at once above the sustained rate.
    pub burst: i64,
    /// Requests per monthly billing period; null is unlimited.
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

impl From<&Plan> for PlanOut {
    fn from(p: &Plan) -> Self {
        PlanOut {
            id: p.id,
            slug: p.slug.clone(),
            name: p.name.clone(),
            rate_per_second: p.rate_per_second,
            burst: p.burst,
            monthly_quota: p.monthly_quota,
            currency: p.currency.clone(),
            flat_price_minor: p.flat_price_minor,
            unit_price_minor_per_1000: p.unit_price_minor_per_1000,
            is_default: p.is_default,
        }
    }
}

/// A published API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiOut {
    /// Id.
    pub id: i64,
    /// URL-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Where to call it through the gateway.
    pub base_url: String,
    /// Whether an OpenAPI document is published at `openapi_url`.
    pub has_openapi: bool,
    /// The API's own OpenAPI document (relative to the portal).
    pub openapi_url: String,
    /// The plans on offer.
    pub plans: Vec<PlanOut>,
}

fn api_out(state: &PortalState, api: &Api, plans: &[Plan]) -> ApiOut {
    ApiOut {
        id: api.id,
        slug: api.slug.clone(),
        name: api.name.clone(),
        description: api.description.clone(),
        base_url: format!("{}{}", state.config.gateway_url.trim_end_matches('/'), api.route_prefix),
        has_openapi: api.openapi.is_some(),
        openapi_url: format!("/apis/{}/openapi.json", api.slug),
        plans: plans.iter().map(PlanOut::from).collect(),
    }
}

/// The public catalog.
#[utoipa::path(get, path = "/api/v1/apis", tag = "catalog", security(()),
    responses(
        (status = 200, description = "Public APIs with their plans", body = Vec<ApiOut>),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_apis(State(state): State<PortalState>) -> ApiResult<Json<Vec<ApiOut>>> {
    let mut out = Vec::new();
    // Like the HTML catalog: public APIs the gateway routes (see `Api::unroutable_reason`).
    for api in state.store.list_apis().await?.iter().filter(|a| a.visibility == Visibility::Public && a.unroutable_reason().is_none()) {
        let plans = state.store.list_plans(api.id).await?;
        out.push(api_out(&state, api, &plans));
    }
    Ok(Json(out))
}

/// One API by slug (public or private; drafts are not found).
#[utoipa::path(get, path = "/api/v1/apis/{slug}", tag = "catalog", security(()),
    params(("slug" = String, Path, description = "The API's slug")),
    responses(
        (status = 200, description = "The API with its plans", body = ApiOut),
        (status = 404, description = "No such API", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_api(State(state): State<PortalState>, ApiPath(slug): ApiPath<String>) -> ApiResult<Json<ApiOut>> {
    let api = state.store.get_api_by_slug(&slug).await?;
    if api.visibility == Visibility::Draft {
        return Err(ApiError::NotFound);
    }
    let plans = state.store.list_plans(api.id).await?;
    Ok(Json(api_out(&state, &api, &plans)))
}
