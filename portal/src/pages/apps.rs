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
use turnpike_store::{App, KeyId, KeyStatus, StoreError};

use super::{owned_app, parse_id};
use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::{PortalError, PortalResult};
use crate::format::{count, datetime, month_start};
use crate::service::{self, NameError, ServiceError};
use crate::views::ApiView;
use crate::PortalState;

/// Longest app or key name (the rule lives in [`crate::service`]).
pub use crate::service::MAX_NAME_CHARS;

/// What the page says about a refused app or key name.
fn name_message(e: NameError, what: &str) -> String {
    match e {
        NameError::Empty => format!("Give your {what} a name."),
        NameError::TooLong => format!("Use at most {MAX_NAME_CHARS} characters for the {what} name."),
        NameError::ControlCharacter => format!("The {what} name cannot contain control characters."),
    }
}

/// A refusal the page shows in a flash on the app page; anything else is an error page.
fn flash_text(e: &ServiceError, what: &str) -> Option<String> {
    match e {
        ServiceError::InvalidName(n) => Some(name_message(*n, what)),
        ServiceError::EmailUnverified => Some(
            "Confirm your email address before creating keys: open the link we emailed you (or resend it from the dashboard).".to_owned(),
        ),
        _ => None,
    }
}

/// A refused app name as the form shows it again: status, the value to put back in the field
/// (trimmed when the name itself was fine but taken) and the message. Other errors pass on.
fn app_name_refusal(e: ServiceError, typed: String) -> PortalResult<(StatusCode, String, String)> {
    match e {
        ServiceError::InvalidName(e) => Ok((StatusCode::UNPROCESSABLE_ENTITY, typed, name_message(e, "app"))),
        ServiceError::AppNameTaken(name) => {
            Ok((StatusCode::CONFLICT, name.clone(), format!("You already have an app called “{name}”. Pick another name.")))
        }
        e => Err(e.into()),
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
    let actor = ctx.require_account()?;
    let refused = match service::apps::create_app(&state.store, actor, &form.name, state.clock.now()).await {
        Ok(app) => {
            ctx.flash(FlashKind::Success, format!("Created “{}”. Create a key to start calling APIs.", app.name)).await?;
            return Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response());
        }
        Err(e) => e,
    };
    let (status, typed, msg) = app_name_refusal(refused, form.name)?;
    super::dashboard::render_with_error(&state, &ctx, status, typed, &msg).await
}

/// `/apps/{id}/keys/{key_id}/…`: the app (owned, else 404) and the key id (a number, else 404).
async fn owned_key_path(state: &PortalState, ctx: &Ctx, app_id: &str, key_id: &str) -> PortalResult<(App, KeyId)> {
    Ok((owned_app(state, ctx, app_id).await?, KeyId(parse_id(key_id)?)))
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
    let refused = match service::apps::rename_app(&state.store, ctx.require_account()?, &app, &form.name, state.clock.now()).await {
        Ok(renamed) => {
            ctx.flash(FlashKind::Success, format!("Renamed the app to “{}”.", renamed.name)).await?;
            return Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response());
        }
        Err(e) => e,
    };
    let (status, typed, msg) = app_name_refusal(refused, form.name)?;
    let page = render_app(&state, &ctx, app, Some((typed, msg)), None).await?;
    Ok((status, page).into_response())
}

/// `POST /apps/{id}/keys/{key_id}/rename`.
pub async fn rename_key(
    State(state): State<PortalState>,
    ctx: Ctx,
    Path((id, key_id)): Path<(String, String)>,
    Form(form): Form<NameForm>,
) -> PortalResult<Response> {
    let (app, key_id) = owned_key_path(&state, &ctx, &id, &key_id).await?;
    match service::keys::rename_key(&state.store, ctx.require_account()?, &app, key_id, &form.name, state.clock.now()).await {
        Ok(()) => {
            ctx.flash(FlashKind::Success, format!("Renamed the key to “{}”.", form.name.trim())).await?;
            Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response())
        }
        Err(ServiceError::InvalidName(e)) => {
            let page = render_app(&state, &ctx, app, None, Some((key_id.get(), form.name, name_message(e, "key")))).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
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
    let (app, key_id) = owned_key_path(&state, &ctx, &id, &key_id).await?;
    let old = state.store.get_key(app.id, key_id.get()).await.map_err(not_found)?;
    let Some(grace) = form.grace.trim().parse::<i64>().ok().filter(|g| GRACES.iter().any(|(s, _)| s == g)) else {
        ctx.flash(FlashKind::Error, "Choose how long the old key keeps working.").await?;
        return Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response());
    };
    let now = state.clock.now();
    let rotated = match service::keys::rotate_key(&state.store, ctx.require_account()?, &app, key_id, grace, now).await {
        Ok(r) => r,
        Err(ServiceError::NotRotatable) => {
            let msg = format!("The key “{}” can no longer be rotated: it is revoked, suspended or already expiring.", old.name);
            ctx.flash(FlashKind::Error, msg).await?;
            return Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let old_note = if grace == 0 {
        format!("The old key {}… stopped working now.", old.display_prefix)
    } else {
        format!("The old key {}… keeps working until {}; switch your clients before then.", old.display_prefix, datetime(now + grace))
    };
    key_created_response(&state, &ctx, app, rotated.new.record.name, &rotated.new.secret, Some(old_note)).await
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
    match service::keys::create_key(&state.store, ctx.require_account()?, &app, &form.name, state.clock.now()).await {
        Ok(new) => key_created_response(&state, &ctx, app, new.record.name, &new.secret, None).await,
        Err(e) => match flash_text(&e, "key") {
            Some(msg) => {
                ctx.flash(FlashKind::Error, msg).await?;
                Ok(Redirect::to(&format!("/apps/{}", app.id)).into_response())
            }
            None => Err(e.into()),
        },
    }
}

/// `POST /apps/{id}/keys/{key_id}/revoke`.
pub async fn revoke_key(State(state): State<PortalState>, ctx: Ctx, Path((id, key_id)): Path<(String, String)>) -> PortalResult<Response> {
    let (app, key_id) = owned_key_path(&state, &ctx, &id, &key_id).await?;
    service::keys::revoke_key(&state.store, ctx.require_account()?, &app, key_id, state.clock.now()).await?;
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
