//! What a plan charges for one billing period.
//!
//! [`Pricing`] is the description as stored and edited (serde, tagged by `"model"`,
//! snake_case); [`PlanPrice`] is a `Pricing` in one currency that has been validated, so
//! [`invoice`](crate::invoice) never sees a nonsensical plan.
//!
//! # Rounding rule
//!
//! Prices are integer minor units, but a unit price may be quoted per `per` units ("$0.50 per
//! 1,000 requests" is `unit_price: 50, per: 1000`), so a line's exact amount can be a fraction of
//! a minor unit. Each invoice line's amount is computed **exactly** as
//! `quantity × unit_price / per` in `i128` and then rounded **half up** (a remainder of at least
//! half a minor unit rounds up) to the minor unit **once per line** — never per request, never per
//! `per`-sized block. So 1,500 requests at $0.01 per 1,000 is 1.5¢ → 2¢, and 1,499 is 1.499¢ → 1¢.
//! Prices are never negative, so "half up" and "half away from zero" agree.
//!
//! A graduated plan has one line per tier reached, each rounded on its own; a volume plan has
//! one line. Package pricing needs no rounding of money: the quantity is rounded **up** to whole
//! packages (201 requests in packages of 100 is 3 packages).
//!
//! Tier flat fees are charged when at least one unit falls in the tier (graduated: each tier
//! reached; volume: the tier the total falls in). Zero usage therefore charges only base fees.

use serde::{Deserialize, Serialize};

use crate::{BillingError, Currency, PricingError};

/// How a plan charges for one billing period. Amounts are minor units of the plan's currency.
///
/// JSON examples:
/// `{"model":"graduated","tiers":[{"up_to":5,"unit_price":500},{"up_to":null,"unit_price":300}]}`,
/// `{"model":"quota","base_fee":4900,"included":100000,"overage":{"kind":"metered","unit_price":50,"per":1000}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Pricing {
    /// Nothing to pay, however much is used.
    Free,
    /// A fixed `amount` per period; usage is unlimited and not charged.
    Flat {
        /// Fee per period.
        amount: i64,
    },
    /// Every unit at `unit_price` per `per` units ("$0.50 per 1,000").
    PerUnit {
        /// Price of `per` units.
        unit_price: i64,
        /// How many units `unit_price` buys (at least 1).
        per: u64,
    },
    /// Each unit priced by the tier it falls in (Stripe "graduated"): with tiers 1–5 at $5,
    /// 6–10 at $4, 11+ at $3, twelve units cost 5×$5 + 5×$4 + 2×$3 = $51.
    Graduated {
        /// Tiers in ascending `up_to` order, the last unbounded.
        tiers: Vec<Tier>,
    },
    /// All units priced at the tier the total falls in (Stripe "volume"): with the tiers above,
    /// twelve units cost 12×$3 = $36.
    Volume {
        /// Tiers in ascending `up_to` order, the last unbounded.
        tiers: Vec<Tier>,
    },
    /// Units sold in whole packages, rounded up: packages of 100 at $5, 201 units → $15.
    Package {
        /// Units per package (at least 1).
        package_size: u64,
        /// Price of one package.
        package_price: i64,
    },
    /// A base fee that includes a quota, and a rule for usage beyond it: "$49/month includes
    /// 100,000 requests, then $0.50 per 1,000" or "free up to 1,000 requests, then refused".
    Quota {
        /// Fee per period (may be zero).
        base_fee: i64,
        /// Units covered by the base fee.
        included: u64,
        /// What happens beyond `included`.
        overage: Overage,
    },
}

/// What happens to usage beyond a [`Pricing::Quota`]'s included units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Overage {
    /// Requests beyond the quota are refused by the gateway, so they are never billable: usage
    /// above `included` is ignored by the invoice.
    HardCap,
    /// Requests beyond the quota are allowed and billed at `unit_price` per `per` units.
    Metered {
        /// Price of `per` units.
        unit_price: i64,
        /// How many units `unit_price` buys (at least 1).
        per: u64,
    },
}

/// One tier of a [`Pricing::Graduated`] or [`Pricing::Volume`] price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Last unit (inclusive, counted from 1) in this tier; `None` (JSON `null`) is unbounded.
    pub up_to: Option<u64>,
    /// Price of `per` units in this tier.
    pub unit_price: i64,
    /// How many units `unit_price` buys; defaults to 1.
    #[serde(default = "one")]
    pub per: u64,
    /// Charged once when usage reaches this tier (see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat_fee: Option<i64>,
}

fn one() -> u64 {
    1
}

impl Tier {
    /// A tier up to `up_to` (inclusive; `None` = unbounded) at `unit_price` per unit.
    pub fn new(up_to: Option<u64>, unit_price: i64) -> Tier {
        Tier { up_to, unit_price, per: 1, flat_fee: None }
    }

    /// The same tier with its price quoted per `per` units.
    pub fn per(self, per: u64) -> Tier {
        Tier { per, ..self }
    }

    /// The same tier with a flat fee.
    pub fn flat_fee(self, fee: i64) -> Tier {
        Tier { flat_fee: Some(fee), ..self }
    }
}

/// A validated [`Pricing`] in one currency: the only input [`invoice`](crate::invoice) accepts.
///
/// Deserializing validates too, so a stored plan that no longer makes sense fails to load
/// rather than producing a wrong invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPlanPrice")]
pub struct PlanPrice {
    currency: Currency,
    pricing: Pricing,
}

#[derive(Deserialize)]
struct RawPlanPrice {
    currency: Currency,
    pricing: Pricing,
}

impl TryFrom<RawPlanPrice> for PlanPrice {
    type Error = PricingError;

    fn try_from(raw: RawPlanPrice) -> Result<Self, Self::Error> {
        PlanPrice::new(raw.currency, raw.pricing)
    }
}

impl PlanPrice {
    /// Validate `pricing`: prices and fees non-negative, `per` and `package_size` at least 1,
    /// tiers non-empty with strictly ascending `up_to` (the first at least 1) and only the last
    /// unbounded.
    pub fn new(currency: Currency, pricing: Pricing) -> Result<PlanPrice, PricingError> {
        validate(&pricing)?;
        Ok(PlanPrice { currency, pricing })
    }

    /// The plan's currency; every amount on its invoices is in it.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The validated description.
    pub fn pricing(&self) -> &Pricing {
        &self.pricing
    }

    /// The number of units the gateway should admit per period, if the plan refuses usage
    /// beyond a quota ([`Overage::HardCap`]); `None` when usage is unlimited (possibly billed).
    pub fn hard_cap(&self) -> Option<u64> {
        match &self.pricing {
            Pricing::Quota { included, overage: Overage::HardCap, .. } => Some(*included),
            _ => None,
        }
    }
}

fn non_negative(amount: i64, field: &'static str) -> Result<(), PricingError> {
    if amount < 0 {
        Err(PricingError::NegativePrice { field })
    } else {
        Ok(())
    }
}

fn positive(n: u64, field: &'static str) -> Result<(), PricingError> {
    if n == 0 {
        Err(PricingError::ZeroDivisor { field })
    } else {
        Ok(())
    }
}

fn validate(pricing: &Pricing) -> Result<(), PricingError> {
    match pricing {
        Pricing::Free => Ok(()),
        Pricing::Flat { amount } => non_negative(*amount, "amount"),
        Pricing::PerUnit { unit_price, per } => {
            non_negative(*unit_price, "unit_price")?;
            positive(*per, "per")
        }
        Pricing::Graduated { tiers } | Pricing::Volume { tiers } => validate_tiers(tiers),
        Pricing::Package { package_size, package_price } => {
            non_negative(*package_price, "package_price")?;
            positive(*package_size, "package_size")
        }
        Pricing::Quota { base_fee, included: _, overage } => {
            non_negative(*base_fee, "base_fee")?;
            match overage {
                Overage::HardCap => Ok(()),
                Overage::Metered { unit_price, per } => {
                    non_negative(*unit_price, "overage.unit_price")?;
                    positive(*per, "overage.per")
                }
            }
        }
    }
}

fn validate_tiers(tiers: &[Tier]) -> Result<(), PricingError> {
    let last = tiers.len().checked_sub(1).ok_or(PricingError::NoTiers)?;
    let mut previous = 0u64;
    for (index, tier) in tiers.iter().enumerate() {
        non_negative(tier.unit_price, "tiers.unit_price")?;
        non_negative(tier.flat_fee.unwrap_or(0), "tiers.flat_fee")?;
        positive(tier.per, "tiers.per")?;
        match (tier.up_to, index == last) {
            (Some(up_to), false) if up_to > previous => previous = up_to,
            (Some(_), false) => return Err(PricingError::TiersNotAscending { index }),
            (None, true) => {}
            (Some(_), true) | (None, false) => return Err(PricingError::UnboundedTier { index }),
        }
    }
    Ok(())
}

/// `quantity × unit_price / per`, computed exactly and rounded half up to a minor unit (the
/// rounding rule in the module docs). Errors only if the result cannot be represented.
pub(crate) fn line_amount(quantity: u64, unit_price: i64, per: u64) -> Result<i128, BillingError> {
    // u64 × i64 always fits in i128 ((2^64-1)(2^63-1) < 2^127-1); checked anyway.
    let exact = i128::from(quantity).checked_mul(i128::from(unit_price)).ok_or(BillingError::Overflow)?;
    let per = i128::from(per);
    let (whole, remainder) = match (exact.checked_div(per), exact.checked_rem(per)) {
        (Some(whole), Some(remainder)) => (whole, remainder),
        _ => return Err(PricingError::ZeroDivisor { field: "per" }.into()),
    };
    // remainder < per ≤ u64::MAX, so doubling it cannot overflow i128.
    Ok(if remainder * 2 >= per { whole + 1 } else { whole })
}

/// Whole packages of `package_size` needed for `quantity` units: always rounded up.
pub(crate) fn packages(quantity: u64, package_size: u64) -> Result<u64, BillingError> {
    let zero = || BillingError::from(PricingError::ZeroDivisor { field: "package_size" });
    let whole = quantity.checked_div(package_size).ok_or_else(zero)?;
    let partial = quantity.checked_rem(package_size).ok_or_else(zero)? != 0;
    Ok(whole + u64::from(partial))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe_tiers() -> Vec<Tier> {
        vec![Tier::new(Some(5), 500), Tier::new(Some(10), 400), Tier::new(None, 300)]
    }

    #[test]
    fn rounding_is_half_up_once_per_line() {
        // 1,500 requests at 1¢ per 1,000 = 1.5¢ → 2¢; 1,499 → 1.499¢ → 1¢; 500 → 0.5¢ → 1¢.
        assert_eq!(line_amount(1_500, 1, 1_000).unwrap(), 2);
        assert_eq!(line_amount(1_499, 1, 1_000).unwrap(), 1);
        assert_eq!(line_amount(500, 1, 1_000).unwrap(), 1);
        assert_eq!(line_amount(499, 1, 1_000).unwrap(), 0);
        // Rounding once per line, not per request: 999 requests at 1¢/1,000 is 1¢, whereas
        // rounding each request (0.001¢ → 0¢) would give 0¢.
        assert_eq!(line_amount(999, 1, 1_000).unwrap(), 1);
        // $0.50 per 1,000 for 150,000 requests is exactly $75.
        assert_eq!(line_amount(150_000, 50, 1_000).unwrap(), 7_500);
        assert_eq!(line_amount(0, 50, 1_000).unwrap(), 0);
        assert_eq!(line_amount(u64::MAX, i64::MAX, 1).unwrap(), i128::from(u64::MAX) * i128::from(i64::MAX));
        assert_eq!(line_amount(u64::MAX, i64::MAX, u64::MAX).unwrap(), i128::from(i64::MAX));
    }

    #[test]
    fn packages_round_up() {
        assert_eq!(packages(0, 100).unwrap(), 0);
        assert_eq!(packages(1, 100).unwrap(), 1);
        assert_eq!(packages(100, 100).unwrap(), 1);
        assert_eq!(packages(101, 100).unwrap(), 2);
        assert_eq!(packages(201, 100).unwrap(), 3);
        assert_eq!(packages(u64::MAX, 1).unwrap(), u64::MAX);
        assert_eq!(packages(u64::MAX, 2).unwrap(), u64::MAX / 2 + 1);
        assert!(packages(5, 0).is_err());
    }

    #[test]
    fn accepts_every_model() {
        let usd = Currency::USD;
        let metered = Overage::Metered { unit_price: 50, per: 1_000 };
        for pricing in [
            Pricing::Free,
            Pricing::Flat { amount: 4_900 },
            Pricing::PerUnit { unit_price: 50, per: 1_000 },
            Pricing::Graduated { tiers: stripe_tiers() },
            Pricing::Volume { tiers: vec![Tier::new(None, 1).flat_fee(100)] },
            Pricing::Package { package_size: 100, package_price: 500 },
            Pricing::Quota { base_fee: 4_900, included: 100_000, overage: metered },
            Pricing::Quota { base_fee: 0, included: 1_000, overage: Overage::HardCap },
        ] {
            assert!(PlanPrice::new(usd, pricing.clone()).is_ok(), "{pricing:?}");
        }
    }

    #[test]
    fn rejects_bad_tiers() {
        let check = |tiers: Vec<Tier>, expected: PricingError| {
            assert_eq!(PlanPrice::new(Currency::USD, Pricing::Graduated { tiers: tiers.clone() }), Err(expected.clone()));
            assert_eq!(PlanPrice::new(Currency::USD, Pricing::Volume { tiers }), Err(expected));
        };
        check(vec![], PricingError::NoTiers);
        check(vec![Tier::new(Some(5), 1)], PricingError::UnboundedTier { index: 0 });
        check(vec![Tier::new(None, 1), Tier::new(None, 1)], PricingError::UnboundedTier { index: 0 });
        check(vec![Tier::new(Some(5), 1), Tier::new(Some(5), 1), Tier::new(None, 1)], PricingError::TiersNotAscending { index: 1 });
        check(vec![Tier::new(Some(5), 1), Tier::new(Some(3), 1), Tier::new(None, 1)], PricingError::TiersNotAscending { index: 1 });
        check(vec![Tier::new(Some(0), 1), Tier::new(None, 1)], PricingError::TiersNotAscending { index: 0 });
        check(vec![Tier::new(Some(5), -1), Tier::new(None, 1)], PricingError::NegativePrice { field: "tiers.unit_price" });
        check(vec![Tier::new(None, 1).flat_fee(-1)], PricingError::NegativePrice { field: "tiers.flat_fee" });
        check(vec![Tier::new(None, 1).per(0)], PricingError::ZeroDivisor { field: "tiers.per" });
    }

    #[test]
    fn rejects_negative_prices_and_zero_divisors() {
        let bad = [
            (Pricing::Flat { amount: -1 }, PricingError::NegativePrice { field: "amount" }),
            (Pricing::PerUnit { unit_price: -1, per: 1 }, PricingError::NegativePrice { field: "unit_price" }),
            (Pricing::PerUnit { unit_price: 1, per: 0 }, PricingError::ZeroDivisor { field: "per" }),
            (Pricing::Package { package_size: 0, package_price: 1 }, PricingError::ZeroDivisor { field: "package_size" }),
            (Pricing::Package { package_size: 1, package_price: -1 }, PricingError::NegativePrice { field: "package_price" }),
            (Pricing::Quota { base_fee: -1, included: 0, overage: Overage::HardCap }, PricingError::NegativePrice { field: "base_fee" }),
            (
                Pricing::Quota { base_fee: 0, included: 0, overage: Overage::Metered { unit_price: 1, per: 0 } },
                PricingError::ZeroDivisor { field: "overage.per" },
            ),
            (
                Pricing::Quota { base_fee: 0, included: 0, overage: Overage::Metered { unit_price: -1, per: 1 } },
                PricingError::NegativePrice { field: "overage.unit_price" },
            ),
        ];
        for (pricing, expected) in bad {
            assert_eq!(PlanPrice::new(Currency::USD, pricing), Err(expected));
        }
    }

    #[test]
    fn hard_cap_is_exposed_for_the_gateway() {
        let capped = Pricing::Quota { base_fee: 0, included: 1_000, overage: Overage::HardCap };
        assert_eq!(PlanPrice::new(Currency::USD, capped).unwrap().hard_cap(), Some(1_000));
        let metered = Pricing::Quota { base_fee: 0, included: 1_000, overage: Overage::Metered { unit_price: 1, per: 1 } };
        assert_eq!(PlanPrice::new(Currency::USD, metered).unwrap().hard_cap(), None);
        assert_eq!(PlanPrice::new(Currency::USD, Pricing::Free).unwrap().hard_cap(), None);
    }

    #[test]
    fn serde_is_tagged_snake_case_and_validates_on_load() {
        let plan = PlanPrice::new(
            Currency::USD,
            Pricing::Quota { base_fee: 4_900, included: 100_000, overage: Overage::Metered { unit_price: 50, per: 1_000 } },
        )
        .unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(
            json,
            r#"{"currency":"usd","pricing":{"model":"quota","base_fee":4900,"included":100000,"overage":{"kind":"metered","unit_price":50,"per":1000}}}"#
        );
        assert_eq!(serde_json::from_str::<PlanPrice>(&json).unwrap(), plan);

        let graduated: Pricing = serde_json::from_str(
            r#"{"model":"graduated","tiers":[{"up_to":5,"unit_price":500},{"up_to":null,"unit_price":300,"flat_fee":100}]}"#,
        )
        .unwrap();
        assert_eq!(graduated, Pricing::Graduated { tiers: vec![Tier::new(Some(5), 500), Tier::new(None, 300).flat_fee(100)] });
        assert_eq!(serde_json::to_string(&Pricing::Free).unwrap(), r#"{"model":"free"}"#);
        let per_unit: Pricing = serde_json::from_str(r#"{"model":"per_unit","unit_price":50,"per":1000}"#).unwrap();
        assert_eq!(per_unit, Pricing::PerUnit { unit_price: 50, per: 1_000 });

        let invalid = r#"{"currency":"usd","pricing":{"model":"volume","tiers":[{"up_to":5,"unit_price":1}]}}"#;
        assert!(serde_json::from_str::<PlanPrice>(invalid).is_err());
        let bad_currency = r#"{"currency":"dollars","pricing":{"model":"free"}}"#;
        assert!(serde_json::from_str::<PlanPrice>(bad_currency).is_err());
    }
}
