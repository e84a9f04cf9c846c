//! Developers' billing pages (plans, invoices, payment) and the payment provider's webhooks.

use crate::PortalState;

/// Billing routes.
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new()
}

/// Billing's admin pages (revenue reports), added to the admin console behind its guard.
pub fn register_admin(r: super::admin::AdminRoutes) -> super::admin::AdminRoutes {
    r
}
