//! ISO 4217 currencies: a validated three-letter code and its minor-unit exponent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::BillingError;

/// An ISO 4217 currency, held as its lower-case three-letter code (the form Stripe uses).
///
/// Built only by [`Currency::parse`] (or the constants), so holding one means the code is three
/// ASCII letters. Codes this crate does not know are accepted with the usual exponent of 2.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollar.
    pub const USD: Currency = Currency(*b"usd");
    /// Euro.
    pub const EUR: Currency = Currency(*b"eur");
    /// Pound sterling.
    pub const GBP: Currency = Currency(*b"gbp");
    /// Japanese yen (no minor unit).
    pub const JPY: Currency = Currency(*b"jpy");
    /// Kuwaiti dinar (three decimals).
    pub const KWD: Currency = Currency(*b"kwd");
    /// ISO 4217's "no currency": what a stored code that is not three letters reads as
    /// ([`Currency::from_stored`]), so a bad row shows as `XXX` instead of failing a whole page.
    pub const XXX: Currency = Currency(*b"xxx");

    /// Parse a three-letter code, case-insensitively: `"USD"`, `"usd"` and `"Usd"` are all
    /// [`Currency::USD`].
    pub fn parse(code: &str) -> Result<Currency, BillingError> {
        match code.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_alphabetic()) => {
                Ok(Currency([a.to_ascii_lowercase(), b.to_ascii_lowercase(), c.to_ascii_lowercase()]))
            }
            _ => Err(BillingError::InvalidCurrency(code.to_owned())),
        }
    }

    /// A code as the database keeps it (written through [`Currency::parse`], so normally valid);
    /// anything else is [`Currency::XXX`].
    pub fn from_stored(code: &str) -> Currency {
        Currency::parse(code).unwrap_or(Currency::XXX)
    }

    /// The lower-case code, e.g. `"usd"`.
    pub fn code(&self) -> &str {
        // Only ASCII letters are ever stored, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or("xxx")
    }

    /// Number of digits after the decimal point (the ISO 4217 minor-unit exponent): 2 for
    /// usd/eur/gbp/chf/cad/aud and any code not listed, 0 for jpy/krw, 3 for kwd/bhd.
    pub fn exponent(&self) -> u32 {
        match &self.0 {
            b"jpy" | b"krw" | b"vnd" | b"clp" | b"isk" | b"pyg" | b"ugx" => 0,
            b"kwd" | b"bhd" | b"omr" | b"jod" | b"tnd" | b"lyd" | b"iqd" => 3,
            _ => 2,
        }
    }

    /// The prefix symbol used when formatting, for the few currencies that have an
    /// unambiguous one. Others are formatted with the upper-case code as a suffix.
    pub fn symbol(&self) -> Option<&'static str> {
        match &self.0 {
            b"usd" => Some("$"),
            b"eur" => Some("€"),
            b"gbp" => Some("£"),
            b"jpy" => Some("¥"),
            _ => None,
        }
    }
}

impl fmt::Display for Currency {
    /// The upper-case code, e.g. `USD`, as people write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code().to_ascii_uppercase())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

impl FromStr for Currency {
    type Err = BillingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = BillingError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively_and_stores_lower_case() {
        assert_eq!(Currency::parse("USD").unwrap(), Currency::USD);
        assert_eq!(Currency::parse("uSd").unwrap().code(), "usd");
        assert_eq!(Currency::parse("eur").unwrap().to_string(), "EUR");
    }

    #[test]
    fn rejects_non_codes() {
        for bad in ["", "us", "usdd", "us1", "€ur", "u d", "ÜSD"] {
            assert!(matches!(Currency::parse(bad), Err(BillingError::InvalidCurrency(_))), "{bad:?}");
        }
    }

    #[test]
    fn exponents() {
        for (code, exp) in [("usd", 2), ("eur", 2), ("gbp", 2), ("chf", 2), ("cad", 2), ("aud", 2), ("jpy", 0), ("krw", 0)] {
            assert_eq!(Currency::parse(code).unwrap().exponent(), exp, "{code}");
        }
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert_eq!(Currency::parse("bhd").unwrap().exponent(), 3);
        assert_eq!(Currency::parse("xyz").unwrap().exponent(), 2, "unknown codes default to 2");
        for code in ["omr", "jod", "tnd", "lyd", "iqd"] {
            assert_eq!(Currency::parse(code).unwrap().exponent(), 3, "{code}");
        }
    }

    #[test]
    fn stored_codes_read_leniently() {
        assert_eq!(Currency::from_stored("KWD"), Currency::KWD);
        assert_eq!(Currency::from_stored(""), Currency::XXX);
        assert_eq!(Currency::from_stored("dollars"), Currency::XXX);
    }

    #[test]
    fn serde_is_the_lower_case_code_and_validates() {
        assert_eq!(serde_json::to_string(&Currency::GBP).unwrap(), "\"gbp\"");
        assert_eq!(serde_json::from_str::<Currency>("\"GBP\"").unwrap(), Currency::GBP);
        assert!(serde_json::from_str::<Currency>("\"pounds\"").is_err());
    }
}
