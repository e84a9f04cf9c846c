//! The crate's error types: [`PricingError`] for a plan description that does not make sense, and
//! [`BillingError`] for everything else (parsing, arithmetic, invoicing). Every variant has a
//! stable machine-readable [`code`](BillingError::code) so callers can map it to an API error
//! without matching on the human message.

use crate::Currency;

/// A plan's price description is invalid. Returned by [`PlanPrice::new`](crate::PlanPrice::new).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// A tiered model was given no tiers.
    #[error("a tiered price needs at least one tier")]
    NoTiers,
    /// Tier bounds must strictly ascend and the first bound must be at least 1.
    #[error("tier {index}: `up_to` must be greater than the previous tier's (and at least 1)")]
    TiersNotAscending {
        /// Zero-based index of the offending tier.
        index: usize,
    },
    /// Only the last tier may be unbounded, and it must be.
    #[error("tier {index}: only the last tier may be unbounded, and the last tier must be")]
    UnboundedTier {
        /// Zero-based index of the offending tier.
        index: usize,
    },
    /// Prices and fees are never negative.
    #[error("`{field}` must not be negative")]
    NegativePrice {
        /// The field holding the negative amount.
        field: &'static str,
    },
    /// A divisor (`per`, `package_size`) of zero.
    #[error("`{field}` must be at least 1")]
    ZeroDivisor {
        /// The zero field.
        field: &'static str,
    },
}

impl PricingError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PricingError::NoTiers => "pricing.no_tiers",
            PricingError::TiersNotAscending { .. } => "pricing.tiers_not_ascending",
            PricingError::UnboundedTier { .. } => "pricing.unbounded_tier",
            PricingError::NegativePrice { .. } => "pricing.negative_price",
            PricingError::ZeroDivisor { .. } => "pricing.zero_divisor",
        }
    }
}

/// Anything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    /// Not a three-letter ISO 4217 code.
    #[error("`{0}` is not a three-letter ISO 4217 currency code")]
    InvalidCurrency(String),
    /// A decimal amount string could not be parsed for its currency.
    #[error("`{input}` is not a valid amount: {reason}")]
    InvalidAmount {
        /// The rejected input.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An amount does not fit in `i64` minor units. Never wrapped, never a panic.
    #[error("amount out of range")]
    Overflow,
    /// Two amounts in different currencies were combined.
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch {
        /// Currency of the left operand.
        left: Currency,
        /// Currency of the right operand.
        right: Currency,
    },
    /// A billing period that ends before (or when) it starts.
    #[error("invalid period: end {end} is not after start {start}")]
    InvalidPeriod {
        /// Period start, unix seconds.
        start: i64,
        /// Period end, unix seconds.
        end: i64,
    },
    /// The plan's price description is invalid.
    #[error(transparent)]
    Pricing(#[from] PricingError),
}

impl BillingError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            BillingError::InvalidCurrency(_) => "billing.invalid_currency",
            BillingError::InvalidAmount { .. } => "billing.invalid_amount",
            BillingError::Overflow => "billing.overflow",
            BillingError::CurrencyMismatch { .. } => "billing.currency_mismatch",
            BillingError::InvalidPeriod { .. } => "billing.invalid_period",
            BillingError::Pricing(e) => e.code(),
        }
    }
}
