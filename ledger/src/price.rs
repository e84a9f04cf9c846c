//! Which requests a price charges for, the price in effect at an instant, and whether a plan needs payment.

use turnpike_store::{Plan, PlanPriceRow, Store};

use turnpike_billing::{Currency, Overage, PlanPrice, Pricing};

use crate::*;

/// Which metered requests a price charges for (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Billable {
    /// Every admitted request.
    Admitted,
    /// Admitted requests minus 5xx responses.
    AdmittedNon5xx,
}

impl Billable {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Billable::Admitted => "admitted",
            Billable::AdmittedNon5xx => "admitted_non_5xx",
        }
    }
    /// Parse the stored value.
    pub fn parse(s: &str) -> Option<Billable> {
        match s {
            "admitted" => Some(Billable::Admitted),
            "admitted_non_5xx" => Some(Billable::AdmittedNon5xx),
            _ => None,
        }
    }
    /// Billable quantity from bucket totals (never negative).
    pub fn quantity(self, admitted: i64, status_5xx: i64) -> u64 {
        let n = match self {
            Billable::Admitted => admitted,
            Billable::AdmittedNon5xx => admitted - status_5xx,
        };
        u64::try_from(n).unwrap_or(0)
    }
}

/// A plan's price as in effect at some instant.
#[derive(Debug, Clone)]
pub struct EffectivePrice {
    /// The plan.
    pub plan: Plan,
    /// The stored version, if any (`None`: derived from the plan's legacy price columns).
    pub row: Option<PlanPriceRow>,
    /// The validated price.
    pub price: PlanPrice,
    /// Free trial days.
    pub trial_days: i64,
    /// Billable rule.
    pub billable: Billable,
}

impl EffectivePrice {
    /// The fixed fee per period.
    pub fn base_fee(&self) -> i64 {
        base_fee(self.price.pricing())
    }
    /// `v3` or `legacy`.
    pub fn version_label(&self) -> String {
        self.row.as_ref().map_or_else(|| "legacy".to_owned(), |r| format!("v{}", r.version))
    }
}

/// The fixed part of a price per period.
pub fn base_fee(pricing: &Pricing) -> i64 {
    match pricing {
        Pricing::Flat { amount } => *amount,
        Pricing::Quota { base_fee, .. } => *base_fee,
        _ => 0,
    }
}

/// Whether subscribing to a plan at this price needs a payment method: anything that can
/// charge money. **The Stripe hook**: when Stripe is configured and this is true, the plan change
/// goes through Checkout instead of [`change_plan`].
pub fn needs_payment(price: &PlanPrice) -> bool {
    match price.pricing() {
        Pricing::Free => false,
        Pricing::Flat { amount } => *amount > 0,
        Pricing::PerUnit { unit_price, .. } => *unit_price > 0,
        Pricing::Graduated { tiers } | Pricing::Volume { tiers } => tiers.iter().any(|t| t.unit_price > 0 || t.flat_fee.unwrap_or(0) > 0),
        Pricing::Package { package_price, .. } => *package_price > 0,
        Pricing::Quota { base_fee, overage, .. } => {
            *base_fee > 0 || matches!(overage, Overage::Metered { unit_price, .. } if *unit_price > 0)
        }
    }
}

/// [`needs_payment`] for a plan's current price.
pub async fn plan_needs_payment(store: &Store, plan_id: i64, now: i64) -> Result<bool, LedgerError> {
    Ok(needs_payment(&price_at(store, plan_id, now).await?.price))
}

/// The price of a plan that has no stored version: its legacy columns (flat fee, price per
/// 1,000, quota as a hard cap when unpriced beyond it).
pub fn legacy_pricing(plan: &Plan) -> Pricing {
    match (plan.flat_price_minor, plan.unit_price_minor_per_1000, plan.monthly_quota) {
        (0, 0, _) => Pricing::Free,
        (fee, 0, Some(q)) => Pricing::Quota { base_fee: fee, included: u64::try_from(q).unwrap_or(0), overage: Overage::HardCap },
        (fee, 0, None) => Pricing::Flat { amount: fee },
        (fee, unit, _) => Pricing::Quota { base_fee: fee, included: 0, overage: Overage::Metered { unit_price: unit, per: 1_000 } },
    }
}

/// The price of `plan_id` in effect at `at`.
pub async fn price_at(store: &Store, plan_id: i64, at: i64) -> Result<EffectivePrice, LedgerError> {
    let plan = store.get_plan(plan_id).await?;
    let row = store.plan_price_at(plan_id, at).await?;
    let bad = |e: String| LedgerError::BadPrice(plan_id, e);
    let (price, trial_days, billable) = match &row {
        Some(r) => {
            let pricing: Pricing = serde_json::from_str(&r.pricing).map_err(|e| bad(e.to_string()))?;
            let currency = Currency::parse(&r.currency).map_err(|e| bad(e.to_string()))?;
            let price = PlanPrice::new(currency, pricing).map_err(|e| bad(e.to_string()))?;
            (price, r.trial_days, Billable::parse(&r.billable).unwrap_or(Billable::AdmittedNon5xx))
        }
        None => {
            let currency = Currency::parse(&plan.currency).map_err(|e| bad(e.to_string()))?;
            (PlanPrice::new(currency, legacy_pricing(&plan)).map_err(|e| bad(e.to_string()))?, 0, Billable::AdmittedNon5xx)
        }
    };
    Ok(EffectivePrice { plan, row, price, trial_days, billable })
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_billing::Tier;

    #[test]
    fn billable_rules() {
        assert_eq!(Billable::Admitted.quantity(10, 3), 10);
        assert_eq!(Billable::AdmittedNon5xx.quantity(10, 3), 7);
        // Status counts can briefly lead admitted counts between flushes: never negative.
        assert_eq!(Billable::AdmittedNon5xx.quantity(1, 3), 0);
        assert_eq!(Billable::parse("admitted"), Some(Billable::Admitted));
        assert_eq!(Billable::parse("x"), None);
    }

    #[test]
    fn payment_is_needed_only_when_something_can_cost_money() {
        let p = |pricing| PlanPrice::new(Currency::USD, pricing).unwrap();
        assert!(!needs_payment(&p(Pricing::Free)));
        assert!(!needs_payment(&p(Pricing::Quota { base_fee: 0, included: 100, overage: Overage::HardCap })));
        assert!(!needs_payment(&p(Pricing::Graduated { tiers: vec![Tier::new(None, 0)] })));
        assert!(needs_payment(&p(Pricing::Quota { base_fee: 0, included: 100, overage: Overage::Metered { unit_price: 1, per: 1 } })));
        assert!(needs_payment(&p(Pricing::Flat { amount: 1 })));
        assert!(needs_payment(&p(Pricing::Package { package_size: 10, package_price: 5 })));
    }
}
