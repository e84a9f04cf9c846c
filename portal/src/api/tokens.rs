//! `/account/tokens`: create, list and revoke personal access tokens for the JSON API. A new
//! token is shown once, on the page that answers its creation; only its SHA-256 is stored.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Form;
use serde::Deserialize;
use turnpike_store::{PatRecord, PersonalToken, Role, Scope, Scopes, StoreError};

use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::PortalResult;
use crate::format::datetime;
use crate::service::MAX_NAME_CHARS;
use crate::PortalState;

/// Expiry choices offered by the form, in days; 0 is "never".
pub const EXPIRY_DAYS: [i64; 4] = [30, 90, 365, 0];

/// A token row: never the secret.
#[derive(Debug, Clone)]
pub struct TokenView {
    /// Id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// Safe prefix.
    pub prefix: String,
    /// Created.
    pub created: String,
    /// Last used, or "Never".
    pub last_used: String,
    /// Expiry, or "Never".
    pub expires: String,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    /// What it may do (`developer`, `admin:read`, `admin:write`).
    pub scopes: Vec<String>,
}

impl TokenView {
    fn new(t: &PatRecord, now: i64) -> TokenView {
        TokenView {
            id: t.id,
            name: t.name.clone(),
            prefix: t.display_prefix.clone(),
            created: datetime(t.created_at),
            last_used: t.last_used_at.map_or_else(|| "Never".to_owned(), datetime),
            expires: t.expires_at.map_or_else(|| "Never".to_owned(), datetime),
            scopes: t.scopes.split_whitespace().map(str::to_owned).collect(),
            status: if t.revoked_at.is_some() {
                "revoked"
            } else if t.is_usable(now) {
                "active"
            } else {
                "expired"
            },
        }
    }

    /// Whether the owner can still revoke it.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// The tokens page.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "tokens.html")]
pub struct TokensPage {
    chrome: Chrome,
    tokens: Vec<TokenView>,
    /// `(name, secret)` of the token just created: shown this once.
    created: Option<(String, String)>,
    /// Form error and the name typed.
    error: Option<String>,
    name: String,
    expiry_days: i64,
    /// The scopes ticked (on an error, as sent).
    scopes: Vec<Scope>,
    /// The account is an admin: the admin scopes are offered.
    admin: bool,
}

impl TokensPage {
    /// The scopes this account may give a token.
    pub fn scope_choices(&self) -> Vec<Scope> {
        Scope::ALL.into_iter().filter(|s| self.admin || !s.is_admin()).collect()
    }

    /// Whether `scope` is ticked.
    pub fn ticked(&self, scope: &Scope) -> bool {
        self.scopes.contains(scope)
    }

    /// What a scope lets a token do.
    pub fn scope_help(&self, scope: &Scope) -> &'static str {
        match scope {
            Scope::Developer => "your apps, keys, subscriptions and usage",
            Scope::AdminRead => "read the admin API: APIs, developers, invoices, audit log",
            Scope::AdminWrite => "change anything through the admin API",
        }
    }

    /// Label for an expiry choice.
    pub fn expiry_label(&self, days: &i64) -> String {
        if *days == 0 {
            "Never".to_owned()
        } else {
            format!("{days} days")
        }
    }

    /// The choices offered.
    pub fn expiry_choices(&self) -> &'static [i64] {
        &EXPIRY_DAYS
    }
}

async fn render(state: &PortalState, ctx: &mut Ctx, status: StatusCode, mut page: TokensPage) -> PortalResult<Response> {
    let account = ctx.require_account()?;
    let account_id = account.id;
    page.admin = account.role == Role::Admin;
    ctx.ensure_csrf().await?;
    let now = state.clock.now();
    page.tokens = state.store.list_pats(account_id).await?.iter().map(|t| TokenView::new(t, now)).collect();
    page.chrome = ctx.chrome().await?;
    // The page may hold a secret; never cache it.
    Ok((status, [(CACHE_CONTROL, "no-store")], page).into_response())
}

fn empty_page() -> TokensPage {
    TokensPage {
        chrome: Chrome::minimal(),
        tokens: Vec::new(),
        created: None,
        error: None,
        name: String::new(),
        expiry_days: 90,
        scopes: vec![Scope::Developer],
        admin: false,
    }
}

/// `GET /account/tokens`.
pub async fn list(State(state): State<PortalState>, mut ctx: Ctx) -> PortalResult<Response> {
    render(&state, &mut ctx, StatusCode::OK, empty_page()).await
}

/// The create form.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_in_days: String,
    /// One checkbox per scope: `scope_developer`, `scope_admin_read`, `scope_admin_write`.
    #[serde(default)]
    scope_developer: Option<String>,
    #[serde(default)]
    scope_admin_read: Option<String>,
    #[serde(default)]
    scope_admin_write: Option<String>,
}

impl CreateForm {
    fn scopes(&self) -> Vec<Scope> {
        [
            (&self.scope_developer, Scope::Developer),
            (&self.scope_admin_read, Scope::AdminRead),
            (&self.scope_admin_write, Scope::AdminWrite),
        ]
        .into_iter()
        .filter_map(|(box_, scope)| box_.is_some().then_some(scope))
        .collect()
    }
}

/// `POST /account/tokens`: create a token and show it once.
pub async fn create(State(state): State<PortalState>, mut ctx: Ctx, Form(form): Form<CreateForm>) -> PortalResult<Response> {
    let account_id = ctx.require_account()?.id;
    let name = form.name.trim().to_owned();
    let days = form.expires_in_days.trim().parse::<i64>().ok().filter(|d| EXPIRY_DAYS.contains(d));
    // None ticked: `developer`, what every token could do before scopes existed.
    let ticked = form.scopes();
    let scopes = if ticked.is_empty() { Ok(Scopes::developer()) } else { Scopes::parse(ticked.iter().map(|s| s.as_str())) };
    let error = if name.is_empty() {
        Some("Give the token a name, e.g. the script or machine that will use it.".to_owned())
    } else if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        Some(format!("Use at most {MAX_NAME_CHARS} printable characters for the name."))
    } else if days.is_none() {
        Some("Pick one of the offered expiry periods.".to_owned())
    } else if let Err(e) = &scopes {
        Some(e.clone())
    } else {
        None
    };
    let (Some(days), Ok(scopes), None) = (days, scopes, &error) else {
        let error = error.unwrap_or_default();
        let page = TokensPage { error: Some(error), name: form.name, expiry_days: days.unwrap_or(90), scopes: ticked, ..empty_page() };
        return render(&state, &mut ctx, StatusCode::UNPROCESSABLE_ENTITY, page).await;
    };
    let now = state.clock.now();
    let expires_at = (days > 0).then(|| now.saturating_add(days.saturating_mul(86_400)));
    let token = PersonalToken::generate();
    let record = match state.store.create_pat(account_id, &name, &token, &scopes, expires_at, Some(account_id), now).await {
        Ok(r) => r,
        Err(e @ (StoreError::Unverified | StoreError::AdminOnly)) => {
            let error = if matches!(e, StoreError::Unverified) {
                "Confirm your email address before creating tokens: use the link we sent you, or resend it from the dashboard."
            } else {
                "Only administrators can give a token admin scopes."
            };
            let page = TokensPage { error: Some(error.to_owned()), name: form.name, expiry_days: days, scopes: ticked, ..empty_page() };
            return render(&state, &mut ctx, StatusCode::FORBIDDEN, page).await;
        }
        Err(e) => return Err(e.into()),
    };
    let page = TokensPage { created: Some((record.name, token.expose().to_owned())), ..empty_page() };
    render(&state, &mut ctx, StatusCode::OK, page).await
}

/// `POST /account/tokens/{id}/revoke`.
pub async fn revoke(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<Response> {
    let account_id = turnpike_store::AccountId(ctx.require_account()?.id);
    let id = crate::error::parse_id(&id)?;
    let now = state.clock.now();
    crate::service::accounts::revoke_token(&state.store, account_id, id, now).await?;
    ctx.flash(FlashKind::Success, "Token revoked. Requests using it are refused from now on.").await?;
    Ok(Redirect::to("/account/tokens").into_response())
}

/// The token pages.
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new().route("/account/tokens", get(list).post(create)).route("/account/tokens/{id}/revoke", post(revoke))
}
