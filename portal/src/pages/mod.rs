//! Page handlers, one module per area, each with its templates' structs.

pub mod account;
pub mod admin;
pub mod apps;
pub mod billing;
pub mod catalog;
pub mod dashboard;
pub mod stripe;

use crate::ctx::Ctx;
use crate::error::{PortalError, PortalResult};

/// Fallback: the 404 page, with the visitor's nav.
pub async fn not_found(ctx: Ctx) -> crate::error_page::ErrorPage {
    let page = crate::error_page::ErrorPage::not_found();
    match ctx.chrome().await {
        Ok(chrome) => page.with_chrome(chrome),
        Err(_) => page,
    }
}

/// `GET /static/{*path}`: an embedded asset, cached for a week (its URL carries the version).
pub async fn static_file(axum::extract::Path(path): axum::extract::Path<String>) -> axum::response::Response {
    use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
    use axum::response::IntoResponse;
    match crate::assets::file(&path) {
        Some((content_type, body)) => ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "public, max-age=604800")], body).into_response(),
        None => PortalError::NotFound.into_response(),
    }
}

/// The app with id `raw_id` if the logged-in account owns it; 404 otherwise (never 403). Shared by
/// the app, key and usage pages.
pub(crate) async fn owned_app(state: &crate::PortalState, ctx: &Ctx, raw_id: &str) -> PortalResult<turnpike_store::App> {
    let account_id = turnpike_store::AccountId(ctx.require_account()?.id);
    Ok(crate::service::apps::owned_app(&state.store, account_id, turnpike_store::AppId(parse_id(raw_id)?)).await?)
}

/// Every admin route: the console's own and those other areas (billing's pricing, invoices and
/// reports; Stripe's reconciliation) register. Composed here, one level up, so `admin` and `billing` do not import each
/// other.
pub fn admin_routes() -> admin::AdminRoutes {
    stripe::register_admin(billing::register_admin(admin::console()))
}

/// A numeric id from the path; anything else is a 404, like an id that does not exist.
pub(crate) use crate::error::parse_id;
pub mod subscribe;
pub mod usage;
