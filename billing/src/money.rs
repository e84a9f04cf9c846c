//! [`Money`]: a signed amount of integer minor units (cents) in one [`Currency`]. No floats, ever:
//! arithmetic is checked and an out-of-range result is [`BillingError::Overflow`], never a wrap or
//! a panic.

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use crate::{BillingError, Currency};

/// An amount of money: `minor` units (cents for USD, yen for JPY, fils for KWD) of `currency`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// `minor` units of `currency`: `Money::new(4900, Currency::USD)` is $49.00.
    pub const fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// An amount as the database keeps it: `minor` units and a currency code (see
    /// [`Currency::from_stored`]). `Money::from_stored(12_345, "kwd").format()` is `"12.345 KWD"`.
    pub fn from_stored(minor: i64, code: &str) -> Money {
        Money { minor, currency: Currency::from_stored(code) }
    }

    /// Nothing, in `currency`.
    pub const fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    /// The amount in minor units.
    pub const fn minor(&self) -> i64 {
        self.minor
    }

    /// The currency.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is below zero (a credit).
    pub const fn is_negative(&self) -> bool {
        self.minor < 0
    }

    /// An exact intermediate result (see the rounding rule in [`crate::pricing`]) as money, or
    /// [`BillingError::Overflow`] if it does not fit in `i64`.
    pub(crate) fn from_i128(minor: i128, currency: Currency) -> Result<Money, BillingError> {
        i64::try_from(minor).map(|minor| Money { minor, currency }).map_err(|_| BillingError::Overflow)
    }

    fn same_currency(&self, other: &Money) -> Result<(), BillingError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(BillingError::CurrencyMismatch { left: self.currency, right: other.currency })
        }
    }

    /// `self + other`; an error if the currencies differ or the sum overflows.
    pub fn checked_add(self, other: Money) -> Result<Money, BillingError> {
        self.same_currency(&other)?;
        let minor = self.minor.checked_add(other.minor).ok_or(BillingError::Overflow)?;
        Ok(Money { minor, ..self })
    }

    /// `self - other`; an error if the currencies differ or the difference overflows.
    pub fn checked_sub(self, other: Money) -> Result<Money, BillingError> {
        self.same_currency(&other)?;
        let minor = self.minor.checked_sub(other.minor).ok_or(BillingError::Overflow)?;
        Ok(Money { minor, ..self })
    }

    /// `self × quantity` (quantities are counts, hence `u64`); an error on overflow.
    pub fn checked_mul(self, quantity: u64) -> Result<Money, BillingError> {
        let product = i128::from(self.minor).checked_mul(i128::from(quantity)).ok_or(BillingError::Overflow)?;
        Money::from_i128(product, self.currency)
    }

    /// The sum of `amounts`, all of which must be in `currency`. Empty sums to zero.
    pub fn checked_sum<I: IntoIterator<Item = Money>>(amounts: I, currency: Currency) -> Result<Money, BillingError> {
        amounts.into_iter().try_fold(Money::zero(currency), Money::checked_add)
    }

    /// For people: symbol or code, thousands separators, the currency's number of decimals.
    /// `"$49.00"`, `"€1,234.50"`, `"¥500"`, `"12.345 KWD"`, `"-$5.00"`.
    pub fn format(&self) -> String {
        let symbol = self.currency.symbol();
        let mut out = String::new();
        if self.minor < 0 {
            out.push('-');
        }
        if let Some(symbol) = symbol {
            out.push_str(symbol);
        }
        self.write_digits(&mut out, true);
        if symbol.is_none() {
            out.push(' ');
            out.push_str(&self.currency.to_string());
        }
        out
    }

    /// For machines: a plain decimal with the currency's number of decimals and no symbol or
    /// separators (`"-1234.50"`, `"500"` for JPY). [`Money::parse`] reads it back exactly.
    pub fn to_decimal_string(&self) -> String {
        let mut out = String::new();
        if self.minor < 0 {
            out.push('-');
        }
        self.write_digits(&mut out, false);
        out
    }

    fn write_digits(&self, out: &mut String, grouped: bool) {
        let exp = self.currency.exponent();
        // exponent() is at most 3, so the scale is at most 1,000.
        let scale = 10u64.pow(exp);
        let abs = self.minor.unsigned_abs();
        let whole = abs / scale;
        if grouped {
            out.push_str(&group_thousands(whole));
        } else {
            let _ = write!(out, "{whole}");
        }
        if exp > 0 {
            let _ = write!(out, ".{:0width$}", abs % scale, width = exp as usize);
        }
    }

    /// Parse a decimal string such as `"49"`, `"49.5"`, `"49.00"` or `"-5.00"` into `currency`.
    ///
    /// Rejects anything else: empty input, signs other than a leading `-`, separators, symbols,
    /// whitespace, a bare `.`, and more decimal places than the currency has (`"1.005"` USD,
    /// `"500.0"` JPY) — an amount that cannot be represented is an error, not silently rounded.
    pub fn parse(input: &str, currency: Currency) -> Result<Money, BillingError> {
        let invalid = |reason| BillingError::InvalidAmount { input: input.to_owned(), reason };
        let (negative, unsigned) = match input.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
            return Err(invalid("expected digits with an optional `-` sign and `.` decimal point"));
        }
        let fraction = fraction.unwrap_or("");
        let exp = currency.exponent() as usize;
        if fraction.len() > exp {
            return Err(invalid("more decimal places than the currency has"));
        }
        let padding = std::iter::repeat_n(b'0', exp - fraction.len());
        let mut minor: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()).chain(padding) {
            minor = minor.checked_mul(10).and_then(|m| m.checked_add(i128::from(digit - b'0'))).ok_or(BillingError::Overflow)?;
        }
        Money::from_i128(if negative { -minor } else { minor }, currency)
    }
}

impl fmt::Display for Money {
    /// Same as [`Money::format`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format())
    }
}

/// `1234567` → `"1,234,567"`: the one thousands grouping, for amounts and counts alike.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    // Digits left before the next separator; the leading group has 1–3 digits.
    let mut until_separator = match digits.len() % 3 {
        0 => 3,
        leading => leading,
    };
    for c in digits.chars() {
        if until_separator == 0 {
            out.push(',');
            until_separator = 3;
        }
        out.push(c);
        until_separator -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn formats_with_symbols_separators_and_exponents() {
        assert_eq!(Money::new(4900, Currency::USD).format(), "$49.00");
        assert_eq!(Money::new(123_450, Currency::EUR).format(), "€1,234.50");
        assert_eq!(Money::new(500, Currency::JPY).format(), "¥500");
        assert_eq!(Money::new(1_234_567, Currency::JPY).format(), "¥1,234,567");
        assert_eq!(Money::new(12_345, Currency::KWD).format(), "12.345 KWD");
        assert_eq!(Money::new(1_234_567, Currency::KWD).format(), "1,234.567 KWD");
        assert_eq!(Money::new(-500, Currency::USD).format(), "-$5.00");
        assert_eq!(Money::new(-5, Currency::USD).format(), "-$0.05");
        assert_eq!(Money::new(0, Currency::GBP).format(), "£0.00");
        assert_eq!(Money::new(1999, cur("chf")).format(), "19.99 CHF");
        assert_eq!(Money::new(1000, cur("krw")).format(), "1,000 KRW");
        assert_eq!(Money::new(i64::MIN, Currency::USD).format(), "-$92,233,720,368,547,758.08");
        assert_eq!(Money::new(i64::MAX, Currency::USD).to_string(), "$92,233,720,368,547,758.07");
        assert_eq!(Money::from_stored(12_345, "KWD").format(), "12.345 KWD");
        assert_eq!(Money::from_stored(-5, "bhd").format(), "-0.005 BHD");
        assert_eq!(Money::from_stored(500, "jpy").format(), "¥500");
        assert_eq!(Money::from_stored(4900, "gbp").format(), "£49.00");
        assert_eq!(Money::from_stored(4900, "??").format(), "49.00 XXX");
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(100_001), "100,001");
        assert_eq!(group_thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn parses_decimal_strings() {
        assert_eq!(Money::parse("49.00", Currency::USD).unwrap(), Money::new(4900, Currency::USD));
        assert_eq!(Money::parse("49", Currency::USD).unwrap(), Money::new(4900, Currency::USD));
        assert_eq!(Money::parse("49.5", Currency::USD).unwrap(), Money::new(4950, Currency::USD));
        assert_eq!(Money::parse("-5.00", Currency::USD).unwrap(), Money::new(-500, Currency::USD));
        assert_eq!(Money::parse("500", Currency::JPY).unwrap(), Money::new(500, Currency::JPY));
        assert_eq!(Money::parse("12.345", Currency::KWD).unwrap(), Money::new(12_345, Currency::KWD));
        assert_eq!(Money::parse("12.3", Currency::KWD).unwrap(), Money::new(12_300, Currency::KWD));
        assert_eq!(Money::parse("-92233720368547758.08", Currency::USD).unwrap(), Money::new(i64::MIN, Currency::USD));
    }

    #[test]
    fn rejects_garbage_and_excess_precision() {
        let bad = ["", "-", ".", "1.", ".5", "+1", " 1", "1 ", "1,000", "$1", "1e3", "1.2.3", "--1", "abc", "1.0O", "١٢"];
        for input in bad {
            assert!(matches!(Money::parse(input, Currency::USD), Err(BillingError::InvalidAmount { .. })), "{input:?}");
        }
        assert!(matches!(Money::parse("1.005", Currency::USD), Err(BillingError::InvalidAmount { .. })));
        assert!(matches!(Money::parse("500.0", Currency::JPY), Err(BillingError::InvalidAmount { .. })));
        assert!(matches!(Money::parse("1.2345", Currency::KWD), Err(BillingError::InvalidAmount { .. })));
    }

    #[test]
    fn parse_overflow_is_an_error() {
        assert_eq!(Money::parse("92233720368547758.08", Currency::USD), Err(BillingError::Overflow));
        assert_eq!(Money::parse(&"9".repeat(200), Currency::USD), Err(BillingError::Overflow));
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::new(i64::MAX, Currency::USD);
        assert_eq!(a.checked_add(Money::new(1, Currency::USD)), Err(BillingError::Overflow));
        assert_eq!(Money::new(i64::MIN, Currency::USD).checked_sub(Money::new(1, Currency::USD)), Err(BillingError::Overflow));
        assert_eq!(a.checked_mul(2), Err(BillingError::Overflow));
        assert_eq!(Money::new(-1, Currency::USD).checked_mul(u64::MAX), Err(BillingError::Overflow));
        assert_eq!(Money::new(250, Currency::USD).checked_mul(4), Ok(Money::new(1000, Currency::USD)));
        assert_eq!(Money::new(10, Currency::USD).checked_sub(Money::new(30, Currency::USD)), Ok(Money::new(-20, Currency::USD)));
        assert!(matches!(
            Money::new(1, Currency::USD).checked_add(Money::new(1, Currency::EUR)),
            Err(BillingError::CurrencyMismatch { .. })
        ));
        let sum = Money::checked_sum([Money::new(10, Currency::USD), Money::new(20, Currency::USD)], Currency::USD);
        assert_eq!(sum, Ok(Money::new(30, Currency::USD)));
        assert_eq!(Money::checked_sum([], Currency::JPY), Ok(Money::zero(Currency::JPY)));
    }

    #[test]
    fn serde_shape() {
        let json = serde_json::to_string(&Money::new(4900, Currency::USD)).unwrap();
        assert_eq!(json, r#"{"minor":4900,"currency":"usd"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), Money::new(4900, Currency::USD));
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        prop_oneof![Just(Currency::USD), Just(Currency::EUR), Just(Currency::JPY), Just(Currency::KWD), Just(cur("chf"))]
    }

    proptest! {
        #[test]
        fn decimal_string_round_trips(minor in any::<i64>(), currency in any_currency()) {
            let money = Money::new(minor, currency);
            prop_assert_eq!(Money::parse(&money.to_decimal_string(), currency), Ok(money));
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,40}", currency in any_currency()) {
            let _ = Money::parse(&input, currency);
        }

        #[test]
        fn parse_of_digit_strings_never_panics(input in "-?[0-9]{0,30}(\\.[0-9]{0,5})?", currency in any_currency()) {
            if let Ok(money) = Money::parse(&input, currency) {
                // Whatever parsed must print back to the same value.
                prop_assert_eq!(Money::parse(&money.to_decimal_string(), currency), Ok(money));
            }
        }

        #[test]
        fn format_never_panics_and_keeps_the_digits(minor in any::<i64>(), currency in any_currency()) {
            let formatted = Money::new(minor, currency).format();
            let digits: String = formatted.chars().filter(char::is_ascii_digit).collect();
            let plain: String = Money::new(minor, currency).to_decimal_string().chars().filter(char::is_ascii_digit).collect();
            prop_assert_eq!(digits, plain);
        }

        #[test]
        fn add_then_sub_is_identity_when_in_range(a in any::<i64>(), b in any::<i64>()) {
            let (a, b) = (Money::new(a, Currency::USD), Money::new(b, Currency::USD));
            match a.checked_add(b) {
                Ok(sum) => prop_assert_eq!(sum.checked_sub(b), Ok(a)),
                Err(e) => prop_assert_eq!(e, BillingError::Overflow),
            }
        }
    }
}
