//! The local ledger: the I/O side of billing. Reads plans, prices and usage buckets through
//! `turnpike-store`, prices them with the pure engine (`turnpike_billing::invoice`, `prorate_*`) and
//! writes subscription changes and finalized invoices. Everything here takes `now` from the
//! caller (the injected clock), never the system clock.
//!
//! # What is billable
//!
//! The gateway meters per key × API × hour: `admitted` (requests let through by the limiter:
//! the quota counts these) and the response classes `status_2xx`…`status_5xx`. It does not record
//! which 5xx responses the gateway made itself (502 upstream unreachable, 504 upstream timeout)
//! and which the upstream sent, so the two rules a price can choose are:
//!
//! - [`Billable::AdmittedNon5xx`] (the default): `admitted − status_5xx`. Never charges for a
//!   gateway-made 502/504, and also does not charge for 5xx responses sent by the upstream.
//! - [`Billable::Admitted`]: every admitted request, whatever the response (what the quota counts).
//!
//! # Periods, plan changes, invoices
//!
//! Periods are [`turnpike_store::period::monthly_period`] of the subscription's billing anchor,
//! the same the gateway's quota uses; usage of a period is the buckets with
//! `period.start <= hour < period.end` (anchors are on the hour). Usage is priced on the plan in
//! effect at the period's end, at the price version in effect at the period's end
//! ([`Store::plan_price_at`]). Base fees are prorated by the second on upgrades (see
//! `turnpike_billing::proration`); a move to a cheaper paid plan waits for the period end; a move to a plan
//! that needs no payment, or one with an equal or higher base fee, happens at once. Canceling now
//! credits the unused part of the base fee; canceling at period end just stops renewal.
//! A free trial credits the base fee for the trial's seconds inside the period.
//!
//! [`finalize_due`] finalizes every ended period exactly once ([`Store::finalize_invoice`]), then
//! applies scheduled changes. Invoices are due [`PAYMENT_TERMS_DAYS`] days after the period end.

mod changes;
mod invoicing;
mod price;
mod reports;

pub use changes::*;
pub use invoicing::*;
pub use price::*;
pub use reports::*;

use turnpike_billing::BillingError;
use turnpike_store::StoreError;

/// Days between a period's end and its invoice's due date.
pub const PAYMENT_TERMS_DAYS: i64 = 14;

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database failed (or the row does not exist: [`StoreError::NotFound`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Pricing or arithmetic failed.
    #[error(transparent)]
    Billing(#[from] BillingError),
    /// A stored price could not be read.
    #[error("stored price of plan {0} is invalid: {1}")]
    BadPrice(i64, String),
}
