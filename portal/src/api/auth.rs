//! Who is calling: a personal access token (`Authorization: Bearer tp_pat_…`) or, when no
//! `Authorization` header is sent, the portal session. A bearer request never consults the
//! session, so a browser's cookie cannot lend authority to a script holding a bad token.
//!
//! CSRF: session writes pass the CSRF guard only with the session's token in `X-CSRF-Token`;
//! bearer requests without a cookie skip it (there is no ambient authority to forge).
//!
//! Scopes: a token does only what its scopes allow ([`Scopes`]); a session does what its
//! account's role allows. [`Caller`] is the developer API's caller (`developer` scope);
//! [`AdminCaller`] the admin API's (an admin account; a token needs `admin:read` to read and
//! `admin:write` to change anything); [`Authenticated`] anyone signed in (`/api/v1/me`).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::Method;
use tower_sessions::Session;
use turnpike_store::{Account, AccountStatus, PersonalToken, Role, Scope, Scopes};

use super::problem::ApiError;
use crate::PortalState;

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVia {
    /// Portal session cookie.
    Session,
    /// Personal access token.
    Token,
}

/// The authenticated, active account making an API request.
#[derive(Debug)]
pub struct Caller {
    /// The account.
    pub account: Account,
    /// How it authenticated.
    pub via: AuthVia,
    /// A token's scopes (`None`: a session, limited by the account's role only).
    pub scopes: Option<Scopes>,
}

impl Caller {
    /// Whether the caller may act with `scope`.
    pub fn may(&self, scope: Scope) -> bool {
        let role_allows = !scope.is_admin() || self.account.role == Role::Admin;
        role_allows && self.scopes.as_ref().is_none_or(|s| s.allows(scope))
    }

    /// The scopes in effect: the token's, or everything the account's role allows.
    pub fn effective_scopes(&self) -> Vec<&'static str> {
        Scope::ALL.into_iter().filter(|s| self.may(*s)).map(Scope::as_str).collect()
    }

    fn require(self, scope: Scope) -> Result<Caller, ApiError> {
        if self.may(scope) {
            return Ok(self);
        }
        if scope.is_admin() && self.account.role != Role::Admin {
            return Err(ApiError::Forbidden { code: "admin-only", detail: "The admin API is for administrators.".to_owned() });
        }
        let detail = format!("This token lacks the `{}` scope; create one with it at /account/tokens.", scope.as_str());
        Err(ApiError::Forbidden { code: "insufficient-scope", detail })
    }
}

/// Anyone signed in, whatever the token's scopes (`GET /api/v1/me`).
#[derive(Debug)]
pub struct Authenticated(pub Caller);

impl FromRequestParts<PortalState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await.map(Authenticated)
    }
}

impl FromRequestParts<PortalState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await?.require(Scope::Developer)
    }
}

/// The admin API's caller: an admin account; with a token, `admin:read` for `GET` and
/// `admin:write` for anything else.
#[derive(Debug)]
pub struct AdminCaller(pub Caller);

impl FromRequestParts<PortalState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Self::Rejection> {
        let needs = if parts.method == Method::GET || parts.method == Method::HEAD { Scope::AdminRead } else { Scope::AdminWrite };
        authenticate(parts, state).await?.require(needs).map(AdminCaller)
    }
}

async fn authenticate(parts: &mut Parts, state: &PortalState) -> Result<Caller, ApiError> {
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .and_then(|(_, t)| PersonalToken::parse(t.trim()))
            .ok_or(ApiError::Unauthorized)?;
        let (account_id, scopes) = state.store.use_pat(&token.hash(), state.clock.now()).await?.ok_or(ApiError::Unauthorized)?;
        let account = match state.store.get_account(account_id).await {
            Ok(a) if a.status == AccountStatus::Active => a,
            Ok(_) | Err(turnpike_store::StoreError::NotFound) => return Err(ApiError::Unauthorized),
            Err(e) => return Err(e.into()),
        };
        return Ok(Caller { account, via: AuthVia::Token, scopes: Some(scopes) });
    }
    let session = Session::from_request_parts(parts, state).await.map_err(|(_, msg)| ApiError::Internal(msg.to_owned()))?;
    let account = crate::ctx::session_account(&session, state).await?.ok_or(ApiError::Unauthorized)?;
    Ok(Caller { account, via: AuthVia::Session, scopes: None })
}
