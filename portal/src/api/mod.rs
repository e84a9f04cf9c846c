//! The portal's JSON API under `/api/v1`, described at `/api/openapi.json`.

use crate::PortalState;

/// The JSON API's routes.
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new()
}
