//! Turnpike pricing and invoicing: pure functions over integer minor units.
//!
//! No I/O, no clock, no async, no floats (the crate depends on neither the store nor tokio; the
//! ledger that applies it to stored subscriptions is `turnpike-ledger`). Money is `i64` minor units ([`Money`]); intermediate
//! products are `i128`; every operation that could overflow is checked and returns
//! [`BillingError::Overflow`] instead of wrapping or panicking.
//!
//! - [`Currency`] and [`Money`]: parse, format, checked arithmetic.
//! - [`Pricing`] describes what a plan charges per billing period; [`PlanPrice`] is a validated
//!   `Pricing` in one currency.
//! - [`invoice`] turns a plan and a period's usage into an [`Invoice`] — a pure function of
//!   (plan, usage), with the rounding rule documented in [`pricing`].
//! - [`forecast_exhaustion`] estimates when a quota runs out at the current rate.
//!
//! ```
//! use turnpike_billing::{invoice, Currency, Overage, PlanPrice, Pricing};
//!
//! // "$49/month includes 100,000 requests, then $0.50 per 1,000."
//! let pricing = Pricing::Quota { base_fee: 4_900, included: 100_000, overage: Overage::Metered { unit_price: 50, per: 1_000 } };
//! let plan = PlanPrice::new(Currency::parse("USD")?, pricing)?;
//! let inv = invoice(&plan, 250_000, (1_767_225_600, 1_769_904_000))?;
//! let lines: Vec<String> = inv.lines.iter().map(|l| format!("{}: {}", l.description, l.amount)).collect();
//! assert_eq!(lines, [
//!     "Base fee: $49.00",
//!     "Requests 1–100,000 (included): $0.00",
//!     "Requests 100,001–250,000 at $0.50 per 1,000: $75.00",
//! ]);
//! assert_eq!(inv.total.format(), "$124.00");
//! # Ok::<(), turnpike_billing::BillingError>(())
//! ```

#![warn(missing_docs)]

mod currency;
mod error;
mod forecast;
mod invoice;
mod money;
pub mod pricing;
pub mod proration;

pub use currency::Currency;
pub use error::{BillingError, PricingError};
pub use forecast::forecast_exhaustion;
pub use invoice::{invoice, Invoice, Line, UnitPrice};
pub use money::{group_thousands, Money};
pub use pricing::{Overage, PlanPrice, Pricing, Tier};
pub use proration::{change_adjustments, prorate, prorate_charge, prorate_credit};
