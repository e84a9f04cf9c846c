//! Property tests of the pricing functions: invariants that must hold for every plan and usage.

use proptest::prelude::*;
use turnpike_billing::{invoice, Currency, Invoice, Money, Overage, PlanPrice, Pricing, Tier};

const PERIOD: (i64, i64) = (0, 2_592_000);

/// Ascending tiers from positive `steps` between bounds; the last tier is unbounded. Bounds
/// that would overflow `u64` end the list early.
fn tiers_from(steps: Vec<(u64, i64, u64, Option<i64>)>) -> Vec<Tier> {
    let mut tiers = Vec::new();
    let mut bound = 0u64;
    for (step, unit_price, per, flat_fee) in steps {
        match bound.checked_add(step) {
            Some(next) => {
                bound = next;
                tiers.push(Tier { up_to: Some(bound), unit_price, per, flat_fee });
            }
            None => break,
        }
    }
    match tiers.last_mut() {
        Some(last) => last.up_to = None,
        None => tiers.push(Tier::new(None, 0)),
    }
    tiers
}

/// Valid tiers with modest numbers (no overflow).
fn modest_tiers() -> impl Strategy<Value = Vec<Tier>> {
    prop::collection::vec((1u64..5_000, 0i64..10_000, prop_oneof![Just(1u64), 1u64..2_000], prop::option::of(0i64..10_000)), 1..6)
        .prop_map(tiers_from)
}

/// Valid tiers with anything up to the type limits.
fn extreme_tiers() -> impl Strategy<Value = Vec<Tier>> {
    prop::collection::vec((1u64.., 0i64.., 1u64.., prop::option::of(0i64..)), 1..6).prop_map(tiers_from)
}

/// Any valid pricing, amounts up to `i64::MAX`, divisors up to `u64::MAX`.
fn extreme_pricing() -> impl Strategy<Value = Pricing> {
    let overage = prop_oneof![Just(Overage::HardCap), (0i64.., 1u64..).prop_map(|(unit_price, per)| Overage::Metered { unit_price, per })];
    prop_oneof![
        Just(Pricing::Free),
        (0i64..).prop_map(|amount| Pricing::Flat { amount }),
        (0i64.., 1u64..).prop_map(|(unit_price, per)| Pricing::PerUnit { unit_price, per }),
        extreme_tiers().prop_map(|tiers| Pricing::Graduated { tiers }),
        extreme_tiers().prop_map(|tiers| Pricing::Volume { tiers }),
        (1u64.., 0i64..).prop_map(|(package_size, package_price)| Pricing::Package { package_size, package_price }),
        (0i64.., any::<u64>(), overage).prop_map(|(base_fee, included, overage)| Pricing::Quota { base_fee, included, overage }),
    ]
}

/// Anything at all, mostly invalid.
fn raw_pricing() -> impl Strategy<Value = Pricing> {
    let tier = (any::<Option<u64>>(), any::<i64>(), any::<u64>(), any::<Option<i64>>())
        .prop_map(|(up_to, unit_price, per, flat_fee)| Tier { up_to, unit_price, per, flat_fee });
    let tiers = prop::collection::vec(tier, 0..5);
    prop_oneof![
        any::<i64>().prop_map(|amount| Pricing::Flat { amount }),
        (any::<i64>(), any::<u64>()).prop_map(|(unit_price, per)| Pricing::PerUnit { unit_price, per }),
        tiers.clone().prop_map(|tiers| Pricing::Graduated { tiers }),
        tiers.prop_map(|tiers| Pricing::Volume { tiers }),
        (any::<u64>(), any::<i64>()).prop_map(|(package_size, package_price)| Pricing::Package { package_size, package_price }),
        (any::<i64>(), any::<u64>(), any::<i64>(), any::<u64>()).prop_map(|(base_fee, included, unit_price, per)| Pricing::Quota {
            base_fee,
            included,
            overage: Overage::Metered { unit_price, per }
        }),
    ]
}

/// Usage biased towards the interesting places: small, tier-sized, and near `u64::MAX`.
fn usage() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..30_000, any::<u64>(), (u64::MAX - 10)..=u64::MAX]
}

fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![Just(Currency::USD), Just(Currency::JPY), Just(Currency::KWD)]
}

fn total(plan: &PlanPrice, usage: u64) -> i64 {
    invoice(plan, usage, PERIOD).expect("modest plans do not overflow").total.minor()
}

fn sum_of_lines(inv: &Invoice) -> i128 {
    inv.lines.iter().map(|line| i128::from(line.amount.minor())).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn total_is_exactly_the_sum_of_the_lines(pricing in extreme_pricing(), usage in usage(), currency in currency()) {
        let plan = PlanPrice::new(currency, pricing).expect("generated plans are valid");
        if let Ok(inv) = invoice(&plan, usage, PERIOD) {
            prop_assert_eq!(i128::from(inv.total.minor()), sum_of_lines(&inv));
            prop_assert!(inv.lines.iter().all(|line| line.amount.currency() == currency && !line.amount.is_negative()));
            prop_assert_eq!(inv.total.currency(), currency);
        }
    }

    #[test]
    fn never_panics_on_any_input(pricing in raw_pricing(), usage in usage(), start: i64, end: i64) {
        if let Ok(plan) = PlanPrice::new(Currency::USD, pricing) {
            let _ = invoice(&plan, usage, (start, end));
            let _ = invoice(&plan, usage, PERIOD);
        }
    }

    #[test]
    fn extreme_valid_plans_are_ok_or_an_error(pricing in extreme_pricing(), usage in usage()) {
        let plan = PlanPrice::new(Currency::USD, pricing).expect("generated plans are valid");
        match invoice(&plan, usage, PERIOD) {
            Ok(inv) => prop_assert_eq!(i128::from(inv.total.minor()), sum_of_lines(&inv)),
            Err(e) => prop_assert_eq!(e.code(), "billing.overflow"),
        }
    }

    #[test]
    fn an_invoice_is_a_pure_function_of_plan_and_usage(pricing in extreme_pricing(), usage in usage()) {
        let plan = PlanPrice::new(Currency::USD, pricing).expect("generated plans are valid");
        prop_assert_eq!(invoice(&plan, usage, PERIOD), invoice(&plan.clone(), usage, PERIOD));
    }

    #[test]
    fn graduated_price_is_monotonic_in_usage(tiers in modest_tiers(), a in 0u64..30_000, b in 0u64..30_000) {
        let plan = PlanPrice::new(Currency::USD, Pricing::Graduated { tiers }).expect("valid");
        let (low, high) = (a.min(b), a.max(b));
        prop_assert!(total(&plan, low) <= total(&plan, high));
        prop_assert!(total(&plan, high) <= total(&plan, high + 1));
    }

    #[test]
    fn volume_never_exceeds_units_at_the_first_tier_price(
        steps in prop::collection::vec((1u64..5_000, 0i64..10_000), 1..6),
        per in prop_oneof![Just(1u64), 1u64..2_000],
        usage in 0u64..30_000,
    ) {
        // Prices that never increase from tier to tier, one `per` for all, no flat fees.
        let mut prices: Vec<i64> = steps.iter().map(|&(_, price)| price).collect();
        prices.sort_unstable_by(|x, y| y.cmp(x));
        let tiers = tiers_from(steps.iter().zip(&prices).map(|(&(step, _), &price)| (step, price, per, None)).collect());
        let first = Money::new(tiers[0].unit_price, Currency::USD);
        let plan = PlanPrice::new(Currency::USD, Pricing::Volume { tiers }).expect("valid");
        let at_first_tier = PlanPrice::new(Currency::USD, Pricing::PerUnit { unit_price: first.minor(), per }).expect("valid");
        prop_assert!(total(&plan, usage) <= total(&at_first_tier, usage));
    }

    #[test]
    fn hard_cap_ignores_usage_beyond_the_quota(base_fee in 0i64.., included: u64, usage in usage(), beyond: u64) {
        let plan = PlanPrice::new(Currency::USD, Pricing::Quota { base_fee, included, overage: Overage::HardCap }).expect("valid");
        let capped = usage.min(included);
        let over = included.saturating_add(beyond);
        prop_assert_eq!(invoice(&plan, usage, PERIOD), invoice(&plan, capped, PERIOD));
        prop_assert_eq!(invoice(&plan, over, PERIOD), invoice(&plan, included, PERIOD));
    }

    #[test]
    fn metered_quota_matches_a_graduated_plan_with_a_free_first_tier(
        included in 1u64..50_000, unit_price in 0i64..10_000, per in 1u64..5_000, usage in 0u64..100_000,
    ) {
        let quota = Pricing::Quota { base_fee: 0, included, overage: Overage::Metered { unit_price, per } };
        let graduated = Pricing::Graduated { tiers: vec![Tier::new(Some(included), 0), Tier::new(None, unit_price).per(per)] };
        let (quota, graduated) = (PlanPrice::new(Currency::USD, quota).expect("valid"), PlanPrice::new(Currency::USD, graduated).expect("valid"));
        prop_assert_eq!(invoice(&quota, usage, PERIOD), invoice(&graduated, usage, PERIOD));
    }

    #[test]
    fn package_total_is_whole_packages_times_price(size in 1u64..10_000, price in 0i64..100_000, usage in 0u64..1_000_000) {
        let plan = PlanPrice::new(Currency::USD, Pricing::Package { package_size: size, package_price: price }).expect("valid");
        let packages = usage.div_ceil(size);
        prop_assert_eq!(i128::from(total(&plan, usage)), i128::from(packages) * i128::from(price));
    }

    #[test]
    fn per_unit_total_is_the_exact_amount_rounded_half_up(unit_price in 0i64..1_000_000, per in 1u64..100_000, usage in 0u64..10_000_000) {
        let plan = PlanPrice::new(Currency::USD, Pricing::PerUnit { unit_price, per }).expect("valid");
        // Compare cross-multiplied so the check itself does no rounding: |2·total·per − 2·exact| ≤ per,
        // with ties (exactly half) rounding up.
        let exact2 = 2 * i128::from(usage) * i128::from(unit_price);
        let got2 = 2 * i128::from(total(&plan, usage)) * i128::from(per);
        let per = i128::from(per);
        prop_assert!(got2 - exact2 <= per && exact2 - got2 < per, "got {got2}, exact {exact2}, per {per}");
    }
}
