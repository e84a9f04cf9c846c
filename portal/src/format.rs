//! Display formatting for money, counts and times. Money is integer minor units all the way
//! through: never a float, so "$0.10 + $0.20" is exactly "$0.30".

use time::macros::format_description;
use time::OffsetDateTime;

/// Digits after the decimal point for a currency (ISO 4217 exponent).
fn exponent(currency: &str) -> u32 {
    match currency {
        "jpy" | "krw" | "vnd" | "clp" | "isk" => 0,
        _ => 2,
    }
}

/// `4900, "usd"` → `"$49.00"`; `"eur"` → `"€49.00"`; any other code → `"49.00 GBP"`.
pub fn money(minor: i64, currency: &str) -> String {
    let currency = currency.to_ascii_lowercase();
    let exp = exponent(&currency);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let scale = 10u64.pow(exp);
    let whole = group_thousands(abs / scale);
    let amount = if exp == 0 { whole } else { format!("{whole}.{:0width$}", abs % scale, width = exp as usize) };
    match currency.as_str() {
        "usd" => format!("{sign}${amount}"),
        "eur" => format!("{sign}€{amount}"),
        other => format!("{sign}{amount} {}", other.to_ascii_uppercase()),
    }
}

/// `1234567` → `"1,234,567"`.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    // Digits are ASCII, so every 3-byte chunk is valid UTF-8.
    let groups: Vec<&str> = digits.as_bytes().rchunks(3).rev().map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    groups.join(",")
}

/// A signed count with thousands separators.
pub fn count(n: i64) -> String {
    if n < 0 {
        format!("-{}", group_thousands(n.unsigned_abs()))
    } else {
        group_thousands(n.unsigned_abs())
    }
}

/// Unix seconds → `"2026-11-23 12:00 UTC"`.
pub fn datetime(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&fmt).ok()).unwrap_or_else(|| "—".to_owned())
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
    fn money_formats() {
        assert_eq!(money(4900, "usd"), "$49.00");
        assert_eq!(money(5, "usd"), "$0.05");
        assert_eq!(money(123_456_789, "eur"), "€1,234,567.89");
        assert_eq!(money(4900, "gbp"), "49.00 GBP");
        assert_eq!(money(4900, "USD"), "$49.00");
        assert_eq!(money(-150, "usd"), "-$1.50");
        assert_eq!(money(500, "jpy"), "500 JPY");
        assert_eq!(money(i64::MIN, "usd"), "-$92,233,720,368,547,758.08");
    }

    #[test]
    fn counts_and_times() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(-1_234_567), "-1,234,567");
        assert_eq!(datetime(1_795_435_200), "2026-11-23 12:00 UTC");
        // 2026-11-23 12:00 → 2026-11-01 00:00
        assert_eq!(datetime(month_start(1_795_435_200)), "2026-11-01 00:00 UTC");
    }

    proptest! {
        #[test]
        fn money_roundtrips_through_digits(minor in any::<i64>()) {
            let s = money(minor, "usd");
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            let expected = minor.unsigned_abs().to_string();
            prop_assert_eq!(digits.trim_start_matches('0'), expected.trim_start_matches('0'));
            prop_assert_eq!(s.starts_with('-'), minor < 0);
            let cents = format!("{:02}", minor.unsigned_abs() % 100);
            prop_assert!(s.ends_with(&cents));
        }

        #[test]
        fn month_start_is_a_first_midnight(unix in 0i64..4_000_000_000) {
            let start = month_start(unix);
            prop_assert!(start <= unix && unix - start < 31 * 86_400);
            let t = OffsetDateTime::from_unix_timestamp(start).unwrap();
            prop_assert_eq!((t.day(), t.hour(), t.minute(), t.second()), (1, 0, 0, 0));
        }
    }
}
