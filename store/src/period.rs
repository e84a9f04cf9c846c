//! Calendar-true billing periods: a period is one calendar month long, anchored on the
//! subscription's billing anchor in UTC. An anchor on the 31st falls on the last day of shorter
//! months (Jan 31 → Feb 28/29 → Mar 31), the way card networks and Stripe count months.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime};

/// A half-open interval `[start, end)` in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First second of the period.
    pub start: i64,
    /// First second after the period.
    pub end: i64,
}

fn to_dt(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix.clamp(0, 253_402_300_799)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The anchor moved forward by `months` calendar months, clamping the day to the month's end.
fn add_months(anchor: OffsetDateTime, months: i64) -> i64 {
    let total = i64::from(anchor.year()) * 12 + i64::from(u8::from(anchor.month()) - 1) + months;
    let year = i32::try_from(total.div_euclid(12)).unwrap_or(9999).clamp(1970, 9999);
    let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1).unwrap_or(1)).unwrap_or(Month::January);
    let day = anchor.day().min(month.length(year));
    let date = Date::from_calendar_date(year, month, day).unwrap_or(anchor.date());
    PrimitiveDateTime::new(date, anchor.time()).assume_utc().unix_timestamp()
}

/// The monthly period anchored at `anchor` that contains `now`. Before the anchor, the first
/// period is returned.
pub fn monthly_period(anchor: i64, now: i64) -> Period {
    let a = to_dt(anchor);
    if now < anchor {
        return Period { start: anchor, end: add_months(a, 1) };
    }
    let n = to_dt(now);
    let mut k = (i64::from(n.year()) - i64::from(a.year())) * 12 + (i64::from(u8::from(n.month())) - i64::from(u8::from(a.month())));
    // The estimate is right or one too high (day/time of month earlier than the anchor's).
    while k > 0 && add_months(a, k) > now {
        k -= 1;
    }
    while add_months(a, k + 1) <= now {
        k += 1;
    }
    Period { start: add_months(a, k), end: add_months(a, k + 1) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn ts(dt: OffsetDateTime) -> i64 {
        dt.unix_timestamp()
    }

    #[test]
    fn month_end_anchor_clamps_and_recovers() {
        let anchor = ts(datetime!(2026-01-31 10:00 UTC));
        let p = monthly_period(anchor, ts(datetime!(2026-02-15 00:00 UTC)));
        assert_eq!(p.start, anchor);
        assert_eq!(p.end, ts(datetime!(2026-02-28 10:00 UTC)));
        let p = monthly_period(anchor, ts(datetime!(2026-03-01 00:00 UTC)));
        assert_eq!(p.start, ts(datetime!(2026-02-28 10:00 UTC)));
        assert_eq!(p.end, ts(datetime!(2026-03-31 10:00 UTC)));
    }

    #[test]
    fn a_month_is_not_thirty_days() {
        let anchor = ts(datetime!(2026-01-01 00:00 UTC));
        let p = monthly_period(anchor, ts(datetime!(2026-01-31 12:00 UTC)));
        assert_eq!(p.end, ts(datetime!(2026-02-01 00:00 UTC)));
        assert_eq!(p.end - p.start, 31 * 86_400);
        let p = monthly_period(anchor, ts(datetime!(2026-02-10 00:00 UTC)));
        assert_eq!(p.end - p.start, 28 * 86_400);
    }

    proptest! {
        #[test]
        fn period_contains_now_and_is_a_calendar_month(anchor in 0i64..4_000_000_000, delta in 0i64..400_000_000) {
            let now = anchor + delta;
            let p = monthly_period(anchor, now);
            prop_assert!(p.start <= now && now < p.end);
            let len = p.end - p.start;
            prop_assert!((28 * 86_400..=31 * 86_400).contains(&len));
            // The next period starts where this one ends.
            prop_assert_eq!(monthly_period(anchor, p.end).start, p.end);
        }
    }
}
