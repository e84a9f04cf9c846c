//! Turnpike's developer portal: a server-rendered site where developers browse the API catalog,
//! sign up, create apps and manage their API keys.
//!
//! [`app`] builds the complete router (sessions, CSRF guard, security headers, static assets);
//! the binary only binds it. Pages are askama templates in the workspace's `templates/`
//! directory; the stylesheet and script in `static/` are embedded in the binary.
//!
//! Layers, outermost first, and why they sit where they do:
//! 1. panic catcher: a bug answers with the 500 page instead of a dropped connection;
//! 2. security headers: on every response, error pages and static files included;
//! 3. sessions: loaded lazily, so anonymous visitors to the catalog create no session rows;
//! 4. CSRF guard: needs the session, and must run before any handler sees a POST.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use turnpike_store::clock::SharedClock;
use turnpike_store::Store;

pub mod analytics;
pub mod api;
mod assets;
pub mod chrome;
pub mod csv;
pub mod ctx;
pub mod error;
pub mod error_page;
pub mod format;
#[doc(hidden)]
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod openapi_import;
pub mod pages;
pub mod reports;
mod security;
pub mod service;
pub mod throttle;
pub mod views;

/// Portal settings.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Public base URL of the gateway, e.g. `https://api.example.com`; shown in examples.
    pub gateway_url: String,
    /// Public base URL of this portal, e.g. `https://developers.example.com`; used in emails.
    pub public_url: String,
    /// Mark the session cookie `Secure` and give it the `__Host-` prefix (serve over HTTPS).
    pub secure_cookies: bool,
}

/// Shared state of the portal's handlers.
#[derive(Clone)]
pub struct PortalState {
    /// The database.
    pub store: Store,
    /// The time source.
    pub clock: SharedClock,
    /// Settings.
    pub config: Arc<PortalConfig>,
}

impl std::fmt::Debug for PortalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalState").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Session cookie name when served over HTTPS (`__Host-` pins it to this host, path `/`, Secure).
pub const SECURE_COOKIE_NAME: &str = "__Host-turnpike";
/// Session cookie name over plain HTTP (development and tests).
pub const PLAIN_COOKIE_NAME: &str = "turnpike_session";
/// Sessions end after this long without a request.
const SESSION_IDLE: time::Duration = time::Duration::days(7);

/// The complete portal router: pages, static assets, sessions, CSRF guard, security headers.
pub fn app(state: PortalState) -> Router {
    use pages::{account, admin, apps, billing, catalog, dashboard, stripe};

    let sessions = SessionManagerLayer::new(state.store.clone())
        .with_name(if state.config.secure_cookies { SECURE_COOKIE_NAME } else { PLAIN_COOKIE_NAME })
        .with_secure(state.config.secure_cookies)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(SESSION_IDLE));
    let [nosniff, frame, referrer, csp] = security::header_layers();

    // Each area owns its routes; this only stacks them.
    Router::new()
        .merge(catalog::routes())
        .merge(account::routes())
        .merge(dashboard::routes())
        .merge(apps::routes())
        .merge(admin::guarded(pages::admin_routes(), state.clone()))
        .merge(billing::routes())
        .merge(stripe::routes())
        .merge(api::routes())
        .route("/static/{*path}", get(pages::static_file))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::csrf_guard))
        .layer(sessions)
        .layer(nosniff)
        .layer(frame)
        .layer(referrer)
        .layer(csp)
        .layer(CatchPanicLayer::custom(error_page::panic_response))
        // Outermost: sees the final status (a caught panic's 500 too) and the matched route.
        .layer(axum::middleware::from_fn(telemetry::record))
        .with_state(state)
}

/// Server-rendered SVG charts (usage pages).
pub mod charts;
/// Per-request log line, metrics and span hook.
pub mod telemetry;
