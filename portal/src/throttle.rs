//! Throttling of login, signup, password-reset requests and verification resends, per client IP
//! and per account email. Attempts are counted in the database (shared by every portal instance)
//! over a sliding window measured with `state.clock`. Every attempt is taken from its allowances
//! atomically *before* any password is looked at ([`attempt`]); once a key has used its
//! allowance, the next request is answered 429 with `Retry-After`. Successful logins give their
//! attempt back, so the login allowances count failures.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::PortalResult;
use crate::error_page::ErrorPage;
use crate::PortalState;

/// An allowance: at most `max` counted attempts per `window` seconds for one key.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Key namespace, e.g. `login:acct`.
    pub scope: &'static str,
    /// Attempts allowed in the window.
    pub max: i64,
    /// Window length, seconds.
    pub window: i64,
}

/// Failed logins per account email.
pub const LOGIN_PER_ACCOUNT: Limit = Limit { scope: "login:acct", max: 5, window: 15 * 60 };
/// Failed logins per client IP.
pub const LOGIN_PER_IP: Limit = Limit { scope: "login:ip", max: 20, window: 15 * 60 };
/// Signups per email address.
pub const SIGNUP_PER_EMAIL: Limit = Limit { scope: "signup:email", max: 5, window: 3600 };
/// Signups per client IP.
pub const SIGNUP_PER_IP: Limit = Limit { scope: "signup:ip", max: 20, window: 3600 };
/// Reset requests per email address.
pub const RESET_PER_EMAIL: Limit = Limit { scope: "reset:email", max: 5, window: 3600 };
/// Reset requests per client IP.
pub const RESET_PER_IP: Limit = Limit { scope: "reset:ip", max: 20, window: 3600 };
/// Verification-email resends per account.
pub const RESEND_PER_ACCOUNT: Limit = Limit { scope: "resend:acct", max: 5, window: 3600 };

/// The client's IP: the TCP peer of the connection, or, when the peer is one of the
/// `trusted_proxies` (an `Arc<TrustedProxies>` request extension), the address that peer
/// forwarded (`turnpike_store::net::client_ip`, the gateway's rule). Headers from any other
/// peer are ignored (anyone can send them).
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
            return Ok(ClientIp("unknown".to_owned()));
        };
        let ip = match parts.extensions.get::<std::sync::Arc<turnpike_store::net::TrustedProxies>>() {
            Some(trusted) => {
                let xff = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
                turnpike_store::net::client_ip(peer, xff, trusted)
            }
            None => peer,
        };
        Ok(ClientIp(ip.to_string()))
    }
}

fn key(limit: &Limit, subject: &str) -> String {
    format!("{}:{}", limit.scope, subject)
}

/// An attempt taken from every allowance of a request ([`attempt`]); [`refund`] gives it back.
#[derive(Debug)]
#[must_use]
pub struct Attempt(Vec<i64>);

/// Take one attempt from every `(limit, subject)` pair at once, before any work (password
/// hashing, mail) is done: `Err(response)` is the 429 to send when any pair has no room left
/// (nothing is counted then). Atomic across concurrent requests and portal instances
/// ([`turnpike_store::Store::throttle_take`]): 500 simultaneous logins with one account's email
/// get exactly the allowance evaluated.
pub async fn attempt(state: &PortalState, checks: &[(Limit, &str)]) -> PortalResult<Result<Attempt, Response>> {
    let allowances: Vec<turnpike_store::Allowance> =
        checks.iter().map(|(l, subject)| turnpike_store::Allowance { key: key(l, subject), max: l.max, window: l.window }).collect();
    Ok(match state.store.throttle_take(&allowances, state.clock.now()).await? {
        Ok(ids) => Ok(Attempt(ids)),
        Err(wait) => Err(too_many(wait)),
    })
}

/// Give an attempt back: it was not a failure (a successful login).
pub async fn refund(state: &PortalState, attempt: Attempt) -> PortalResult<()> {
    state.store.throttle_refund(&attempt.0).await?;
    Ok(())
}

/// Forget the attempts of one pair (a successful login clears its account's failures).
pub async fn clear(state: &PortalState, limit: Limit, subject: &str) -> PortalResult<()> {
    state.store.throttle_clear(&key(&limit, subject)).await?;
    Ok(())
}

/// The 429 page with `Retry-After`.
pub fn too_many(retry_after: i64) -> Response {
    let mut res = ErrorPage::new(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        "For your security we paused this for a while. Wait a few minutes, then try again.",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}
