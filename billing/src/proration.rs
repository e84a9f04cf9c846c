//! Proration of base fees when a plan changes mid-period, by the second.
//!
//! # Rule
//!
//! Usage in a period is always priced on the plan in effect at the period's end; only base fees
//! are prorated. When a subscription moves from plan A (base fee `a`) to plan B (base fee `b`)
//! after `elapsed` of the period's `period` seconds, the period's invoice (which charges B's full
//! base fee) gets two adjustment lines:
//!
//! - `+ a × elapsed / period` — A's base fee for the part of the period A was in effect;
//! - `− b × elapsed / period` — B's base fee for the part of the period B was not.
//!
//! So the base fees charged for the period are `a × f + b × (1 − f)` with `f = elapsed/period`,
//! and several changes in one period telescope the same way. A cancellation "now" is the same
//! with `b = 0`: the line credits the unused part of the base fee.
//!
//! A free trial waives the base fee for the trial's seconds inside the period:
//! `− base × trial_seconds / period`.
//!
//! # Rounding: in the ledger's favour, by less than one minor unit per line
//!
//! Each amount is computed exactly in `i128` and rounded once per line: a **charge** up
//! ([`prorate_charge`]), a **credit** down ([`prorate_credit`]). So the base fees of a period are
//! never below the exact time integral of the fees of the plans held (a developer cannot gain a
//! fraction of a cent per change by timing changes, however many) and exceed it by less than one
//! minor unit per line. [`prorate`] (half to even) is for figures shown, not for ledger lines.

use crate::BillingError;

/// `amount × part / whole`, exact, rounded half to even. `0 ≤ part ≤ whole`, `whole > 0`,
/// `amount ≥ 0`; anything else is [`BillingError::InvalidPeriod`].
pub fn prorate(amount: i64, part: i64, whole: i64) -> Result<i64, BillingError> {
    if whole <= 0 || part < 0 || part > whole || amount < 0 {
        return Err(BillingError::InvalidPeriod { start: part, end: whole });
    }
    let exact = i128::from(amount) * i128::from(part);
    let whole = i128::from(whole);
    let (q, r) = (exact / whole, exact % whole);
    let rounded = match (2 * r).cmp(&whole) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    };
    // rounded ≤ amount because part ≤ whole.
    i64::try_from(rounded).map_err(|_| BillingError::Overflow)
}

/// `amount × part / whole` rounded **down**: what a ledger credits. Same domain as [`prorate`].
pub fn prorate_credit(amount: i64, part: i64, whole: i64) -> Result<i64, BillingError> {
    let (q, _) = exact_parts(amount, part, whole)?;
    i64::try_from(q).map_err(|_| BillingError::Overflow)
}

/// `amount × part / whole` rounded **up**: what a ledger charges. Same domain as [`prorate`].
pub fn prorate_charge(amount: i64, part: i64, whole: i64) -> Result<i64, BillingError> {
    let (q, r) = exact_parts(amount, part, whole)?;
    i64::try_from(q + i128::from(r != 0)).map_err(|_| BillingError::Overflow)
}

fn exact_parts(amount: i64, part: i64, whole: i64) -> Result<(i128, i128), BillingError> {
    if whole <= 0 || part < 0 || part > whole || amount < 0 {
        return Err(BillingError::InvalidPeriod { start: part, end: whole });
    }
    let exact = i128::from(amount) * i128::from(part);
    Ok((exact / i128::from(whole), exact % i128::from(whole)))
}

/// The two adjustment amounts of a mid-period change from base fee `old_base` to `new_base`
/// at `elapsed` seconds into a `period`-second period: `(old_used, new_unused)`, to be added as
/// `+old_used` and `−new_unused` to the period's invoice (see the module docs): the charge
/// rounded up, the credit down.
pub fn change_adjustments(old_base: i64, new_base: i64, elapsed: i64, period: i64) -> Result<(i64, i64), BillingError> {
    Ok((prorate_charge(old_base, elapsed, period)?, prorate_credit(new_base, elapsed, period)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn halves_round_to_even() {
        // 1 × 1/2 = 0.5 → 0; 3 × 1/2 = 1.5 → 2; 5 × 1/2 = 2.5 → 2.
        assert_eq!(prorate(1, 1, 2).unwrap(), 0);
        assert_eq!(prorate(3, 1, 2).unwrap(), 2);
        assert_eq!(prorate(5, 1, 2).unwrap(), 2);
        // 100 × 1/3 = 33.33 → 33; 200 × 1/3 = 66.67 → 67.
        assert_eq!(prorate(100, 1, 3).unwrap(), 33);
        assert_eq!(prorate(200, 1, 3).unwrap(), 67);
        assert_eq!(prorate(4_900, 0, 2_678_400).unwrap(), 0);
        assert_eq!(prorate(4_900, 2_678_400, 2_678_400).unwrap(), 4_900);
        assert!(prorate(1, 3, 2).is_err());
        assert!(prorate(1, -1, 2).is_err());
        assert!(prorate(1, 0, 0).is_err());
        assert!(prorate(-1, 0, 1).is_err());
        assert_eq!(prorate(i64::MAX, 1, 1).unwrap(), i64::MAX);
    }

    #[test]
    fn upgrade_after_ten_days_of_a_thirty_day_month() {
        // $10 → $49 ten days into a 30-day month: $10 × 1/3 = $3.333 used, $49 × 1/3 = $16.333 not.
        let (old_used, new_unused) = change_adjustments(1_000, 4_900, 10 * 86_400, 30 * 86_400).unwrap();
        // Base fees charged: 4900 + 334 − 1633 = 3601 ≥ 10×1/3 + 49×2/3 = 3.33 + 32.67 = 3600
        // exactly: the charge rounds up (333.33 → 334), the credit down (1633.33 → 1633).
        assert_eq!((old_used, new_unused), (334, 1_633));
        assert_eq!(4_900 + old_used - new_unused, 3_601);
    }

    proptest! {
        #[test]
        fn charges_round_up_and_credits_down_within_one_unit(amount in 0i64..10_000_000_000, whole in 1i64..100_000_000, part in 0i64..100_000_000) {
            let part = part % (whole + 1);
            let exact = i128::from(amount) * i128::from(part);
            let (up, down) = (prorate_charge(amount, part, whole).unwrap(), prorate_credit(amount, part, whole).unwrap());
            let w = i128::from(whole);
            prop_assert!(i128::from(up) * w >= exact && (i128::from(up) - 1) * w < exact);
            prop_assert!(i128::from(down) * w <= exact && (i128::from(down) + 1) * w > exact);
            prop_assert!(0 <= down && down <= up && up <= amount);
        }

        #[test]
        fn bounded_monotone_and_complementary(amount in 0i64..10_000_000_000, whole in 1i64..100_000_000, a in 0i64..100_000_000, b in 0i64..100_000_000) {
            let (a, b) = (a % (whole + 1), b % (whole + 1));
            let (lo, hi) = (a.min(b), a.max(b));
            let p_lo = prorate(amount, lo, whole).unwrap();
            let p_hi = prorate(amount, hi, whole).unwrap();
            prop_assert!(0 <= p_lo && p_lo <= p_hi && p_hi <= amount);
            // Used part + unused part differ from the whole amount by at most one minor unit.
            let rest = prorate(amount, whole - lo, whole).unwrap();
            prop_assert!((p_lo + rest - amount).abs() <= 1);
            // Never more than half a minor unit from the exact value.
            let exact2 = 2 * i128::from(amount) * i128::from(lo);
            prop_assert!((2 * i128::from(p_lo) * i128::from(whole) - exact2).abs() <= i128::from(whole));
        }

        #[test]
        fn telescoping_base_fees_stay_between_the_two_plans(a in 0i64..1_000_000, b in 0i64..1_000_000, whole in 1i64..3_000_000, e in 0i64..3_000_000) {
            let e = e % (whole + 1);
            let (used, unused) = change_adjustments(a, b, e, whole).unwrap();
            let charged = b + used - unused;
            prop_assert!(charged >= a.min(b) - 1 && charged <= a.max(b) + 1);
        }
    }
}
