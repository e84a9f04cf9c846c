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
async fn owned_app(state: &PortalState, ctx: &Ctx, raw_id: &str) -> PortalResult<App> {
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
    /// `active`, `revoked`, `suspended`.
    pub status: &'static str,
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
}

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
    let from = month_start(state.clock.now());
    let usage = state.store.app_usage_by_key(app.id, from).await?;
    let keys = state
        .store
        .list_keys(app.id)
        .await?
        .into_iter()
        .map(|k| KeyView {
            id: k.id,
            calls: count(usage.iter().find(|(id, _, _)| *id == k.id).map_or(0, |(_, a, _)| *a)),
            name: k.name,
            prefix: k.display_prefix,
            status: match k.status {
                KeyStatus::Active => "active",
                KeyStatus::Revoked => "revoked",
                KeyStatus::Suspended => "suspended",
            },
            created: datetime(k.created_at),
            last_used: k.last_used_at.map_or_else(|| "Never".to_owned(), datetime),
        })
        .collect();
    let subscriptions = subscribed_apis(&state, app.id).await?.into_iter().map(|(s, _)| s).collect();
    Ok(AppPage { chrome: ctx.chrome().await?, created: datetime(app.created_at), app, subscriptions, keys })
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
    let examples = subscribed_apis(&state, app.id).await?.into_iter().map(|(s, api)| (s.api_name, api.curl(key.expose()))).collect();
    let page = KeyCreatedPage { chrome: ctx.chrome().await?, app, key_name: record.name, secret: key.expose().to_owned(), examples };
    // The secret must not land in any cache, nor come back with the browser's Back button.
    Ok(([(CACHE_CONTROL, "no-store")], page).into_response())
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
