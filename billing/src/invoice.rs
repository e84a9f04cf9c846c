//! [`invoice`]: a plan and one period's usage in, human-readable lines and an exact total out.
//!
//! A pure function of (plan, usage): no clock, no I/O. The period is carried through untouched
//! so the invoice can say what it covers. Amounts follow the rounding rule in
//! [`crate::pricing`]; the total is the exact (checked) sum of the lines.

use std::fmt;

use serde::Serialize;

use crate::money::group_thousands;
use crate::pricing::{line_amount, packages};
use crate::{BillingError, Currency, Money, Overage, PlanPrice, Pricing, Tier};

/// An invoice (or the draft "what you will pay so far") for one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invoice {
    /// Currency of every amount on the invoice.
    pub currency: Currency,
    /// First second of the period (unix seconds), as given.
    pub period_start: i64,
    /// First second after the period (unix seconds), as given.
    pub period_end: i64,
    /// Line items in display order.
    pub lines: Vec<Line>,
    /// Exactly the sum of the lines' amounts.
    pub total: Money,
}

/// One line item, e.g. "Requests 100,001–250,000 at $0.50 per 1,000".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// What the line is for, for people.
    pub description: String,
    /// How many units (requests, packages, or 1 for a fee) the line covers.
    pub quantity: u64,
    /// The price the amount was computed from, when the line is priced per unit.
    pub unit_price: Option<UnitPrice>,
    /// The line's amount, already rounded (see [`crate::pricing`]).
    pub amount: Money,
}

/// A unit price as quoted: `amount` for every `per` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UnitPrice {
    /// Price of `per` units.
    pub amount: Money,
    /// Units the price is quoted for (1 = "each").
    pub per: u64,
}

impl fmt::Display for UnitPrice {
    /// `"$5.00 each"` or `"$0.50 per 1,000"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.per == 1 {
            write!(f, "{} each", self.amount)
        } else {
            write!(f, "{} per {}", self.amount, group_thousands(self.per))
        }
    }
}

/// Invoice `usage` units on `plan` for `period` = `(start, end)` in unix seconds.
///
/// Lines, by model (zero usage produces no usage lines; fee lines appear only when non-zero):
/// - `Free`: "Requests 1–N (included)" at $0.
/// - `Flat`: "Base fee", then "Requests 1–N (included)".
/// - `PerUnit`: "Requests 1–N at $0.50 per 1,000".
/// - `Graduated`: one line per tier reached ("Requests 6–10 at $4.00 each"), each followed by
///   that tier's flat fee if it has one; a zero-priced tier reads "(included)".
/// - `Volume`: one line for all units at the tier the total falls in, plus that tier's flat fee.
/// - `Package`: one line, quantity = whole packages (rounded up).
/// - `Quota`: "Base fee", "Requests 1–100,000 (included)", then either
///   "Requests 100,001–250,000 at $0.50 per 1,000" ([`Overage::Metered`]) or nothing
///   ([`Overage::HardCap`]: those requests were refused, so they are not billable).
///
/// Errors: [`BillingError::InvalidPeriod`] if `end <= start`; [`BillingError::Overflow`] if a
/// line or the total does not fit in `i64` minor units. Never panics.
pub fn invoice(plan: &PlanPrice, usage: u64, period: (i64, i64)) -> Result<Invoice, BillingError> {
    let (period_start, period_end) = period;
    if period_end <= period_start {
        return Err(BillingError::InvalidPeriod { start: period_start, end: period_end });
    }
    let currency = plan.currency();
    let lines = Lines { currency, lines: Vec::new() }.build(plan.pricing(), usage)?;
    let total = Money::checked_sum(lines.iter().map(|line| line.amount), currency)?;
    Ok(Invoice { currency, period_start, period_end, lines, total })
}

struct Lines {
    currency: Currency,
    lines: Vec<Line>,
}

impl Lines {
    fn build(mut self, pricing: &Pricing, usage: u64) -> Result<Vec<Line>, BillingError> {
        match pricing {
            Pricing::Free => self.included(1, usage),
            Pricing::Flat { amount } => {
                self.fee("Base fee".to_owned(), *amount);
                self.included(1, usage);
            }
            Pricing::PerUnit { unit_price, per } => self.rated(1, usage, *unit_price, *per, "")?,
            Pricing::Graduated { tiers } => self.graduated(tiers, usage)?,
            Pricing::Volume { tiers } => self.volume(tiers, usage)?,
            Pricing::Package { package_size, package_price } => self.package(usage, *package_size, *package_price)?,
            Pricing::Quota { base_fee, included, overage } => {
                self.fee("Base fee".to_owned(), *base_fee);
                self.included(1, usage.min(*included));
                if let Overage::Metered { unit_price, per } = overage {
                    // `usage > included` here, so `included + 1` cannot overflow.
                    if usage > *included {
                        self.rated(*included + 1, usage, *unit_price, *per, "")?;
                    }
                }
            }
        }
        Ok(self.lines)
    }

    fn money(&self, minor: i64) -> Money {
        Money::new(minor, self.currency)
    }

    /// A fee of `amount`, if it is not zero.
    fn fee(&mut self, description: String, amount: i64) {
        if amount != 0 {
            let unit_price = Some(UnitPrice { amount: self.money(amount), per: 1 });
            self.lines.push(Line { description, quantity: 1, unit_price, amount: self.money(amount) });
        }
    }

    /// Units `first..=last` at no charge (nothing if the range is empty).
    fn included(&mut self, first: u64, last: u64) {
        if first <= last {
            let description = format!("{} (included)", requests(first, last));
            self.lines.push(Line { description, quantity: last - first + 1, unit_price: None, amount: self.money(0) });
        }
    }

    /// Units `first..=last` at `unit_price` per `per`, rounded once for the whole line.
    fn rated(&mut self, first: u64, last: u64, unit_price: i64, per: u64, note: &str) -> Result<(), BillingError> {
        if first > last {
            return Ok(());
        }
        if unit_price == 0 {
            self.included(first, last);
            return Ok(());
        }
        let quantity = last - first + 1;
        let amount = Money::from_i128(line_amount(quantity, unit_price, per)?, self.currency)?;
        let unit_price = UnitPrice { amount: self.money(unit_price), per };
        let description = format!("{} at {unit_price}{note}", requests(first, last));
        self.lines.push(Line { description, quantity, unit_price: Some(unit_price), amount });
        Ok(())
    }

    fn graduated(&mut self, tiers: &[Tier], usage: u64) -> Result<(), BillingError> {
        // Units already priced by earlier tiers; tiers are validated ascending.
        let mut priced = 0u64;
        for tier in tiers {
            if usage <= priced {
                break;
            }
            let last = tier.up_to.map_or(usage, |up_to| up_to.min(usage));
            self.rated(priced + 1, last, tier.unit_price, tier.per, "")?;
            self.fee(format!("Flat fee, tier {}", tier_range(priced + 1, tier.up_to)), tier.flat_fee.unwrap_or(0));
            match tier.up_to {
                Some(up_to) => priced = up_to,
                None => break,
            }
        }
        Ok(())
    }

    fn volume(&mut self, tiers: &[Tier], usage: u64) -> Result<(), BillingError> {
        if usage == 0 {
            return Ok(());
        }
        let mut first = 1u64;
        for tier in tiers {
            if tier.up_to.is_none_or(|up_to| usage <= up_to) {
                let range = tier_range(first, tier.up_to);
                self.rated(1, usage, tier.unit_price, tier.per, &format!(" (volume tier {range})"))?;
                self.fee(format!("Flat fee, tier {range}"), tier.flat_fee.unwrap_or(0));
                return Ok(());
            }
            first = tier.up_to.map_or(first, |up_to| up_to.saturating_add(1));
        }
        // Unreachable for a validated plan: the last tier is unbounded.
        Ok(())
    }

    fn package(&mut self, usage: u64, package_size: u64, package_price: i64) -> Result<(), BillingError> {
        if usage == 0 {
            return Ok(());
        }
        let count = packages(usage, package_size)?;
        let amount = self.money(package_price).checked_mul(count)?;
        let unit_price = UnitPrice { amount: self.money(package_price), per: 1 };
        let plural = if count == 1 { "package" } else { "packages" };
        let description = format!(
            "{} in {} {plural} of {} at {}",
            requests(1, usage),
            group_thousands(count),
            group_thousands(package_size),
            self.money(package_price),
        );
        self.lines.push(Line { description, quantity: count, unit_price: Some(unit_price), amount });
        Ok(())
    }
}

/// `"Requests 1–100,000"`, or `"Request 7"` for a single unit.
fn requests(first: u64, last: u64) -> String {
    if first == last {
        format!("Request {}", group_thousands(first))
    } else {
        format!("Requests {}–{}", group_thousands(first), group_thousands(last))
    }
}

/// `"1–5"` for a bounded tier, `"11+"` for the unbounded one.
fn tier_range(first: u64, up_to: Option<u64>) -> String {
    match up_to {
        Some(up_to) if up_to == first => group_thousands(first),
        Some(up_to) => format!("{}–{}", group_thousands(first), group_thousands(up_to)),
        None => format!("{}+", group_thousands(first)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: (i64, i64) = (1_767_225_600, 1_769_904_000);

    fn plan(pricing: Pricing) -> PlanPrice {
        PlanPrice::new(Currency::USD, pricing).unwrap()
    }

    fn stripe_tiers() -> Vec<Tier> {
        vec![Tier::new(Some(5), 500), Tier::new(Some(10), 400), Tier::new(None, 300)]
    }

    fn total(pricing: Pricing, usage: u64) -> i64 {
        invoice(&plan(pricing), usage, PERIOD).unwrap().total.minor()
    }

    fn descriptions(invoice: &Invoice) -> Vec<(&str, u64, i64)> {
        invoice.lines.iter().map(|l| (l.description.as_str(), l.quantity, l.amount.minor())).collect()
    }

    fn quota_49() -> Pricing {
        Pricing::Quota { base_fee: 4_900, included: 100_000, overage: Overage::Metered { unit_price: 50, per: 1_000 } }
    }

    #[test]
    fn graduated_stripe_example() {
        let inv = invoice(&plan(Pricing::Graduated { tiers: stripe_tiers() }), 12, PERIOD).unwrap();
        assert_eq!(inv.total, Money::new(5_100, Currency::USD), "5×$5 + 5×$4 + 2×$3");
        assert_eq!(
            descriptions(&inv),
            [("Requests 1–5 at $5.00 each", 5, 2_500), ("Requests 6–10 at $4.00 each", 5, 2_000), ("Requests 11–12 at $3.00 each", 2, 600)]
        );
        assert_eq!(inv.lines[1].unit_price, Some(UnitPrice { amount: Money::new(400, Currency::USD), per: 1 }));
    }

    #[test]
    fn graduated_boundaries() {
        let g = || Pricing::Graduated { tiers: stripe_tiers() };
        assert_eq!(total(g(), 0), 0);
        assert!(invoice(&plan(g()), 0, PERIOD).unwrap().lines.is_empty());
        assert_eq!(total(g(), 1), 500);
        assert_eq!(total(g(), 5), 2_500, "exactly at the first edge stays in tier 1");
        assert_eq!(total(g(), 6), 2_900);
        assert_eq!(total(g(), 10), 4_500);
        assert_eq!(total(g(), 11), 4_800);
        let inv = invoice(&plan(g()), 11, PERIOD).unwrap();
        assert_eq!(inv.lines[2].description, "Request 11 at $3.00 each");
    }

    #[test]
    fn graduated_flat_fees_and_free_first_tier() {
        let tiers = vec![Tier::new(Some(1_000), 0), Tier::new(None, 50).per(1_000).flat_fee(1_000)];
        let p = plan(Pricing::Graduated { tiers });
        assert_eq!(invoice(&p, 1_000, PERIOD).unwrap().total.minor(), 0, "flat fee only once the tier is reached");
        let inv = invoice(&p, 3_000, PERIOD).unwrap();
        assert_eq!(
            descriptions(&inv),
            [
                ("Requests 1–1,000 (included)", 1_000, 0),
                ("Requests 1,001–3,000 at $0.50 per 1,000", 2_000, 100),
                ("Flat fee, tier 1,001+", 1, 1_000),
            ]
        );
        assert_eq!(inv.total.minor(), 1_100);
    }

    #[test]
    fn volume_stripe_example_and_boundaries() {
        let v = || Pricing::Volume { tiers: stripe_tiers() };
        let inv = invoice(&plan(v()), 12, PERIOD).unwrap();
        assert_eq!(inv.total.minor(), 3_600, "12×$3");
        assert_eq!(descriptions(&inv), [("Requests 1–12 at $3.00 each (volume tier 11+)", 12, 3_600)]);
        assert_eq!(total(v(), 0), 0);
        assert_eq!(total(v(), 5), 2_500);
        assert_eq!(total(v(), 6), 2_400, "crossing an edge reprices every unit");
        assert_eq!(total(v(), 10), 4_000);
        assert_eq!(total(v(), 11), 3_300);
        let with_fee = Pricing::Volume { tiers: vec![Tier::new(Some(5), 500).flat_fee(200), Tier::new(None, 300)] };
        let inv = invoice(&plan(with_fee), 3, PERIOD).unwrap();
        assert_eq!(descriptions(&inv), [("Requests 1–3 at $5.00 each (volume tier 1–5)", 3, 1_500), ("Flat fee, tier 1–5", 1, 200)]);
    }

    #[test]
    fn package_stripe_example() {
        let p = || Pricing::Package { package_size: 100, package_price: 500 };
        let inv = invoice(&plan(p()), 201, PERIOD).unwrap();
        assert_eq!(descriptions(&inv), [("Requests 1–201 in 3 packages of 100 at $5.00", 3, 1_500)]);
        assert_eq!(total(p(), 0), 0);
        assert_eq!(total(p(), 1), 500);
        assert_eq!(total(p(), 100), 500);
        assert_eq!(total(p(), 101), 1_000);
        assert_eq!(invoice(&plan(p()), 50, PERIOD).unwrap().lines[0].description, "Requests 1–50 in 1 package of 100 at $5.00");
    }

    #[test]
    fn per_unit_rounds_once_per_line() {
        let p = || Pricing::PerUnit { unit_price: 1, per: 1_000 };
        let inv = invoice(&plan(p()), 1_500, PERIOD).unwrap();
        assert_eq!(descriptions(&inv), [("Requests 1–1,500 at $0.01 per 1,000", 1_500, 2)]);
        assert_eq!(total(p(), 1_499), 1);
        assert_eq!(total(p(), 499), 0);
        assert_eq!(total(p(), 0), 0);
        assert_eq!(total(Pricing::PerUnit { unit_price: 7, per: 1 }, 3), 21);
    }

    #[test]
    fn quota_with_metered_overage() {
        let inv = invoice(&plan(quota_49()), 250_000, PERIOD).unwrap();
        assert_eq!(
            descriptions(&inv),
            [
                ("Base fee", 1, 4_900),
                ("Requests 1–100,000 (included)", 100_000, 0),
                ("Requests 100,001–250,000 at $0.50 per 1,000", 150_000, 7_500),
            ]
        );
        assert_eq!(inv.total.format(), "$124.00");
        assert_eq!((inv.period_start, inv.period_end, inv.currency), (PERIOD.0, PERIOD.1, Currency::USD));
    }

    #[test]
    fn quota_boundaries() {
        assert_eq!(descriptions(&invoice(&plan(quota_49()), 0, PERIOD).unwrap()), [("Base fee", 1, 4_900)]);
        let exactly = invoice(&plan(quota_49()), 100_000, PERIOD).unwrap();
        assert_eq!(exactly.total.minor(), 4_900);
        assert_eq!(exactly.lines.len(), 2);
        let one_over = invoice(&plan(quota_49()), 100_001, PERIOD).unwrap();
        // One request at $0.50 per 1,000 is 0.05¢, rounded half up once for the line → 0¢.
        assert_eq!(one_over.lines[2].description, "Request 100,001 at $0.50 per 1,000");
        assert_eq!(one_over.total.minor(), 4_900);
        assert_eq!(total(quota_49(), 101_000), 4_950);
        assert_eq!(total(quota_49(), 100_010), 4_901, "10 × 0.05¢ = 0.5¢ rounds up");
    }

    #[test]
    fn quota_hard_cap_ignores_usage_beyond_quota() {
        let capped = || Pricing::Quota { base_fee: 0, included: 1_000, overage: Overage::HardCap };
        let at = invoice(&plan(capped()), 1_000, PERIOD).unwrap();
        assert_eq!(descriptions(&at), [("Requests 1–1,000 (included)", 1_000, 0)]);
        assert_eq!(invoice(&plan(capped()), 1_001, PERIOD).unwrap(), at);
        assert_eq!(invoice(&plan(capped()), u64::MAX, PERIOD).unwrap(), at);
        assert!(invoice(&plan(capped()), 0, PERIOD).unwrap().lines.is_empty());
    }

    #[test]
    fn free_and_flat() {
        let inv = invoice(&plan(Pricing::Free), 12, PERIOD).unwrap();
        assert_eq!(descriptions(&inv), [("Requests 1–12 (included)", 12, 0)]);
        assert!(invoice(&plan(Pricing::Free), 0, PERIOD).unwrap().lines.is_empty());
        let inv = invoice(&plan(Pricing::Flat { amount: 4_900 }), 1, PERIOD).unwrap();
        assert_eq!(descriptions(&inv), [("Base fee", 1, 4_900), ("Request 1 (included)", 1, 0)]);
        assert_eq!(total(Pricing::Flat { amount: 4_900 }, u64::MAX), 4_900);
    }

    #[test]
    fn other_currencies_format_in_lines() {
        let jpy = PlanPrice::new(Currency::JPY, Pricing::PerUnit { unit_price: 500, per: 1_000 }).unwrap();
        let inv = invoice(&jpy, 2_001, PERIOD).unwrap();
        assert_eq!(descriptions(&inv), [("Requests 1–2,001 at ¥500 per 1,000", 2_001, 1_001)]);
        let kwd = PlanPrice::new(Currency::KWD, Pricing::Flat { amount: 12_345 }).unwrap();
        assert_eq!(invoice(&kwd, 0, PERIOD).unwrap().total.format(), "12.345 KWD");
    }

    #[test]
    fn overflow_is_an_error() {
        let huge = plan(Pricing::PerUnit { unit_price: i64::MAX, per: 1 });
        assert_eq!(invoice(&huge, 2, PERIOD), Err(BillingError::Overflow));
        assert_eq!(invoice(&huge, 1, PERIOD).unwrap().total.minor(), i64::MAX);
        let fees = plan(Pricing::Quota { base_fee: i64::MAX, included: 0, overage: Overage::Metered { unit_price: 1, per: 1 } });
        assert_eq!(invoice(&fees, 1, PERIOD), Err(BillingError::Overflow), "each line fits, the total does not");
        let package = plan(Pricing::Package { package_size: 1, package_price: i64::MAX });
        assert_eq!(invoice(&package, u64::MAX, PERIOD), Err(BillingError::Overflow));
    }

    #[test]
    fn period_is_carried_through_and_checked() {
        let p = plan(Pricing::Free);
        assert_eq!(invoice(&p, 0, (10, 10)), Err(BillingError::InvalidPeriod { start: 10, end: 10 }));
        assert_eq!(invoice(&p, 0, (10, 5)), Err(BillingError::InvalidPeriod { start: 10, end: 5 }));
        let inv = invoice(&p, 0, (-5, 5)).unwrap();
        assert_eq!((inv.period_start, inv.period_end), (-5, 5));
    }

    #[test]
    fn serializes_for_the_portal() {
        let inv = invoice(&plan(Pricing::PerUnit { unit_price: 50, per: 1_000 }), 2_000, (0, 1)).unwrap();
        let json = serde_json::to_value(&inv).unwrap();
        assert_eq!(json["total"]["minor"], 100);
        assert_eq!(json["lines"][0]["unit_price"]["per"], 1_000);
        assert_eq!(json["currency"], "usd");
    }
}
