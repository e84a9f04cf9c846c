//! The admin console under `/admin`: every route here refuses anyone but an admin.
//!
//! Admin routes are added only through [`AdminRoutes`], which records each (method, path) as it
//! adds it to the router and wraps the whole router in [`require_admin`]. The security test walks
//! [`crate::pages::admin_routes`]`().listed()`, so a new admin route is covered the moment it exists.

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use tower_sessions::Session;

use crate::error::PortalError;
use crate::PortalState;

pub mod analytics;
pub mod apis;
pub mod audit;
mod common;
pub mod developers;
pub mod overview;
pub mod plans;
pub mod webhooks;

pub use common::Section;

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
    pub fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, PortalState>,
        T: 'static,
    {
        self.add("GET", path, axum::routing::get(handler))
    }

    /// Add a `POST` route; `path` must start with `/admin`.
    pub fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, PortalState>,
        T: 'static,
    {
        self.add("POST", path, axum::routing::post(handler))
    }

    fn add(mut self, method: &'static str, path: &'static str, route: MethodRouter<PortalState>) -> Self {
        assert!(path.starts_with("/admin"), "admin route outside /admin: {path}");
        self.router = self.router.route(path, route);
        self.listed.push((method, path));
        self
    }

    /// Every (method, path) registered, for the security test.
    pub fn listed(&self) -> &[(&'static str, &'static str)] {
        &self.listed
    }
}

/// The console's own pages, on a new [`AdminRoutes`]; other areas add theirs
/// ([`crate::pages::admin_routes`] composes them, so this module imports no sibling page).
pub fn console() -> AdminRoutes {
    use axum::extract::DefaultBodyLimit;
    use axum::handler::Handler;

    use self::developers as devs;
    let r = AdminRoutes::new();
    // The API forms carry an OpenAPI document of up to 16 MiB; every other route keeps axum's limit.
    let upload = || DefaultBodyLimit::max(crate::security::MAX_UPLOAD_BYTES);
    r.get("/admin", overview::overview)
        .get("/admin/analytics", analytics::page)
        .get("/admin/analytics.csv", analytics::csv_export)
        .get("/admin/apis", apis::list)
        .get("/admin/apis/new", apis::new_form)
        .post("/admin/apis", apis::create.layer(upload()))
        .get("/admin/apis/{id}", apis::edit_form)
        .post("/admin/apis/{id}", apis::update.layer(upload()))
        .post("/admin/apis/{id}/plans", plans::create_plan)
        .get("/admin/plans/{id}", plans::plan_form)
        .post("/admin/plans/{id}", plans::update_plan)
        .get("/admin/developers", devs::list)
        .get("/admin/developers/{id}", devs::detail)
        .post("/admin/developers/{id}/suspend", devs::suspend)
        .post("/admin/developers/{id}/reactivate", devs::reactivate)
        .post("/admin/keys/{id}/suspend", devs::suspend_key)
        .post("/admin/keys/{id}/reactivate", devs::reactivate_key)
        .get("/admin/audit", audit::list)
        .get("/admin/webhooks", webhooks::list)
        .post("/admin/webhooks", webhooks::create)
        .post("/admin/webhooks/{id}/delete", webhooks::delete)
}

/// `admin`'s routes behind the admin guard.
pub fn guarded(admin: AdminRoutes, state: PortalState) -> Router<PortalState> {
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
