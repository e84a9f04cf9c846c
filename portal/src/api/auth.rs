//! Who is calling: a personal access token (`Authorization: Bearer tp_pat_…`) or, when no
//! `Authorization` header is sent, the portal session. A bearer request never consults the
//! session, so a browser's cookie cannot lend authority to a script holding a bad token.
//!
//! CSRF: session writes pass the CSRF guard only with the session's token in `X-CSRF-Token`;
//! bearer requests without a cookie skip it (there is no ambient authority to forge).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tower_sessions::Session;
use turnpike_store::{Account, AccountStatus, PersonalToken};

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
}

impl FromRequestParts<PortalState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Self::Rejection> {
        if let Some(header) = parts.headers.get(AUTHORIZATION) {
            let token = header
                .to_str()
                .ok()
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .and_then(|(_, t)| PersonalToken::parse(t.trim()))
                .ok_or(ApiError::Unauthorized)?;
            let account_id = state.store.use_pat(&token.hash(), state.clock.now()).await?.ok_or(ApiError::Unauthorized)?;
            let account = match state.store.get_account(account_id).await {
                Ok(a) if a.status == AccountStatus::Active => a,
                Ok(_) | Err(turnpike_store::StoreError::NotFound) => return Err(ApiError::Unauthorized),
                Err(e) => return Err(e.into()),
            };
            return Ok(Caller { account, via: AuthVia::Token });
        }
        let session = Session::from_request_parts(parts, state).await.map_err(|(_, msg)| ApiError::Internal(msg.to_owned()))?;
        let account = crate::ctx::session_account(&session, state).await?.ok_or(ApiError::Unauthorized)?;
        Ok(Caller { account, via: AuthVia::Session })
    }
}
