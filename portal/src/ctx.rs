//! Per-request context for pages: who is logged in, the CSRF token for forms, and the flash
//! messages to show once. Everything kept in the session is read and written here only.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rand::RngCore;
use tower_sessions::Session;
use turnpike_store::{Account, AccountStatus, Role};

use crate::error::{PortalError, PortalResult};
use crate::PortalState;

const ACCOUNT_ID: &str = turnpike_store::SESSION_ACCOUNT_KEY;
const CSRF: &str = "csrf";
const FLASH: &str = "flash";
/// When the session logged in (state.clock, unix seconds): the absolute lifetime counts from it.
const LOGIN_AT: &str = "login_at";
/// Last request seen (state.clock, unix seconds), refreshed at most once a minute.
const SEEN_AT: &str = "seen_at";

/// A logged-in session ends this long after login, however busy (seconds).
pub const SESSION_ABSOLUTE_SECS: i64 = 30 * 24 * 3600;
/// A logged-in session ends after this long without a request (seconds). The cookie store's own
/// inactivity expiry (wall clock) backs this up; this one follows `state.clock`.
pub const SESSION_IDLE_SECS: i64 = 7 * 24 * 3600;
/// How stale `seen_at` may get before a request rewrites it (saves a session write per request).
const SEEN_RESOLUTION_SECS: i64 = 60;

pub use crate::chrome::{Chrome, Flash, FlashKind};

/// The page context extractor.
#[derive(Debug)]
pub struct Ctx {
    /// The session.
    pub session: Session,
    /// The logged-in, active account.
    pub account: Option<Account>,
    csrf: Option<String>,
    clock: turnpike_store::clock::SharedClock,
}

impl FromRequestParts<PortalState> for Ctx {
    type Rejection = axum::response::Response;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Self::Rejection> {
        let session =
            Session::from_request_parts(parts, state).await.map_err(|(status, msg): (StatusCode, &str)| (status, msg).into_response())?;
        Ctx::load(session, state).await.map_err(IntoResponse::into_response)
    }
}

impl Ctx {
    async fn load(session: Session, state: &PortalState) -> PortalResult<Ctx> {
        let account = session_account(&session, state).await?;
        let csrf = session.get::<String>(CSRF).await?;
        let mut ctx = Ctx { session, account, csrf, clock: state.clock.clone() };
        if ctx.account.is_some() {
            // The layout's logout button is a form: logged-in pages always need a token.
            ctx.ensure_csrf().await?;
        }
        Ok(ctx)
    }

    /// The logged-in account, or a redirect to the login page.
    pub fn require_account(&self) -> PortalResult<&Account> {
        self.account.as_ref().ok_or(PortalError::LoginRequired)
    }

    /// The logged-in account's id, if any (the actor of an action).
    pub fn account_id(&self) -> Option<turnpike_store::AccountId> {
        self.account.as_ref().map(|a| turnpike_store::AccountId(a.id))
    }

    /// Whether the visitor is a logged-in admin.
    pub fn is_admin(&self) -> bool {
        self.account.as_ref().is_some_and(|a| a.role == Role::Admin)
    }

    /// The session's CSRF token, created (and the session started) if there is none yet. Call
    /// this before rendering any page with a form.
    pub async fn ensure_csrf(&mut self) -> PortalResult<String> {
        if let Some(t) = &self.csrf {
            return Ok(t.clone());
        }
        let token = new_token();
        self.session.insert(CSRF, &token).await?;
        self.csrf = Some(token.clone());
        Ok(token)
    }

    /// Log `account` in: a new session id (no fixation), a new CSRF token, and the start of the
    /// absolute lifetime (by `state.clock`).
    pub async fn log_in(&mut self, account: Account) -> PortalResult<()> {
        let now = self.clock.now();
        self.session.cycle_id().await?;
        self.session.insert(ACCOUNT_ID, account.id).await?;
        self.session.insert(LOGIN_AT, now).await?;
        self.session.insert(SEEN_AT, now).await?;
        let token = new_token();
        self.session.insert(CSRF, &token).await?;
        self.csrf = Some(token);
        self.account = Some(account);
        Ok(())
    }

    /// End the session: delete it from the store and clear the cookie.
    pub async fn log_out(&mut self) -> PortalResult<()> {
        self.session.flush().await?;
        self.account = None;
        self.csrf = None;
        Ok(())
    }

    /// Queue a message for the next page.
    pub async fn flash(&self, kind: FlashKind, text: impl Into<String>) -> PortalResult<()> {
        let mut all = self.session.get::<Vec<Flash>>(FLASH).await?.unwrap_or_default();
        all.push(Flash { kind, text: text.into() });
        self.session.insert(FLASH, all).await?;
        Ok(())
    }

    /// The layout data for a page rendered now; takes the pending flash messages, so call it
    /// only for a page that will be shown. Pages with forms call
    /// [`ensure_csrf`](Self::ensure_csrf) first; logged-in sessions always have a token.
    pub async fn chrome(&self) -> PortalResult<Chrome> {
        // Only touch the flash key when there is one: removing marks the session modified.
        let flashes = match self.session.get::<Vec<Flash>>(FLASH).await? {
            Some(f) => {
                self.session.remove::<Vec<Flash>>(FLASH).await?;
                f
            }
            None => Vec::new(),
        };
        Ok(Chrome {
            user_email: self.account.as_ref().map(|a| a.email.clone()),
            is_admin: self.is_admin(),
            csrf: self.csrf.clone().unwrap_or_default(),
            flashes,
            show_account_nav: true,
            asset_version: crate::assets::version(),
            email_unverified: self.account.as_ref().is_some_and(|a| a.email_verified_at.is_none()),
        })
    }
}

/// The active account logged in on `session`, if any. A suspended account's open sessions stop
/// working at once; a session past its absolute lifetime or idle timeout (by `state.clock`) is
/// ended here.
pub(crate) async fn session_account(session: &Session, state: &PortalState) -> PortalResult<Option<Account>> {
    let Some(id) = session.get::<i64>(ACCOUNT_ID).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    let login_at = session.get::<i64>(LOGIN_AT).await?;
    let seen_at = session.get::<i64>(SEEN_AT).await?;
    let too_old = login_at.is_none_or(|t| now - t >= SESSION_ABSOLUTE_SECS);
    let idle = seen_at.is_none_or(|t| now - t >= SESSION_IDLE_SECS);
    if too_old || idle {
        session.flush().await?;
        return Ok(None);
    }
    if seen_at.is_some_and(|t| now - t >= SEEN_RESOLUTION_SECS) {
        session.insert(SEEN_AT, now).await?;
    }
    match state.store.get_account(id).await {
        Ok(a) if a.status == AccountStatus::Active => Ok(Some(a)),
        Ok(_) | Err(turnpike_store::StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The CSRF token kept in `session`, if any; for the CSRF guard.
pub(crate) async fn session_csrf(session: &Session) -> Option<String> {
    session.get::<String>(CSRF).await.ok().flatten()
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}
