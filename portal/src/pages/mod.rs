//! Page handlers, one module per area, each with its templates' structs.

pub mod account;
pub mod account_reset;
pub mod account_settings;
pub mod account_verify;
pub mod admin;
pub mod apps;
pub mod billing;
pub mod catalog;
pub mod dashboard;
pub mod errors;
pub mod stripe;

use crate::error::{PortalError, PortalResult};

/// Every admin route: the console's own and those other areas (billing's pricing, invoices and
/// reports) register. Composed here, one level up, so `admin` and `billing` do not import each
/// other.
pub fn admin_routes() -> admin::AdminRoutes {
    billing::register_admin(admin::console())
}

/// A numeric id from the path; anything else is a 404, like an id that does not exist.
pub(crate) fn parse_id(raw: &str) -> PortalResult<i64> {
    raw.parse::<i64>().map_err(|_| PortalError::NotFound)
}
pub mod subscribe;
pub mod usage;
