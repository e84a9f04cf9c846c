//! Display formatting for counts and times. Money is formatted by its own type,
//! [`turnpike_billing::Money`] (`Money::from_stored(minor, code).format()`): one formatter, which
//! knows every currency's number of decimals.

use time::macros::format_description;
use time::OffsetDateTime;
use turnpike_billing::group_thousands;

/// A signed count with thousands separators.
pub fn count(n: i64) -> String {
    if n < 0 {
        format!("-{}", group_thousands(n.unsigned_abs()))
    } else {
        group_thousands(n.unsigned_abs())
    }
}

/// `part` as a share of `whole` with one decimal, e.g. `"33.3%"` (integer math, half up).
pub fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "0%".to_owned();
    }
    let permille = (i128::from(part) * 1000 + i128::from(whole) / 2) / i128::from(whole);
    format!("{}.{}%", permille / 10, permille % 10)
}

/// A latency in microseconds for people: `"850 µs"`, `"12.4 ms"`, `"1.52 s"`; "—" for none.
pub fn latency(us: Option<u64>) -> String {
    match us {
        None => "—".to_owned(),
        Some(us) if us < 1_000 => format!("{us} µs"),
        Some(us) if us < 100_000 => format!("{}.{} ms", us / 1_000, us % 1_000 / 100),
        Some(us) if us < 1_000_000 => format!("{} ms", us / 1_000),
        Some(us) => format!("{}.{:02} s", us / 1_000_000, us % 1_000_000 / 10_000),
    }
}

/// Unix seconds → `"2026-11-23 12:00 UTC"`.
pub fn datetime(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&fmt).ok()).unwrap_or_else(|| "—".to_owned())
}

/// A chart's day label: `"May 28"`.
pub fn day_label(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix).map(|t| format!("{} {}", &t.month().to_string()[..3], t.day())).unwrap_or_default()
}

/// A chart's hour label: `"14:00"`.
pub fn hour_label(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix).map(|t| format!("{:02}:00", t.hour())).unwrap_or_default()
}

/// The first second of the UTC calendar month containing `unix`.
pub fn month_start(unix: i64) -> i64 {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.replace_day(1).ok())
        .map(|t| t.replace_time(time::Time::MIDNIGHT).unix_timestamp())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_and_times() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(-1_234_567), "-1,234,567");
        assert_eq!(datetime(1_795_435_200), "2026-11-23 12:00 UTC");
        assert_eq!(
            (percent(0, 0), percent(1, 3), percent(2, 3), percent(5, 5)),
            ("0%".into(), "33.3%".into(), "66.7%".into(), "100.0%".into())
        );
        assert_eq!(
            [None, Some(850), Some(12_480), Some(250_000), Some(1_520_000)].map(latency),
            ["—", "850 µs", "12.4 ms", "250 ms", "1.52 s"]
        );
        // 2026-11-23 12:00 → 2026-11-01 00:00
        assert_eq!(datetime(month_start(1_795_435_200)), "2026-11-01 00:00 UTC");
    }

    proptest! {
        #[test]
        fn month_start_is_a_first_midnight(unix in 0i64..4_000_000_000) {
            let start = month_start(unix);
            prop_assert!(start <= unix && unix - start < 31 * 86_400);
            let t = OffsetDateTime::from_unix_timestamp(start).unwrap();
            prop_assert_eq!((t.day(), t.hour(), t.minute(), t.second()), (1, 0, 0, 0));
        }
    }
}
