//! The portal's JSON API under `/api/v1`, described at `/api/openapi.json` and rendered at
//! `/api/docs` (vendored Swagger UI).
//!
//! Callers authenticate with a personal access token (`Authorization: Bearer tp_pat_…`, created
//! at `/account/tokens`) or a portal session (writes then need the `X-CSRF-Token` header). Every
//! error is an RFC 9457 `application/problem+json` document; another developer's app or key is
//! a 404, never a 403. Unknown request fields (`role`, `plan`, `quota`, …) are ignored.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::PortalState;

pub mod admin;
pub mod admin_catalog;
pub mod admin_reports;
pub mod apps;
pub mod auth;
pub mod catalog;
pub mod docs;
pub mod keys;
pub mod problem;
pub mod tokens;
pub mod usage;

use auth::{AuthVia, Authenticated};
use problem::{ApiError, ApiResult, AuthErrors};

/// The calling developer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// Account id.
    pub id: i64,
    /// Email address.
    pub email: String,
    /// `developer` or `admin`.
    pub role: String,
    /// Whether the email address is verified.
    pub email_verified: bool,
    /// Created (unix seconds).
    pub created_at: i64,
    /// How this request authenticated: `session` or `token`.
    pub auth: String,
    /// What this request may do: the token's scopes, or everything the account's role allows
    /// (`developer`, `admin:read`, `admin:write`).
    pub scopes: Vec<String>,
}

/// The calling developer's account.
#[utoipa::path(get, path = "/api/v1/me", tag = "account", responses((status = 200, description = "The caller", body = Me), AuthErrors))]
pub async fn me(Authenticated(caller): Authenticated) -> ApiResult<Json<Me>> {
    let scopes = caller.effective_scopes().into_iter().map(str::to_owned).collect();
    let a = caller.account;
    Ok(Json(Me {
        id: a.id,
        email: a.email,
        role: match a.role {
            turnpike_store::Role::Admin => "admin",
            turnpike_store::Role::Developer => "developer",
        }
        .to_owned(),
        email_verified: a.email_verified_at.is_some(),
        created_at: a.created_at,
        auth: match caller.via {
            AuthVia::Session => "session",
            AuthVia::Token => "token",
        }
        .to_owned(),
        scopes,
    }))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Turnpike portal API",
        version = "1",
        description = "Manage your apps, API keys and subscriptions and read your usage. Authenticate with a personal access \
                       token (`Authorization: Bearer tp_pat_…`, create one at /account/tokens) or from a logged-in portal \
                       session (writes then need the `X-CSRF-Token` header). Errors are RFC 9457 problem documents. All times \
                       are unix seconds (UTC); money is in minor units.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    // Only the token is declared: it is the API's contract for scripts. Session calls (the portal's
    // own pages, "try it" on /api/docs) are described above; declaring the cookie would invite
    // clients to send a cookie with their token, which the CSRF guard then (rightly) refuses.
    security(("bearer" = [])),
    tags(
        (name = "account", description = "The caller"),
        (name = "catalog", description = "Published APIs and their plans"),
        (name = "apps", description = "Your apps"),
        (name = "keys", description = "Your apps' API keys"),
        (name = "usage", description = "Subscriptions, usage and quotas"),
        (name = "admin", description = "The admin console's actions, for admin accounts: a token needs `admin:read` to read and `admin:write` to change anything"),
    ),
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tp_pat_…")
                    .description(Some("A personal access token from /account/tokens."))
                    .build(),
            ),
        );
    }
}

fn router() -> (axum::Router<PortalState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me))
        .routes(routes!(catalog::list_apis))
        .routes(routes!(catalog::get_api))
        .routes(routes!(apps::list_apps, apps::create_app))
        .routes(routes!(apps::get_app, apps::rename_app, apps::delete_app))
        .routes(routes!(keys::list_keys, keys::create_key))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(usage::list_subscriptions))
        .routes(routes!(usage::app_usage))
        .routes(routes!(usage::key_usage))
        .routes(routes!(admin::list_apis, admin_catalog::create_api))
        .routes(routes!(admin::get_api, admin_catalog::replace_api, admin_catalog::patch_api))
        .routes(routes!(admin::get_api_openapi, admin_catalog::put_api_openapi))
        .routes(routes!(admin_catalog::list_plans, admin_catalog::create_plan))
        .routes(routes!(admin_catalog::get_plan, admin_catalog::patch_plan))
        .routes(routes!(admin_catalog::list_prices, admin_catalog::create_price))
        .routes(routes!(admin::list_developers))
        .routes(routes!(admin::suspend_developer))
        .routes(routes!(admin::reactivate_developer))
        .routes(routes!(admin::suspend_key))
        .routes(routes!(admin::reactivate_key))
        .routes(routes!(admin::list_invoices))
        .routes(routes!(admin::mark_invoice_paid))
        .routes(routes!(admin::void_invoice))
        .routes(routes!(admin::audit_log))
        .routes(routes!(admin_reports::revenue))
        .routes(routes!(admin_reports::usage))
        .split_for_parts()
}

/// The OpenAPI document of the JSON API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    router().1
}

/// The OpenAPI document as served: pretty JSON, ending in a newline.
pub fn openapi_json() -> String {
    let mut s = openapi().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

/// Unknown paths and unsupported methods under `/api/`: problem documents, not HTML.
async fn api_not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> axum::response::Response {
    problem::problem_response(&problem::Problem {
        type_: "urn:turnpike:problem:method-not-allowed".to_owned(),
        title: "Method not allowed".to_owned(),
        status: 405,
        detail: "This resource does not support that method.".to_owned(),
        errors: Vec::new(),
    })
}

/// The JSON API's routes, its document and its docs page, and the token pages.
pub fn routes() -> axum::Router<PortalState> {
    let (api, _) = router();
    let spec = openapi_json();
    api.method_not_allowed_fallback(method_not_allowed)
        .route(
            "/api/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move { ([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-cache")], spec).into_response() }
            }),
        )
        .route("/api/docs", get(docs::page))
        .route("/api/{*rest}", any(api_not_found))
        .merge(tokens::routes())
}
