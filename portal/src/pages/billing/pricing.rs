//! The admin's pricing form (a new price version per save) and the list of plans with their prices.

use std::fmt::Write as _;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use turnpike_billing::{Currency, Money, Overage, PlanPrice, Pricing, Tier};
use turnpike_ledger::{self as ledger, LedgerError};
use turnpike_store::StoreError;

use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::{PortalError, PortalResult};
use crate::format::datetime;
use crate::pages::parse_id;
pub use crate::service::prices::{parse_pricing, PricingForm};
use crate::service::{self};
use crate::PortalState;

use super::{describe, ledger_err, not_found};

/// The form pre-filled from a price.
fn form_from(price: &PlanPrice, trial_days: i64, billable: ledger::Billable) -> PricingForm {
    let c = price.currency();
    let d = |minor: i64| Money::new(minor, c).to_decimal_string();
    let mut f = PricingForm {
        currency: c.code().to_uppercase(),
        trial_days: trial_days.to_string(),
        billable: billable.as_str().to_owned(),
        per: "1".into(),
        ..PricingForm::default()
    };
    let tiers = |ts: &[Tier]| {
        ts.iter()
            .map(|t| {
                let mut s = format!("{} {}", t.up_to.map_or("*".to_owned(), |u| u.to_string()), d(t.unit_price));
                if t.per != 1 || t.flat_fee.is_some() {
                    let _ = write!(s, " {}", t.per);
                }
                if let Some(ff) = t.flat_fee {
                    let _ = write!(s, " {}", d(ff));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    match price.pricing() {
        Pricing::Free => f.model = "free".into(),
        Pricing::Flat { amount } => (f.model, f.base_fee) = ("flat".into(), d(*amount)),
        Pricing::PerUnit { unit_price, per } => (f.model, f.unit_price, f.per) = ("per_unit".into(), d(*unit_price), per.to_string()),
        Pricing::Graduated { tiers: ts } => (f.model, f.tiers) = ("graduated".into(), tiers(ts)),
        Pricing::Volume { tiers: ts } => (f.model, f.tiers) = ("volume".into(), tiers(ts)),
        Pricing::Package { package_size, package_price } => {
            (f.model, f.package_size, f.package_price) = ("package".into(), package_size.to_string(), d(*package_price));
        }
        Pricing::Quota { base_fee, included, overage } => {
            (f.model, f.base_fee, f.included) = ("quota".into(), d(*base_fee), included.to_string());
            match overage {
                Overage::HardCap => f.overage = "hard_cap".into(),
                Overage::Metered { unit_price, per } => {
                    (f.overage, f.unit_price, f.per) = ("metered".into(), d(*unit_price), per.to_string())
                }
            }
        }
    }
    f
}

/// A price version in the history table.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// `v2`.
    pub version: String,
    /// Summary.
    pub summary: String,
    /// Created.
    pub created: String,
}

/// `GET /admin/plans/{id}/pricing`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "billing/pricing.html")]
pub struct PricingPage {
    chrome: Chrome,
    plan_id: i64,
    plan_name: String,
    api_name: String,
    current: String,
    form: PricingForm,
    error: Option<String>,
    history: Vec<VersionRow>,
}

async fn pricing_page(
    state: &PortalState,
    ctx: &mut Ctx,
    plan_id: i64,
    form: Option<PricingForm>,
    error: Option<String>,
) -> PortalResult<PricingPage> {
    ctx.ensure_csrf().await?;
    let now = state.clock.now();
    let eff = ledger::price_at(&state.store, plan_id, now).await.map_err(|e| match e {
        LedgerError::Store(StoreError::NotFound) => PortalError::NotFound,
        e => ledger_err(e),
    })?;
    let api_name = state.store.list_apis().await?.into_iter().find(|a| a.id == eff.plan.api_id).map(|a| a.name).unwrap_or_default();
    let mut history = Vec::new();
    for r in state.store.plan_price_history(plan_id).await? {
        let summary = serde_json::from_str::<Pricing>(&r.pricing)
            .ok()
            .and_then(|p| Currency::parse(&r.currency).ok().and_then(|c| PlanPrice::new(c, p).ok()))
            .map_or_else(|| "unreadable".to_owned(), |p| describe(&p));
        history.push(VersionRow { version: format!("v{}", r.version), summary, created: datetime(r.created_at) });
    }
    Ok(PricingPage {
        chrome: ctx.chrome().await?,
        plan_id,
        plan_name: eff.plan.name.clone(),
        api_name,
        current: format!("{} (price {})", describe(&eff.price), eff.version_label()),
        form: form.unwrap_or_else(|| form_from(&eff.price, eff.trial_days, eff.billable)),
        error,
        history,
    })
}

/// `GET /admin/plans/{id}/pricing`.
pub async fn pricing_get(State(state): State<PortalState>, mut ctx: Ctx, Path(id): Path<String>) -> PortalResult<PricingPage> {
    let plan_id = parse_id(&id)?;
    pricing_page(&state, &mut ctx, plan_id, None, None).await
}

/// `POST /admin/plans/{id}/pricing`: a new price version; a bad form changes nothing (422).
pub async fn pricing_post(
    State(state): State<PortalState>,
    mut ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<PricingForm>,
) -> PortalResult<Response> {
    let plan_id = parse_id(&id)?;
    let plan = state.store.get_plan(plan_id).await.map_err(not_found)?;
    let (price, trial_days, billable) = match parse_pricing(&form) {
        Ok(v) => v,
        Err(msg) => {
            let page = pricing_page(&state, &mut ctx, plan_id, Some(form), Some(msg)).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let now = state.clock.now();
    let actor = ctx.account_id();
    let summary = describe(&price);
    let new = service::plans::NewPrice { price, trial_days, billable };
    let row = service::plans::set_price(&state.store, actor, &plan, &new, &summary, now).await?;
    ctx.flash(FlashKind::Success, format!("Saved price v{} of {}.", row.version, plan.name)).await?;
    Ok(Redirect::to(&format!("/admin/plans/{plan_id}/pricing")).into_response())
}

/// A plan row on `/admin/plans`.
#[derive(Debug, Clone)]
pub struct PlanRow {
    /// Id.
    pub id: i64,
    /// API.
    pub api: String,
    /// Name.
    pub name: String,
    /// Price.
    pub price: String,
}

/// `GET /admin/plans`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "billing/plans.html")]
pub struct PlansPage {
    chrome: Chrome,
    plans: Vec<PlanRow>,
}

/// `GET /admin/plans`: every plan with its current price.
pub async fn plans_page(State(state): State<PortalState>, ctx: Ctx) -> PortalResult<PlansPage> {
    let now = state.clock.now();
    let apis = state.store.list_apis().await?;
    let mut plans = Vec::new();
    for p in state.store.list_all_plans().await? {
        let eff = ledger::price_at(&state.store, p.id, now).await.map_err(ledger_err)?;
        plans.push(PlanRow {
            id: p.id,
            api: apis.iter().find(|a| a.id == p.api_id).map(|a| a.name.clone()).unwrap_or_default(),
            name: p.name,
            price: format!("{} ({})", describe(&eff.price), eff.version_label()),
        });
    }
    Ok(PlansPage { chrome: ctx.chrome().await?, plans })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::prices::parse_amount;

    #[test]
    fn amounts_parse_exactly_or_not_at_all() {
        assert_eq!(parse_amount("12.50", Currency::USD, "fee"), Ok(1250));
        assert_eq!(parse_amount("12.5", Currency::USD, "fee"), Ok(1250));
        assert_eq!(parse_amount("0.07", Currency::USD, "fee"), Ok(7));
        assert_eq!(parse_amount(" 49 ", Currency::USD, "fee"), Ok(4900));
        assert!(parse_amount("12.505", Currency::USD, "fee").is_err());
        assert!(parse_amount("-1", Currency::USD, "fee").is_err());
        assert!(parse_amount("$5", Currency::USD, "fee").is_err());
        assert!(parse_amount("1,000", Currency::USD, "fee").is_err());
        assert!(parse_amount("", Currency::USD, "fee").is_err());
        assert_eq!(parse_amount("500", Currency::JPY, "fee"), Ok(500));
        assert!(parse_amount("500.5", Currency::JPY, "fee").is_err());
        assert_eq!(parse_amount("1.005", Currency::KWD, "fee"), Ok(1005));
    }

    #[test]
    fn a_price_round_trips_through_the_form() {
        let f = PricingForm {
            currency: "usd".into(),
            model: "graduated".into(),
            tiers: "1000 0.05\n10000 0.04 1 2.00\n* 1.50 1000".into(),
            trial_days: "14".into(),
            billable: "admitted".into(),
            ..PricingForm::default()
        };
        let (price, trial, billable) = parse_pricing(&f).unwrap();
        assert_eq!(
            price.pricing(),
            &Pricing::Graduated {
                tiers: vec![Tier::new(Some(1000), 5), Tier::new(Some(10000), 4).flat_fee(200), Tier::new(None, 150).per(1000)]
            }
        );
        let again = parse_pricing(&form_from(&price, trial, billable)).unwrap();
        assert_eq!(again, (price, 14, ledger::Billable::Admitted));
        let bad = PricingForm { tiers: "1000 0.05\n500 0.04\n* 1".into(), ..f };
        assert!(parse_pricing(&bad).unwrap_err().contains("does not make sense"));
    }
}
