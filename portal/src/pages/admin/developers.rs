//! Admin pages for developers: search by email, one developer's apps, keys and subscriptions,
//! and suspending or reactivating an account or a single key.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use turnpike_store::{AccountStatus, KeyStatus};

use super::common::{actor, page_offset, Section, PER_PAGE};
use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::PortalResult;
use crate::format::{count, datetime};
use crate::pages::parse_id;
use crate::service;
use crate::PortalState;

/// `?q=&page=`.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<String>,
}

/// A row of the developer list.
#[derive(Debug, Clone)]
pub struct DeveloperView {
    /// Account id.
    pub id: i64,
    /// Email.
    pub email: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Joined.
    pub created: String,
    /// Apps.
    pub apps: String,
    /// Active keys.
    pub active_keys: String,
}

/// `GET /admin/developers`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "admin/developers.html")]
pub struct DeveloperListPage {
    chrome: Chrome,
    section: Section,
    q: String,
    page: i64,
    developers: Vec<DeveloperView>,
    prev: Option<String>,
    next: Option<String>,
}

fn page_link(q: &str, page: i64) -> String {
    let q: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
    if q.is_empty() {
        format!("/admin/developers?page={page}")
    } else {
        format!("/admin/developers?q={q}&page={page}")
    }
}

/// `GET /admin/developers?q=&page=`: developers whose email contains `q`, newest first.
pub async fn list(State(state): State<PortalState>, ctx: Ctx, Query(query): Query<SearchQuery>) -> PortalResult<DeveloperListPage> {
    let (page, offset) = page_offset(query.page.as_deref());
    let q = query.q.trim().chars().take(200).collect::<String>();
    let found = state.store.search_developers(&q, offset, PER_PAGE).await?;
    let developers = found
        .rows
        .into_iter()
        .map(|d| DeveloperView {
            id: d.id,
            email: d.email,
            status: d.status,
            created: datetime(d.created_at),
            apps: count(d.apps),
            active_keys: count(d.active_keys),
        })
        .collect();
    Ok(DeveloperListPage {
        chrome: ctx.chrome().await?,
        section: Section::Developers,
        prev: (page > 1).then(|| page_link(&q, page - 1)),
        next: found.has_more.then(|| page_link(&q, page + 1)),
        q,
        page,
        developers,
    })
}

/// A key on the developer page.
#[derive(Debug, Clone)]
pub struct AdminKeyView {
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
    /// Last used or "Never".
    pub last_used: String,
}

/// A subscription on the developer page.
#[derive(Debug, Clone)]
pub struct AdminSubView {
    /// API name.
    pub api: String,
    /// API id, for the link.
    pub api_id: i64,
    /// Plan name.
    pub plan: String,
    /// Status.
    pub status: String,
    /// Since.
    pub since: String,
}

/// An app with its keys and subscriptions.
#[derive(Debug, Clone)]
pub struct AdminAppView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Created.
    pub created: String,
    /// Keys, newest first.
    pub keys: Vec<AdminKeyView>,
    /// Subscriptions.
    pub subscriptions: Vec<AdminSubView>,
}

/// `GET /admin/developers/{id}`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "admin/developer.html")]
pub struct DeveloperPage {
    chrome: Chrome,
    section: Section,
    id: i64,
    email: String,
    status: &'static str,
    verified: String,
    created: String,
    apps: Vec<AdminAppView>,
}

/// The developer account `raw_id`; admins' accounts are not managed here (404).
async fn developer(state: &PortalState, raw_id: &str) -> PortalResult<turnpike_store::Account> {
    Ok(service::developers::developer_account(&state.store, turnpike_store::AccountId(parse_id(raw_id)?)).await?)
}

fn key_status(s: KeyStatus) -> &'static str {
    match s {
        KeyStatus::Active => "active",
        KeyStatus::Revoked => "revoked",
        KeyStatus::Suspended => "suspended",
    }
}

/// `GET /admin/developers/{id}`: account, apps, keys and subscriptions.
pub async fn detail(State(state): State<PortalState>, mut ctx: Ctx, Path(id): Path<String>) -> PortalResult<DeveloperPage> {
    let account = developer(&state, &id).await?;
    ctx.ensure_csrf().await?;
    let apis = state.store.list_apis().await?;
    let mut apps = Vec::new();
    for app in state.store.list_apps(account.id).await? {
        let keys = state
            .store
            .list_keys(app.id)
            .await?
            .into_iter()
            .map(|k| AdminKeyView {
                id: k.id,
                name: k.name,
                prefix: k.display_prefix,
                status: key_status(k.status),
                created: datetime(k.created_at),
                last_used: k.last_used_at.map_or_else(|| "Never".to_owned(), datetime),
            })
            .collect();
        let mut subscriptions = Vec::new();
        for sub in state.store.list_subscriptions(app.id).await? {
            let api = apis.iter().find(|a| a.id == sub.api_id);
            let plan = state.store.get_plan(sub.plan_id).await.map(|p| p.name).unwrap_or_else(|_| "—".to_owned());
            subscriptions.push(AdminSubView {
                api: api.map_or_else(|| format!("API {}", sub.api_id), |a| a.name.clone()),
                api_id: sub.api_id,
                plan,
                status: sub.status,
                since: datetime(sub.billing_anchor),
            });
        }
        apps.push(AdminAppView { id: app.id, name: app.name, created: datetime(app.created_at), keys, subscriptions });
    }
    Ok(DeveloperPage {
        chrome: ctx.chrome().await?,
        section: Section::Developers,
        id: account.id,
        status: match account.status {
            AccountStatus::Active => "active",
            AccountStatus::Suspended => "suspended",
        },
        verified: account.email_verified_at.map_or_else(|| "Not verified".to_owned(), datetime),
        created: datetime(account.created_at),
        email: account.email,
        apps,
    })
}

/// `POST /admin/developers/{id}/suspend`: no login, every key refused by the gateways.
pub async fn suspend(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<Response> {
    let account = developer(&state, &id).await?;
    service::developers::suspend(&state.store, actor(&ctx)?, &account, state.clock.now()).await?;
    let text = format!("Suspended {}. Their keys are refused and their sessions end.", account.email);
    ctx.flash(FlashKind::Success, text).await?;
    Ok(Redirect::to(&format!("/admin/developers/{}", account.id)).into_response())
}

/// `POST /admin/developers/{id}/reactivate`.
pub async fn reactivate(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<Response> {
    let account = developer(&state, &id).await?;
    service::developers::reactivate(&state.store, actor(&ctx)?, &account, state.clock.now()).await?;
    ctx.flash(FlashKind::Success, format!("Reactivated {}.", account.email)).await?;
    Ok(Redirect::to(&format!("/admin/developers/{}", account.id)).into_response())
}

async fn set_key(state: &PortalState, ctx: &Ctx, raw_id: &str, suspended: bool) -> PortalResult<Response> {
    let admin = actor(ctx)?;
    let done =
        service::developers::set_key_suspended(&state.store, admin, turnpike_store::KeyId(parse_id(raw_id)?), suspended, state.clock.now())
            .await?;
    if done.changed {
        let verb = if suspended { "Suspended" } else { "Reactivated" };
        ctx.flash(FlashKind::Success, format!("{verb} the key. Gateways apply it within a second.")).await?;
    } else {
        ctx.flash(FlashKind::Error, "That key cannot change: it is revoked, or already in that state.").await?;
    }
    Ok(Redirect::to(&format!("/admin/developers/{}#app-{}", done.account_id, done.app_id)).into_response())
}

/// `POST /admin/keys/{id}/suspend`.
pub async fn suspend_key(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<Response> {
    set_key(&state, &ctx, &id, true).await
}

/// `POST /admin/keys/{id}/reactivate`.
pub async fn reactivate_key(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<Response> {
    set_key(&state, &ctx, &id, false).await
}
