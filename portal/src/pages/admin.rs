//! The admin console under `/admin`: every route here refuses anyone but an admin.
//!
//! Admin routes are added only through [`AdminRoutes`], which records each (method, path) as it
//! adds it to the router and wraps the whole router in [`require_admin`]. The security test walks
//! [`admin_routes`]`().listed()`, so a new admin route is covered the moment it exists.

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_sessions::Session;

use crate::error::PortalError;
use crate::PortalState;

/// A router of admin-only routes that remembers what it holds.
pub struct AdminRoutes {
    router: Router<PortalState>,
    listed: Vec<(&'static str, &'static str)>,
}

impl AdminRoutes {
    fn new() -> Self {
        AdminRoutes { router: Router::new(), listed: Vec::new() }
    }

    /// Add a `GET` route; `path` must start with `/admin`.
    pub fn get<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, PortalState>,
        T: 'static,
    {
        assert!(path.starts_with("/admin"), "admin route outside /admin: {path}");
        self.router = self.router.route(path, axum::routing::get(handler));
        self.listed.push(("GET", path));
        self
    }

    /// Add a `POST` route; `path` must start with `/admin`.
    pub fn post<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, PortalState>,
        T: 'static,
    {
        assert!(path.starts_with("/admin"), "admin route outside /admin: {path}");
        self.router = self.router.route(path, axum::routing::post(handler));
        self.listed.push(("POST", path));
        self
    }

    /// Every (method, path) registered, for the security test.
    pub fn listed(&self) -> &[(&'static str, &'static str)] {
        &self.listed
    }
}

/// Every admin route: the console's own and those other areas (billing reports) register.
pub fn admin_routes() -> AdminRoutes {
    let r = AdminRoutes::new();
    let r = console(r);
    crate::pages::billing::register_admin(r)
}

/// The console's own pages.
fn console(r: AdminRoutes) -> AdminRoutes {
    r
}

/// The admin console's routes, behind the admin guard.
pub fn routes(state: PortalState) -> Router<PortalState> {
    let admin = admin_routes();
    if admin.listed.is_empty() {
        // axum refuses a route layer on an empty router.
        return admin.router;
    }
    admin.router.route_layer(axum::middleware::from_fn_with_state(state, require_admin))
}

/// Anonymous visitors are sent to log in; logged-in non-admins get 403; suspended accounts are
/// treated as anonymous.
pub async fn require_admin(State(state): State<PortalState>, session: Session, req: Request, next: Next) -> Response {
    match crate::ctx::session_account(&session, &state).await {
        Ok(Some(account)) if account.role == turnpike_store::Role::Admin => next.run(req).await,
        Ok(Some(_)) => PortalError::Forbidden.into_response(),
        Ok(None) => PortalError::LoginRequired.into_response(),
        Err(e) => e.into_response(),
    }
}
