//! When will a quota run out at the current rate?

/// Seconds from now until `quota` is used up if usage continues at the period's average rate
/// so far (`used / elapsed_secs`), or `None` if it will not run out before the period ends.
///
/// Integer math only: the answer is `ceil((quota - used) × elapsed / used)`, the first whole
/// second at which the projected usage reaches the quota. It counts only if that moment is
/// strictly before the end of the period (`period_secs - elapsed_secs` from now); reaching the
/// quota exactly as the period ends refuses nothing.
///
/// - Already at or over quota: `Some(0)`.
/// - No usage yet, or no time elapsed: `None` (no rate to extrapolate).
/// - Inconsistent input (negative times, elapsed beyond the period): `None`.
pub fn forecast_exhaustion(used: u64, quota: u64, elapsed_secs: i64, period_secs: i64) -> Option<i64> {
    if elapsed_secs < 0 || period_secs < elapsed_secs {
        return None;
    }
    if used >= quota {
        return Some(0);
    }
    if used == 0 || elapsed_secs == 0 {
        return None;
    }
    let remaining_secs = i128::from(period_secs) - i128::from(elapsed_secs);
    // (quota - used) < 2^64 and elapsed < 2^63, so the product fits in i128.
    let numerator = i128::from(quota - used) * i128::from(elapsed_secs);
    let used = i128::from(used);
    let secs = numerator / used + i128::from(numerator % used != 0);
    if secs < remaining_secs {
        i64::try_from(secs).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400;

    #[test]
    fn extrapolates_the_average_rate() {
        // 10 days in, 50k of 100k used: another 10 days at the same rate, well within 30.
        assert_eq!(forecast_exhaustion(50_000, 100_000, 10 * DAY, 30 * DAY), Some(10 * DAY));
        // 3 used in 10 s, 10 allowed: 7 more take 70/3 = 23.33 s → 24 s.
        assert_eq!(forecast_exhaustion(3, 10, 10, 100), Some(24));
    }

    #[test]
    fn none_when_it_lasts_the_period() {
        assert_eq!(forecast_exhaustion(10_000, 100_000, 10 * DAY, 30 * DAY), None);
        // Reaching the quota exactly at the end of the period is not running out.
        assert_eq!(forecast_exhaustion(50, 100, 50, 100), None);
        assert_eq!(forecast_exhaustion(51, 100, 50, 100), Some(49));
    }

    #[test]
    fn edge_cases() {
        assert_eq!(forecast_exhaustion(100, 100, 5, 100), Some(0));
        assert_eq!(forecast_exhaustion(150, 100, 5, 100), Some(0));
        assert_eq!(forecast_exhaustion(0, 0, 0, 100), Some(0));
        assert_eq!(forecast_exhaustion(0, 100, 50, 100), None);
        assert_eq!(forecast_exhaustion(10, 100, 0, 100), None);
        assert_eq!(forecast_exhaustion(10, 100, -1, 100), None);
        assert_eq!(forecast_exhaustion(10, 100, 200, 100), None);
        assert_eq!(forecast_exhaustion(1, u64::MAX, i64::MAX - 1, i64::MAX), None);
        assert_eq!(forecast_exhaustion(u64::MAX - 1, u64::MAX, 1, i64::MAX), Some(1));
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_within_the_period(used: u64, quota: u64, elapsed: i64, period: i64) {
            if let Some(secs) = forecast_exhaustion(used, quota, elapsed, period) {
                prop_assert!(secs >= 0);
                prop_assert!(secs == 0 || i128::from(secs) < i128::from(period) - i128::from(elapsed));
            }
        }

        #[test]
        fn projected_usage_reaches_the_quota(used in 1u64..1_000_000, extra in 1u64..1_000_000, elapsed in 1i64..1_000_000) {
            let quota = used + extra;
            if let Some(secs) = forecast_exhaustion(used, quota, elapsed, i64::MAX) {
                // At the forecast second the projection has reached the quota, one second earlier it has not.
                let at = |t: i64| i128::from(used) * i128::from(elapsed + t);
                prop_assert!(at(secs) >= i128::from(quota) * i128::from(elapsed));
                prop_assert!(at(secs - 1) < i128::from(quota) * i128::from(elapsed));
            }
        }
    }
}
