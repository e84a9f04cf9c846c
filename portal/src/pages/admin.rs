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
    use axum::extract::DefaultBodyLimit;
    use axum::handler::Handler;

    use super::{admin_apis as apis, admin_audit as audit, admin_developers as devs, admin_overview as overview};
    // The API forms carry an OpenAPI document of up to 16 MiB; every other route keeps axum's limit.
    let upload = || DefaultBodyLimit::max(crate::security::MAX_UPLOAD_BYTES);
    r.get("/admin", overview::overview)
        .get("/admin/apis", apis::list)
        .get("/admin/apis/new", apis::new_form)
        .post("/admin/apis", apis::create.layer(upload()))
        .get("/admin/apis/{id}", apis::edit_form)
        .post("/admin/apis/{id}", apis::update.layer(upload()))
        .post("/admin/apis/{id}/plans", apis::create_plan)
        .get("/admin/plans/{id}", apis::plan_form)
        .post("/admin/plans/{id}", apis::update_plan)
        .get("/admin/developers", devs::list)
        .get("/admin/developers/{id}", devs::detail)
        .post("/admin/developers/{id}/suspend", devs::suspend)
        .post("/admin/developers/{id}/reactivate", devs::reactivate)
        .post("/admin/keys/{id}/suspend", devs::suspend_key)
        .post("/admin/keys/{id}/reactivate", devs::reactivate_key)
        .get("/admin/audit", audit::list)
}

/// Which console section a page belongs to (highlighted in the console's tabs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `/admin`.
    Overview,
    /// `/admin/apis…`.
    Apis,
    /// `/admin/developers…`.
    Developers,
    /// `/admin/audit`.
    Audit,
}

impl Section {
    /// `aria-current` value for the tab of `other`.
    pub fn current(self, other: &str) -> &'static str {
        let name = match self {
            Section::Overview => "overview",
            Section::Apis => "apis",
            Section::Developers => "developers",
            Section::Audit => "audit",
        };
        if name == other {
            "page"
        } else {
            "false"
        }
    }
}

/// The acting admin's account id (the guard already let only admins through).
pub(crate) fn actor(ctx: &crate::ctx::Ctx) -> crate::error::PortalResult<i64> {
    Ok(ctx.require_account()?.id)
}

/// Rows per page in the console's lists.
pub(crate) const PER_PAGE: i64 = 25;

/// `?page=N` (1-based; anything else is page 1) as an offset.
pub(crate) fn page_offset(page: Option<&str>) -> (i64, i64) {
    let page = page.and_then(|p| p.parse::<i64>().ok()).filter(|p| (1..=1_000_000).contains(p)).unwrap_or(1);
    (page, (page - 1) * PER_PAGE)
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
