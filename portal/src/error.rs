//! The portal's one error type. What the visitor sees (a friendly page with a status) is kept
//! apart from what is logged (the internal cause, at `error` level, never shown).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use turnpike_store::StoreError;

use crate::error_page::ErrorPage;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// No such page, or a resource the visitor does not own (never 403: that would leak that it
    /// exists).
    #[error("not found")]
    NotFound,
    /// The page needs a logged-in developer: redirect to the login form.
    #[error("login required")]
    LoginRequired,
    /// A state-changing request without a valid CSRF token or with a foreign `Origin`.
    #[error("csrf check failed")]
    Csrf,
    /// Logged in, but not allowed here (a developer on an admin route).
    #[error("forbidden")]
    Forbidden,
    /// The database failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Password hashing is saturated (a burst of logins or signups): 503 with `Retry-After`.
    #[error("busy: {0}")]
    Busy(#[from] turnpike_store::domain::HashBusy),
    /// The session store failed.
    #[error("session: {0}")]
    Session(#[from] tower_sessions::session::Error),
}

/// A ledger failure: a store error as such, anything else as corrupt data (logged, never shown).
pub(crate) fn ledger_err(e: turnpike_ledger::LedgerError) -> PortalError {
    match e {
        turnpike_ledger::LedgerError::Store(s) => PortalError::Store(s),
        other => PortalError::Store(StoreError::Corrupt(other.to_string())),
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        match self {
            PortalError::NotFound => ErrorPage::not_found().into_response(),
            PortalError::LoginRequired => Redirect::to("/login").into_response(),
            PortalError::Csrf => ErrorPage::new(
                StatusCode::FORBIDDEN,
                "Your form expired, please retry",
                "For your security, forms expire. Go back, reload the page and submit it again.",
            )
            .into_response(),
            PortalError::Forbidden => ErrorPage::new(
                StatusCode::FORBIDDEN,
                "You don't have access to this page",
                "This part of the portal is for administrators. If you need access, ask one of them.",
            )
            .into_response(),
            PortalError::Store(StoreError::NotFound) => ErrorPage::not_found().into_response(),
            PortalError::Busy(_) => {
                let mut res = ErrorPage::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Busy right now",
                    "Many people are logging in at this moment. Wait a few seconds, then try again.",
                )
                .into_response();
                res.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("2"));
                res
            }
            PortalError::Store(_) | PortalError::Session(_) => {
                tracing::error!(error = %self, "request failed");
                ErrorPage::internal().into_response()
            }
        }
    }
}

/// Handler result.
pub type PortalResult<T> = Result<T, PortalError>;

/// An id from a URL path segment; anything else is the 404 page (a typo or a probe never learns
/// more than "not found").
pub(crate) fn parse_id(raw: &str) -> PortalResult<i64> {
    raw.parse::<i64>().map_err(|_| PortalError::NotFound)
}
