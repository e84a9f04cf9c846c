//! Stripe: Checkout and Customer Portal hand-offs and the signature-verified webhook.

use crate::PortalState;

/// Stripe routes (`/billing/checkout`, `/billing/portal`, `/webhooks/stripe`).
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new()
}
