//! The admin JSON API (`/api/v1/admin/…`): what the admin console does, for scripts and CI. Every
//! route takes an [`AdminCaller`] (an admin account; a token needs `admin:read` to read and
//! `admin:write` to change anything) and calls the same service function as the console's page,
//! so a rule lives in one place.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use turnpike_store::{AccountId, Api, AuditFilter, DeveloperRow, InvoiceId, InvoiceSummary, KeyId};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use super::auth::AdminCaller;
use super::problem::{query_rejection, ApiError, ApiPath, ApiResult, FieldError, Problem};
use crate::service;
use crate::PortalState;

/// Largest page a list returns.
const MAX_PER_PAGE: i64 = 100;

/// Errors of an admin operation.
#[derive(IntoResponses)]
pub enum AdminErrors {
    /// No valid session or personal access token.
    #[response(status = 401, description = "Not authenticated", content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Not an admin account (`admin-only`), or a token without the scope (`insufficient-scope`).
    #[response(status = 403, description = "Not an admin, or the token lacks the scope", content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource.
    #[response(status = 404, description = "Not found", content_type = "application/problem+json")]
    NotFound(Problem),
    /// The resource's state forbids the change; nothing changed.
    #[response(status = 409, description = "Conflict", content_type = "application/problem+json")]
    Conflict(Problem),
    /// Server failure.
    #[response(status = 500, description = "Internal error", content_type = "application/problem+json")]
    Internal(Problem),
}

/// `(offset, per_page)` of a page query, or the problem.
fn paging(page: Option<i64>, per_page: Option<i64>) -> ApiResult<(i64, i64)> {
    let (page, per_page) = (page.unwrap_or(1), per_page.unwrap_or(50));
    let mut errors = Vec::new();
    if !(1..=1_000_000).contains(&page) {
        errors.push(FieldError::new("page", "must be from 1 to 1000000"));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        errors.push(FieldError::new("per_page", "must be from 1 to 100"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(((page - 1) * per_page, per_page))
}

/// An upstream target.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetOut {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Relative weight.
    pub weight: u32,
}

/// A published API as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminApiOut {
    /// Id.
    pub id: i64,
    /// URL-safe identifier.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description (Markdown).
    pub description: String,
    /// Path prefix on the gateway, e.g. `/echo`.
    pub route_prefix: String,
    /// Host the API answers on, if restricted to one.
    pub host: Option<String>,
    /// Upstream targets.
    pub targets: Vec<TargetOut>,
    /// `draft`, `public` or `private`.
    pub visibility: String,
    /// Whether an OpenAPI document is stored (`GET …/openapi` returns it).
    pub has_openapi: bool,
    /// Whether the gateway routes it.
    pub routed: bool,
    /// Why the gateway routes none of it, when it does not.
    pub not_routed_reason: Option<String>,
    /// Last change (unix seconds).
    pub updated_at: i64,
}

impl From<&Api> for AdminApiOut {
    fn from(a: &Api) -> Self {
        // A draft is never routed, whatever its targets (the console's badge says the same).
        let reason = if a.visibility == turnpike_store::Visibility::Draft {
            Some("a draft: the gateway routes it once it is public or private".to_owned())
        } else {
            a.unroutable_reason()
        };
        AdminApiOut {
            id: a.id,
            slug: a.slug.clone(),
            name: a.name.clone(),
            description: a.description.clone(),
            route_prefix: a.route_prefix.clone(),
            host: a.host.clone(),
            targets: a.upstreams.iter().map(|u| TargetOut { url: u.url.clone(), weight: u.weight }).collect(),
            visibility: a.visibility.as_str().to_owned(),
            has_openapi: a.openapi.is_some(),
            routed: reason.is_none(),
            not_routed_reason: reason,
            updated_at: a.updated_at,
        }
    }
}

/// Every API, public and private.
#[utoipa::path(get, path = "/api/v1/admin/apis", tag = "admin",
    responses((status = 200, description = "Every API", body = Vec<AdminApiOut>), AdminErrors))]
pub async fn list_apis(State(state): State<PortalState>, _admin: AdminCaller) -> ApiResult<Json<Vec<AdminApiOut>>> {
    Ok(Json(state.store.list_apis().await?.iter().map(AdminApiOut::from).collect()))
}

/// One API.
#[utoipa::path(get, path = "/api/v1/admin/apis/{api_id}", tag = "admin",
    params(("api_id" = i64, Path, description = "API id")),
    responses((status = 200, description = "The API", body = AdminApiOut), AdminErrors))]
pub async fn get_api(State(state): State<PortalState>, _admin: AdminCaller, ApiPath(api_id): ApiPath<i64>) -> ApiResult<Json<AdminApiOut>> {
    Ok(Json(AdminApiOut::from(&state.store.get_api(api_id).await?)))
}

/// The API's stored OpenAPI document, as uploaded (JSON).
#[utoipa::path(get, path = "/api/v1/admin/apis/{api_id}/openapi", tag = "admin",
    params(("api_id" = i64, Path, description = "API id")),
    responses((status = 200, description = "The document", content_type = "application/json", body = Object), AdminErrors))]
pub async fn get_api_openapi(State(state): State<PortalState>, _admin: AdminCaller, ApiPath(api_id): ApiPath<i64>) -> ApiResult<Response> {
    let doc = state.store.api_document(api_id).await?.ok_or(ApiError::NotFound)?;
    Ok(([(CONTENT_TYPE, "application/json")], doc).into_response())
}

/// A page of developers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeveloperPage {
    /// The page's rows.
    pub developers: Vec<DeveloperRow>,
    /// Whether another page follows.
    pub has_more: bool,
}

/// `?q=&page=&per_page=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeveloperQuery {
    /// Part of the email address (case-insensitive).
    pub q: Option<String>,
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Rows per page, 1 to 100 (default 50).
    pub per_page: Option<i64>,
}

/// Developers, newest first, optionally by part of their email address.
#[utoipa::path(get, path = "/api/v1/admin/developers", tag = "admin", params(DeveloperQuery),
    responses((status = 200, description = "A page of developers", body = DeveloperPage),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid paging", body = Problem, content_type = "application/problem+json"),
        AdminErrors))]
pub async fn list_developers(
    State(state): State<PortalState>,
    _admin: AdminCaller,
    query: Result<Query<DeveloperQuery>, QueryRejection>,
) -> ApiResult<Json<DeveloperPage>> {
    let Query(q) = query.map_err(|r| query_rejection(&r))?;
    let (offset, per_page) = paging(q.page, q.per_page)?;
    let found = state.store.search_developers(q.q.as_deref().unwrap_or("").trim(), offset, per_page).await?;
    Ok(Json(DeveloperPage { developers: found.rows, has_more: found.has_more }))
}

/// Suspend a developer: no login, every key refused by the gateways within a second.
#[utoipa::path(post, path = "/api/v1/admin/developers/{account_id}/suspend", tag = "admin",
    params(("account_id" = i64, Path, description = "Developer's account id")),
    responses((status = 204, description = "Suspended (or already)"), AdminErrors))]
pub async fn suspend_developer(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(account_id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let account = service::developers::developer_account(&state.store, AccountId(account_id)).await?;
    service::developers::suspend(&state.store, AccountId(admin.account.id), &account, state.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reactivate a suspended developer.
#[utoipa::path(post, path = "/api/v1/admin/developers/{account_id}/reactivate", tag = "admin",
    params(("account_id" = i64, Path, description = "Developer's account id")),
    responses((status = 204, description = "Active (again)"), AdminErrors))]
pub async fn reactivate_developer(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(account_id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let account = service::developers::developer_account(&state.store, AccountId(account_id)).await?;
    service::developers::reactivate(&state.store, AccountId(admin.account.id), &account, state.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What suspending or reactivating a key did.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyChangeOut {
    /// The key's app.
    pub app_id: i64,
    /// The app's owner.
    pub account_id: i64,
    /// False when the key is revoked or already in the asked state (nothing was written).
    pub changed: bool,
}

async fn set_key(state: &PortalState, admin: &super::auth::Caller, key_id: i64, suspended: bool) -> ApiResult<Json<KeyChangeOut>> {
    let admin_id = AccountId(admin.account.id);
    let c = service::developers::set_key_suspended(&state.store, admin_id, KeyId(key_id), suspended, state.clock.now()).await?;
    Ok(Json(KeyChangeOut { app_id: c.app_id, account_id: c.account_id, changed: c.changed }))
}

/// Suspend one API key: the gateways refuse it within a second.
#[utoipa::path(post, path = "/api/v1/admin/keys/{key_id}/suspend", tag = "admin",
    params(("key_id" = i64, Path, description = "Key id")),
    responses((status = 200, description = "Suspended (or nothing to do)", body = KeyChangeOut), AdminErrors))]
pub async fn suspend_key(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(key_id): ApiPath<i64>,
) -> ApiResult<Json<KeyChangeOut>> {
    set_key(&state, &admin, key_id, true).await
}

/// Reactivate a suspended API key.
#[utoipa::path(post, path = "/api/v1/admin/keys/{key_id}/reactivate", tag = "admin",
    params(("key_id" = i64, Path, description = "Key id")),
    responses((status = 200, description = "Active again (or nothing to do)", body = KeyChangeOut), AdminErrors))]
pub async fn reactivate_key(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(key_id): ApiPath<i64>,
) -> ApiResult<Json<KeyChangeOut>> {
    set_key(&state, &admin, key_id, false).await
}

/// Every invoice, newest first.
#[utoipa::path(get, path = "/api/v1/admin/invoices", tag = "admin",
    responses((status = 200, description = "Invoices", body = Vec<InvoiceSummary>), AdminErrors))]
pub async fn list_invoices(State(state): State<PortalState>, _admin: AdminCaller) -> ApiResult<Json<Vec<InvoiceSummary>>> {
    Ok(Json(state.store.all_invoices().await?))
}

/// Mark an open invoice paid (e.g. a bank transfer arrived).
#[utoipa::path(post, path = "/api/v1/admin/invoices/{invoice_id}/paid", tag = "admin",
    params(("invoice_id" = i64, Path, description = "Invoice id")),
    responses((status = 204, description = "Paid"), AdminErrors))]
pub async fn mark_invoice_paid(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(invoice_id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    service::invoices::mark_paid(&state.store, Some(AccountId(admin.account.id)), InvoiceId(invoice_id), state.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Void an open invoice.
#[utoipa::path(post, path = "/api/v1/admin/invoices/{invoice_id}/void", tag = "admin",
    params(("invoice_id" = i64, Path, description = "Invoice id")),
    responses((status = 204, description = "Void"), AdminErrors))]
pub async fn void_invoice(
    State(state): State<PortalState>,
    AdminCaller(admin): AdminCaller,
    ApiPath(invoice_id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    service::invoices::void(&state.store, Some(AccountId(admin.account.id)), InvoiceId(invoice_id), state.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An audit log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditOut {
    /// Id.
    pub id: i64,
    /// When (unix seconds).
    pub at: i64,
    /// Acting account (none: the system or the CLI).
    pub actor_id: Option<i64>,
    /// Its email.
    pub actor_email: Option<String>,
    /// e.g. `api.update`, `key.revoke`.
    pub action: String,
    /// e.g. `api:3`.
    pub target: String,
    /// What changed (never a secret).
    pub detail: String,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The page's entries, newest first.
    pub entries: Vec<AuditOut>,
    /// Whether another page follows.
    pub has_more: bool,
}

/// `?action=&actor_id=&target=&since=&until=&page=&per_page=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// An exact action (`api.update`) or a prefix ending in a dot (`key.`).
    pub action: Option<String>,
    /// Only this account's actions.
    pub actor_id: Option<i64>,
    /// Only entries about this target, e.g. `api:3`, `plan:7`, `key:12`.
    pub target: Option<String>,
    /// Only entries at or after this time (unix seconds).
    pub since: Option<i64>,
    /// Only entries before this time (unix seconds).
    pub until: Option<i64>,
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Rows per page, 1 to 100 (default 50).
    pub per_page: Option<i64>,
}

/// The audit log, newest first, filtered and paginated.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, description = "A page of the audit log", body = AuditPage),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid paging", body = Problem, content_type = "application/problem+json"),
        AdminErrors))]
pub async fn audit_log(
    State(state): State<PortalState>,
    _admin: AdminCaller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    let Query(q) = query.map_err(|r| query_rejection(&r))?;
    let (offset, per_page) = paging(q.page, q.per_page)?;
    let filter = AuditFilter {
        action: q.action.filter(|a| !a.trim().is_empty()),
        actor_id: q.actor_id,
        target: q.target.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
        since: q.since,
        until: q.until,
    };
    let found = state.store.search_audit(&filter, offset, per_page).await?;
    Ok(Json(AuditPage {
        entries: found
            .rows
            .into_iter()
            .map(|r| AuditOut {
                id: r.entry.id,
                at: r.entry.at,
                actor_id: r.entry.actor_id,
                actor_email: r.actor_email,
                action: r.entry.action,
                target: r.entry.target,
                detail: r.entry.detail,
            })
            .collect(),
        has_more: found.has_more,
    }))
}
