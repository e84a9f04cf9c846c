//! Apps and their API keys.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Form;
use serde::Deserialize;
use turnpike_store::domain::ApiKey;
use turnpike_store::{App, KeyStatus, StoreError};

use super::parse_id;
use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::{PortalError, PortalResult};
use crate::format::{count, datetime, month_start};
use crate::views::ApiView;
use crate::PortalState;

/// Longest app or key name.
pub const MAX_NAME_CHARS: usize = 80;

/// A trimmed name of 1–80 printable characters.
fn parse_name(raw: &str, what: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        Err(format!("Give your {what} a name."))
    } else if name.chars().count() > MAX_NAME_CHARS {
        Err(format!("Use at most {MAX_NAME_CHARS} characters for the {what} name."))
    } else if name.chars().any(char::is_control) {
        Err(format!("The {what} name cannot contain control characters."))
    } else {
        Ok(name.to_owned())
    }
}

/// A form with one `name` field.
#[derive(Debug, Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

/// `POST /apps`: create an app on the free plans of the public APIs.
pub async fn create_app(State(state): State<PortalState>, ctx: Ctx, Form(form): Form<NameForm>) -> PortalResult<Response> {
    let account_id = ctx.require_account()?.id;
    let name = match parse_name(&form.name, "app") {
        Ok(n) => n,
        Err(msg) => {
            return super::dashboard::render_with_error(&state, &ctx, StatusCode::UNPROCESSABLE_ENTITY, form.name, &msg).await;
        }
    };
    let now = state.clock.now();
    let app = match state.store.create_app(account_id, &name, now).await {
        Ok(app) => app,
        Err(StoreError::Conflict) => {
            let msg = format!("You already have an app called “{name}”. Pick another name.");
            return super::dashboard::render_with_error(&state, &ctx, StatusCode::CONFLICT, name, &msg).await;
        }
        Err(e) => return Err(e.into()),
    };
    state.store.subscribe_defaults(app.id, now).await?;
    state.store.audit(Some(account_id), "app.create", &format!("app:{}", app.id), &app.name, now).await?;
    ctx.flash(FlashKind::Success, format!("Created “{}”. Create a key to start calling APIs.", app.name)).await?;
    Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response())
}

/// The app, if the logged-in account owns it; 404 otherwise (never 403).
pub(crate) async fn owned_app(state: &PortalState, ctx: &Ctx, raw_id: &str) -> PortalResult<App> {
    let account_id = ctx.require_account()?.id;
    let app_id = parse_id(raw_id)?;
    state.store.get_app(account_id, app_id).await.map_err(|e| match e {
        StoreError::NotFound => PortalError::NotFound,
        e => e.into(),
    })
}

/// A subscription row.
#[derive(Debug, Clone)]
pub struct SubscriptionView {
    /// API display name.
    pub api_name: String,
    /// API slug, for the link.
    pub api_slug: String,
    /// Plan display name.
    pub plan_name: String,
    /// `active`, `past_due`, `canceled`.
    pub status: String,
}

/// A key row: never the secret.
#[derive(Debug, Clone)]
pub struct KeyView {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// Safe prefix.
    pub prefix: String,
    /// Badge class: `active`, `rotating`, `expired`, `revoked`, `suspended`.
    pub status: &'static str,
    /// When a rotating key stops working, e.g. "2026-05-29 20:00 UTC".
    pub expires: Option<String>,
    /// Created.
    pub created: String,
    /// Last used, or "Never".
    pub last_used: String,
    /// Calls this month.
    pub calls: String,
}

impl KeyView {
    /// Whether the owner can still revoke it.
    pub fn is_active(&self) -> bool {
        matches!(self.status, "active" | "rotating")
    }

    /// Whether it can be rotated (an active key without a pending expiry).
    pub fn can_rotate(&self) -> bool {
        self.status == "active"
    }
}

/// `GET /apps/{id}`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "app.html")]
pub struct AppPage {
    chrome: Chrome,
    app: App,
    created: String,
    subscriptions: Vec<SubscriptionView>,
    keys: Vec<KeyView>,
    /// A refused rename: `(what was typed, why)`; the app rename form opens with it.
    rename_error: Option<(String, String)>,
    /// A refused key rename: `(key id, what was typed, why)`.
    key_error: Option<(i64, String, String)>,
    /// The rotation grace choices: `(seconds, label)`.
    graces: &'static [(i64, &'static str)],
}

impl AppPage {
    /// The value of the app rename field.
    pub fn rename_value(&self) -> &str {
        self.rename_error.as_ref().map_or(self.app.name.as_str(), |(v, _)| v.as_str())
    }

    /// The error for key `id`'s rename form, if that one was refused.
    pub fn key_error_for(&self, id: &i64) -> Option<&str> {
        self.key_error.as_ref().filter(|(k, _, _)| k == id).map(|(_, _, e)| e.as_str())
    }

    /// The value of key `id`'s rename field.
    pub fn key_value_for<'a>(&'a self, key: &'a KeyView) -> &'a str {
        self.key_error.as_ref().filter(|(k, _, _)| *k == key.id).map_or(key.name.as_str(), |(_, v, _)| v.as_str())
    }
}

/// Rotation grace periods offered: none, 1 hour, 24 hours, 7 days.
pub const GRACES: &[(i64, &str)] = &[(0, "None: the old key stops at once"), (3_600, "1 hour"), (86_400, "24 hours"), (604_800, "7 days")];

/// The app's subscriptions joined with API and plan names, and the APIs themselves.
async fn subscribed_apis(state: &PortalState, app_id: i64) -> PortalResult<Vec<(SubscriptionView, ApiView)>> {
    let subs = state.store.list_subscriptions(app_id).await?;
    if subs.is_empty() {
        return Ok(Vec::new());
    }
    let apis = state.store.list_apis().await?;
    let mut out = Vec::new();
    for sub in subs {
        let Some(api) = apis.iter().find(|a| a.id == sub.api_id) else {
            continue;
        };
        let plans = state.store.list_plans(api.id).await?;
        let plan_name = plans.iter().find(|p| p.id == sub.plan_id).map_or_else(|| "—".to_owned(), |p| p.name.clone());
        let view = SubscriptionView { api_name: api.name.clone(), api_slug: api.slug.clone(), plan_name, status: sub.status };
        out.push((view, ApiView::new(api, &plans, &state.config.gateway_url)));
    }
    Ok(out)
}

/// `GET /apps/{id}`: subscriptions, keys, the create-key form.
pub async fn app_detail(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<AppPage> {
    let app = owned_app(&state, &ctx, &id).await?;
    render_app(&state, &ctx, app, None, None).await
}

/// A key's status at `now`, and when a rotating key stops working.
fn key_status(k: &turnpike_store::KeyRecord, now: i64) -> (&'static str, Option<String>) {
    match (k.status, k.expires_at) {
        (KeyStatus::Active, Some(t)) if t <= now => ("expired", None),
        (KeyStatus::Active, Some(t)) => ("rotating", Some(datetime(t))),
        (KeyStatus::Active, None) => ("active", None),
        (KeyStatus::Revoked, _) => ("revoked", None),
        (KeyStatus::Suspended, _) => ("suspended", None),
    }
}

/// The app page, optionally with a refused rename shown in its form.
async fn render_app(
    state: &PortalState,
    ctx: &Ctx,
    app: App,
    rename_error: Option<(String, String)>,
    key_error: Option<(i64, String, String)>,
) -> PortalResult<AppPage> {
    let now = state.clock.now();
    let from = month_start(now);
    let usage = state.store.app_usage_by_key(app.id, from).await?;
    let keys = state
        .store
        .list_keys(app.id)
        .await?
        .into_iter()
        .map(|k| {
            let (status, expires) = key_status(&k, now);
            KeyView {
                id: k.id,
                calls: count(usage.iter().find(|(id, _, _)| *id == k.id).map_or(0, |(_, a, _)| *a)),
                status,
                expires,
                name: k.name,
                prefix: k.display_prefix,
                created: datetime(k.created_at),
                last_used: k.last_used_at.map_or_else(|| "Never".to_owned(), datetime),
            }
        })
        .collect();
    let subscriptions = subscribed_apis(state, app.id).await?.into_iter().map(|(s, _)| s).collect();
    Ok(AppPage {
        chrome: ctx.chrome().await?,
        created: datetime(app.created_at),
        app,
        subscriptions,
        keys,
        rename_error,
        key_error,
        graces: GRACES,
    })
}

/// `POST /apps/{id}/rename`.
pub async fn rename_app(
    State(state): State<PortalState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<NameForm>,
) -> PortalResult<Response> {
    let app = owned_app(&state, &ctx, &id).await?;
    let name = match parse_name(&form.name, "app") {
        Ok(n) => n,
        Err(msg) => {
            let page = render_app(&state, &ctx, app, Some((form.name, msg)), None).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let now = state.clock.now();
    match state.store.rename_app(app.account_id, app.id, &name).await {
        Ok(_) => {}
        Err(StoreError::Conflict) => {
            let msg = format!("You already have an app called “{name}”. Pick another name.");
            let page = render_app(&state, &ctx, app, Some((name, msg)), None).await?;
            return Ok((StatusCode::CONFLICT, page).into_response());
        }
        Err(StoreError::NotFound) => return Err(PortalError::NotFound),
        Err(e) => return Err(e.into()),
    }
    state.store.audit(Some(app.account_id), "app.rename", &format!("app:{}", app.id), &name, now).await?;
    ctx.flash(FlashKind::Success, format!("Renamed the app to “{name}”.")).await?;
    Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response())
}

/// `POST /apps/{id}/keys/{key_id}/rename`.
pub async fn rename_key(
    State(state): State<PortalState>,
    ctx: Ctx,
    Path((id, key_id)): Path<(String, String)>,
    Form(form): Form<NameForm>,
) -> PortalResult<Response> {
    let app = owned_app(&state, &ctx, &id).await?;
    let key_id = parse_id(&key_id)?;
    // Someone else's key id through one's own app is a 404 too, before any validation message.
    state.store.get_key(app.id, key_id).await.map_err(not_found)?;
    let name = match parse_name(&form.name, "key") {
        Ok(n) => n,
        Err(msg) => {
            let page = render_app(&state, &ctx, app, None, Some((key_id, form.name, msg))).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let now = state.clock.now();
    state.store.rename_key(app.id, key_id, &name).await.map_err(not_found)?;
    state.store.audit(Some(app.account_id), "key.rename", &format!("key:{key_id}"), &name, now).await?;
    ctx.flash(FlashKind::Success, format!("Renamed the key to “{name}”.")).await?;
    Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response())
}

/// The rotate form.
#[derive(Debug, Deserialize)]
pub struct RotateForm {
    #[serde(default)]
    grace: String,
}

/// `POST /apps/{id}/keys/{key_id}/rotate`: a new key under the same name, shown once; the old
/// one keeps working for the chosen grace period.
pub async fn rotate_key(
    State(state): State<PortalState>,
    ctx: Ctx,
    Path((id, key_id)): Path<(String, String)>,
    Form(form): Form<RotateForm>,
) -> PortalResult<Response> {
    let app = owned_app(&state, &ctx, &id).await?;
    let key_id = parse_id(&key_id)?;
    let old = state.store.get_key(app.id, key_id).await.map_err(not_found)?;
    let Some(grace) = form.grace.trim().parse::<i64>().ok().filter(|g| GRACES.iter().any(|(s, _)| s == g)) else {
        ctx.flash(FlashKind::Error, "Choose how long the old key keeps working.").await?;
        return Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response());
    };
    let now = state.clock.now();
    let key = ApiKey::generate();
    let record = match state.store.rotate_key(app.id, key_id, &key, grace, now).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => {
            ctx.flash(
                FlashKind::Error,
                format!("The key “{}” can no longer be rotated: it is revoked, suspended or already expiring.", old.name),
            )
            .await?;
            return Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let detail = format!("{} ({}… replaces {}…, grace {grace} s)", record.name, record.display_prefix, old.display_prefix);
    state.store.audit(Some(app.account_id), "key.rotate", &format!("key:{key_id}"), &detail, now).await?;
    let old_note = if grace == 0 {
        format!("The old key {}… stopped working now.", old.display_prefix)
    } else {
        format!("The old key {}… keeps working until {}; switch your clients before then.", old.display_prefix, datetime(now + grace))
    };
    key_created_response(&state, &ctx, app, record.name, &key, Some(old_note)).await
}

fn not_found(e: StoreError) -> PortalError {
    match e {
        StoreError::NotFound => PortalError::NotFound,
        e => e.into(),
    }
}

/// The page that shows a new key's secret, once.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "key_created.html")]
pub struct KeyCreatedPage {
    chrome: Chrome,
    app: App,
    key_name: String,
    secret: String,
    /// `(API name, curl line)` per subscribed API.
    examples: Vec<(String, String)>,
    /// `(API name, slug)` of subscribed APIs with an OpenAPI document, for "Try it in the docs".
    docs: Vec<(String, String)>,
    /// After a rotation: what happens to the old key.
    old_key_note: Option<String>,
}

/// The one-time secret page, never cached.
async fn key_created_response(
    state: &PortalState,
    ctx: &Ctx,
    app: App,
    key_name: String,
    key: &ApiKey,
    old_key_note: Option<String>,
) -> PortalResult<Response> {
    let apis = subscribed_apis(state, app.id).await?;
    let docs = apis.iter().filter(|(_, api)| api.has_openapi).map(|(s, api)| (s.api_name.clone(), api.slug.clone())).collect();
    let examples = apis.into_iter().map(|(s, api)| (s.api_name, api.curl(key.expose()))).collect();
    let page = KeyCreatedPage { chrome: ctx.chrome().await?, app, key_name, secret: key.expose().to_owned(), examples, docs, old_key_note };
    // The secret must not land in any cache, nor come back with the browser's Back button.
    Ok(([(CACHE_CONTROL, "no-store")], page).into_response())
}

/// `POST /apps/{id}/keys`: create a key and show its secret this one time.
pub async fn create_key(
    State(state): State<PortalState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<NameForm>,
) -> PortalResult<Response> {
    let app = owned_app(&state, &ctx, &id).await?;
    let account_id = app.account_id;
    let name = match parse_name(&form.name, "key") {
        Ok(n) => n,
        Err(msg) => {
            ctx.flash(FlashKind::Error, msg).await?;
            return Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response());
        }
    };
    let now = state.clock.now();
    let key = ApiKey::generate();
    let record = state.store.create_key(app.id, &name, &key, now).await?;
    let detail = format!("{} ({}…)", record.name, record.display_prefix);
    state.store.audit(Some(account_id), "key.create", &format!("key:{}", record.id), &detail, now).await?;
    key_created_response(&state, &ctx, app, record.name, &key, None).await
}

/// `POST /apps/{id}/keys/{key_id}/revoke`.
pub async fn revoke_key(State(state): State<PortalState>, ctx: Ctx, Path((id, key_id)): Path<(String, String)>) -> PortalResult<Response> {
    let app = owned_app(&state, &ctx, &id).await?;
    let key_id = parse_id(&key_id)?;
    let now = state.clock.now();
    state.store.revoke_key(app.id, key_id, now).await.map_err(|e| match e {
        StoreError::NotFound => PortalError::NotFound,
        e => e.into(),
    })?;
    state.store.audit(Some(app.account_id), "key.revoke", &format!("key:{key_id}"), "", now).await?;
    ctx.flash(FlashKind::Success, "Key revoked. Gateways refuse it within seconds.").await?;
    Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response())
}

/// Apps and their keys.
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new()
        .route("/apps", post(create_app))
        .route("/apps/{id}", get(app_detail))
        .route("/apps/{id}/keys", post(create_key))
        .route("/apps/{id}/keys/{key_id}/revoke", post(revoke_key))
        .route("/apps/{id}/rename", post(rename_app))
        .route("/apps/{id}/keys/{key_id}/rename", post(rename_key))
        .route("/apps/{id}/keys/{key_id}/rotate", post(rotate_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("  Billing bot ", "app"), Ok("Billing bot".to_owned()));
        assert!(parse_name("   ", "app").is_err());
        assert!(parse_name(&"x".repeat(81), "app").is_err());
        assert!(parse_name(&"é".repeat(80), "app").is_ok());
        assert!(parse_name("a\u{0}b", "app").is_err());
    }
}
