//! An app's API keys: list, create (the secret is in that one response only), revoke.

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use turnpike_store::{KeyRecord, KeyStatus};
use utoipa::ToSchema;

use super::apps::{owned_app, NameIn};
use super::auth::Caller;
use super::problem::{ApiJson, ApiPath, ApiResult, BodyErrors, OwnedErrors, Problem, WriteErrors};
use crate::{service, PortalState};

/// A key's lifecycle state.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatusOut {
    /// Usable (until `expires_at`, if set).
    Active,
    /// Revoked by its owner.
    Revoked,
    /// Suspended by an admin.
    Suspended,
}

/// An API key, never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    /// Id.
    pub id: i64,
    /// Owning app.
    pub app_id: i64,
    /// Label.
    pub name: String,
    /// First characters of the key, safe to show.
    pub prefix: String,
    /// State.
    pub status: KeyStatusOut,
    /// Created (unix seconds).
    pub created_at: i64,
    /// Last request seen by a gateway (unix seconds).
    pub last_used_at: Option<i64>,
    /// End of a rotation grace period (unix seconds).
    pub expires_at: Option<i64>,
}

impl From<KeyRecord> for KeyOut {
    fn from(k: KeyRecord) -> Self {
        KeyOut {
            id: k.id,
            app_id: k.app_id,
            name: k.name,
            prefix: k.display_prefix,
            status: match k.status {
                KeyStatus::Active => KeyStatusOut::Active,
                KeyStatus::Revoked => KeyStatusOut::Revoked,
                KeyStatus::Suspended => KeyStatusOut::Suspended,
            },
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
        }
    }
}

/// A new key with its secret: shown in this response only, stored as a hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key.
    pub key: KeyOut,
    /// The full secret, `tp_live_…`. Save it now: it is never shown again.
    pub secret: String,
}

/// The app's keys, newest first.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}/keys", tag = "keys",
    params(("app_id" = i64, Path, description = "App id")),
    responses((status = 200, description = "The app's keys", body = Vec<KeyOut>), OwnedErrors))]
pub async fn list_keys(State(state): State<PortalState>, caller: Caller, ApiPath(app_id): ApiPath<i64>) -> ApiResult<Json<Vec<KeyOut>>> {
    let app = owned_app(&state, &caller, app_id).await?;
    Ok(Json(state.store.list_keys(app.id).await?.into_iter().map(KeyOut::from).collect()))
}

/// Create a key; the response holds its secret, once.
#[utoipa::path(post, path = "/api/v1/apps/{app_id}/keys", tag = "keys", request_body = NameIn,
    params(("app_id" = i64, Path, description = "App id")),
    responses(
        (status = 201, description = "Created; `secret` is shown this once", body = CreatedKey),
        WriteErrors, BodyErrors,
        (status = 403, description = "CSRF check failed (cookie-authenticated requests only), the token lacks the `developer` scope, \
            or the account's email address is not verified yet (`urn:turnpike:problem:email-unverified`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_key(
    State(state): State<PortalState>,
    caller: Caller,
    ApiPath(app_id): ApiPath<i64>,
    ApiJson(body): ApiJson<NameIn>,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, &'static str); 1], Json<CreatedKey>)> {
    let app = owned_app(&state, &caller, app_id).await?;
    let new = service::keys::create_key(&state.store, &caller.account, &app, &body.name, state.clock.now()).await?;
    let created = CreatedKey { key: new.record.into(), secret: new.secret.expose().to_owned() };
    // The secret must not land in any cache.
    Ok((StatusCode::CREATED, [(CACHE_CONTROL, "no-store")], Json(created)))
}

/// Revoke a key; gateways refuse it within a second. Revoking a revoked key changes nothing.
#[utoipa::path(post, path = "/api/v1/apps/{app_id}/keys/{key_id}/revoke", tag = "keys",
    params(("app_id" = i64, Path, description = "App id"), ("key_id" = i64, Path, description = "Key id")),
    responses((status = 200, description = "Revoked", body = KeyOut), WriteErrors))]
pub async fn revoke_key(
    State(state): State<PortalState>,
    caller: Caller,
    ApiPath((app_id, key_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Json<KeyOut>> {
    let app = owned_app(&state, &caller, app_id).await?;
    Ok(Json(service::keys::revoke_key(&state.store, &caller.account, &app, turnpike_store::KeyId(key_id), state.clock.now()).await?.into()))
}
