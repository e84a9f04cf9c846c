//! The one parser and the one set of rules for a plan's price version: the console's pricing
//! form is parsed here, and every surface (form, admin API, `apply`) passes [`check_price`].

use serde::Deserialize;
use turnpike_billing::{Currency, Money, Overage, PlanPrice, Pricing, Tier};
use turnpike_ledger as ledger;

use super::plans::NewPrice;
use super::FieldProblem;

/// The pricing form's fields, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PricingForm {
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub base_fee: String,
    #[serde(default)]
    pub included: String,
    #[serde(default)]
    pub overage: String,
    #[serde(default)]
    pub unit_price: String,
    #[serde(default)]
    pub per: String,
    #[serde(default)]
    pub package_size: String,
    #[serde(default)]
    pub package_price: String,
    #[serde(default)]
    pub tiers: String,
    #[serde(default)]
    pub trial_days: String,
    #[serde(default)]
    pub billable: String,
}

/// A non-negative amount in `currency`'s minor units: "12.50" → 1250 exactly; more decimals
/// than the currency has, signs, symbols or separators are refused.
pub fn parse_amount(raw: &str, currency: Currency, field: &str) -> Result<i64, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(format!("Enter the {field}."));
    }
    if raw.starts_with('-') {
        return Err(format!("The {field} cannot be negative."));
    }
    Money::parse(raw, currency).map(|m| m.minor()).map_err(|_| {
        let exp = currency.exponent();
        if exp == 0 {
            format!("The {field} “{raw}” is not a whole amount of {}.", currency.code().to_uppercase())
        } else {
            format!("The {field} “{raw}” is not an amount like 12.50 (at most {exp} decimals).")
        }
    })
}

fn parse_count(raw: &str, field: &str, min: u64) -> Result<u64, String> {
    match raw.trim().parse::<u64>() {
        Ok(n) if n >= min && n <= i64::MAX as u64 => Ok(n),
        _ => Err(format!("The {field} must be a whole number of at least {min}.")),
    }
}

/// Tiers, one per line: `UP_TO PRICE [PER] [FLAT_FEE]`, `UP_TO` a count or `*` for the last.
fn parse_tiers(raw: &str, c: Currency) -> Result<Vec<Tier>, String> {
    let mut tiers = Vec::new();
    for (i, line) in raw.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let n = i + 1;
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 2 || parts.len() > 4 {
            return Err(format!("Tier {n}: write “up_to price [per] [flat fee]”, e.g. “1000 0.05” or “* 0.02”."));
        }
        let up_to = if parts[0] == "*" { None } else { Some(parse_count(parts[0], &format!("tier {n} bound"), 1)?) };
        let unit_price = parse_amount(parts[1], c, &format!("tier {n} price"))?;
        let per = match parts.get(2) {
            Some(p) => parse_count(p, &format!("tier {n} “per”"), 1)?,
            None => 1,
        };
        let mut t = Tier::new(up_to, unit_price).per(per);
        if let Some(f) = parts.get(3) {
            t = t.flat_fee(parse_amount(f, c, &format!("tier {n} flat fee"))?);
        }
        tiers.push(t);
    }
    Ok(tiers)
}

/// Parse the form into a validated price, trial days and billable rule.
pub fn parse_pricing(f: &PricingForm) -> Result<(PlanPrice, i64, ledger::Billable), String> {
    let c = Currency::parse(f.currency.trim()).map_err(|_| "Enter a three-letter currency code such as USD or EUR.".to_owned())?;
    let pricing = match f.model.as_str() {
        "free" => Pricing::Free,
        "flat" => Pricing::Flat { amount: parse_amount(&f.base_fee, c, "base fee")? },
        "per_unit" => {
            Pricing::PerUnit { unit_price: parse_amount(&f.unit_price, c, "unit price")?, per: parse_count(&f.per, "“per” count", 1)? }
        }
        "graduated" => Pricing::Graduated { tiers: parse_tiers(&f.tiers, c)? },
        "volume" => Pricing::Volume { tiers: parse_tiers(&f.tiers, c)? },
        "package" => Pricing::Package {
            package_size: parse_count(&f.package_size, "package size", 1)?,
            package_price: parse_amount(&f.package_price, c, "package price")?,
        },
        "quota" => Pricing::Quota {
            base_fee: parse_amount(&f.base_fee, c, "base fee")?,
            included: parse_count(&f.included, "included requests", 0)?,
            overage: match f.overage.as_str() {
                "hard_cap" => Overage::HardCap,
                "metered" => Overage::Metered {
                    unit_price: parse_amount(&f.unit_price, c, "overage price")?,
                    per: parse_count(&f.per, "“per” count", 1)?,
                },
                _ => return Err("Choose what happens beyond the included requests.".to_owned()),
            },
        },
        _ => return Err("Choose a price model.".to_owned()),
    };
    let trial_days = if f.trial_days.trim().is_empty() { 0 } else { parse_count(&f.trial_days, "trial length in days", 0)? };
    let new = check_price(c, pricing, i64::try_from(trial_days).unwrap_or(i64::MAX), &f.billable)?;
    Ok((new.price, new.trial_days, new.billable))
}

/// The rules every price version passes, whoever sets it (the console's form, the admin API,
/// `apply`): a pricing that makes sense in its currency, a trial of 0–365 days, a known
/// billable rule.
pub fn check_price(c: Currency, pricing: Pricing, trial_days: i64, billable: &str) -> Result<NewPrice, String> {
    let price = PlanPrice::new(c, pricing).map_err(|e| format!("That price does not make sense: {e}."))?;
    if !(0..=365).contains(&trial_days) {
        return Err("A free trial can last at most 365 days.".to_owned());
    }
    let billable = ledger::Billable::parse(billable).ok_or("Choose which requests are billable.")?;
    Ok(NewPrice { price, trial_days, billable })
}

/// A price version as the JSON API and the declarative file give it: a currency code, the
/// pricing in its stored form (`{"model": "flat", "amount": 4900}`, amounts in minor units), the
/// trial length and the billable rule. `Err` names the field.
pub fn check_price_parts(currency: &str, pricing: &serde_json::Value, trial_days: i64, billable: &str) -> Result<NewPrice, FieldProblem> {
    let c = Currency::parse(currency.trim())
        .map_err(|_| FieldProblem::new("currency", "Enter a three-letter currency code such as USD or EUR."))?;
    let pricing: Pricing = serde_json::from_value(pricing.clone())
        .map_err(|e| FieldProblem::new("pricing", format!("Not a pricing this version understands: {e}.")))?;
    check_price(c, pricing, trial_days, billable).map_err(|m| {
        let field = if m.contains("trial") {
            "trial_days"
        } else if m.contains("billable") {
            "billable"
        } else {
            "pricing"
        };
        FieldProblem::new(field, m)
    })
}

/// The audit detail of a price version set through the admin API or `apply`: the currency and
/// the pricing as stored.
pub fn summary(new: &NewPrice) -> String {
    let pricing = serde_json::to_string(new.price.pricing()).unwrap_or_default();
    format!("{} {pricing} trial_days={} billable={}", new.price.currency().code(), new.trial_days, new.billable.as_str())
}
