//! Apps: list, create, get, rename, delete. Another developer's app is a 404.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use turnpike_store::App;
use utoipa::ToSchema;

use super::auth::Caller;
use super::problem::{ApiJson, ApiPath, ApiResult, BodyErrors, OwnedErrors, Problem, ScopedErrors, WriteErrors};
use crate::service;
use crate::PortalState;
use turnpike_store::{AccountId, AppId};

/// An app: owns keys and subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppOut {
    /// Id.
    pub id: i64,
    /// Name, unique among the developer's apps.
    pub name: String,
    /// Created (unix seconds).
    pub created_at: i64,
}

impl From<App> for AppOut {
    fn from(a: App) -> Self {
        AppOut { id: a.id, name: a.name, created_at: a.created_at }
    }
}

/// A name for an app or a key. Other fields are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NameIn {
    /// 1–80 characters after trimming, no control characters.
    #[schema(min_length = 1, max_length = 80, example = "Billing bot")]
    pub name: String,
}

/// The app, if the caller owns it.
pub(crate) async fn owned_app(state: &PortalState, caller: &Caller, app_id: i64) -> ApiResult<App> {
    Ok(service::apps::owned_app(&state.store, AccountId(caller.account.id), AppId(app_id)).await?)
}

/// The caller's apps, oldest first.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps",
    responses((status = 200, description = "The caller's apps", body = Vec<AppOut>), ScopedErrors))]
pub async fn list_apps(State(state): State<PortalState>, caller: Caller) -> ApiResult<Json<Vec<AppOut>>> {
    Ok(Json(state.store.list_apps(caller.account.id).await?.into_iter().map(AppOut::from).collect()))
}

/// Create an app, subscribed to the default plan of every public API.
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", request_body = NameIn,
    responses(
        (status = 201, description = "Created", body = AppOut),
        (status = 409, description = "Name already used by another of the caller's apps", body = Problem, content_type = "application/problem+json"),
        ScopedErrors, BodyErrors,
    ))]
pub async fn create_app(
    State(state): State<PortalState>,
    caller: Caller,
    ApiJson(body): ApiJson<NameIn>,
) -> ApiResult<(StatusCode, Json<AppOut>)> {
    let app = service::apps::create_app(&state.store, &caller.account, &body.name, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(app.into())))
}

/// One of the caller's apps.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}", tag = "apps",
    params(("app_id" = i64, Path, description = "App id")),
    responses((status = 200, description = "The app", body = AppOut), OwnedErrors))]
pub async fn get_app(State(state): State<PortalState>, caller: Caller, ApiPath(app_id): ApiPath<i64>) -> ApiResult<Json<AppOut>> {
    Ok(Json(owned_app(&state, &caller, app_id).await?.into()))
}

/// Rename one of the caller's apps.
#[utoipa::path(patch, path = "/api/v1/apps/{app_id}", tag = "apps", request_body = NameIn,
    params(("app_id" = i64, Path, description = "App id")),
    responses(
        (status = 200, description = "Renamed", body = AppOut),
        (status = 409, description = "Name already used by another of the caller's apps", body = Problem, content_type = "application/problem+json"),
        WriteErrors, BodyErrors,
    ))]
pub async fn rename_app(
    State(state): State<PortalState>,
    caller: Caller,
    ApiPath(app_id): ApiPath<i64>,
    ApiJson(body): ApiJson<NameIn>,
) -> ApiResult<Json<AppOut>> {
    let app = owned_app(&state, &caller, app_id).await?;
    Ok(Json(service::apps::rename_app(&state.store, &caller.account, &app, &body.name, state.clock.now()).await?.into()))
}

/// Delete one of the caller's apps with its keys (refused by gateways at once) and
/// subscriptions. An app with metered usage or invoices is kept (409): that history is the API
/// owner's books; revoke its keys instead.
#[utoipa::path(delete, path = "/api/v1/apps/{app_id}", tag = "apps",
    params(("app_id" = i64, Path, description = "App id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The app has metered usage or invoices and is kept", body = Problem, content_type = "application/problem+json"),
        WriteErrors))]
pub async fn delete_app(State(state): State<PortalState>, caller: Caller, ApiPath(app_id): ApiPath<i64>) -> ApiResult<StatusCode> {
    let app = owned_app(&state, &caller, app_id).await?;
    service::apps::delete_app(&state.store, &caller.account, &app, state.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
