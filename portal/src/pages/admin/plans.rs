//! The admin's plan forms: a new plan of an API, and a plan's limits.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use turnpike_store::domain::Slug;
use turnpike_store::{Api, Plan, PlanLimits};

use super::apis::edit_page;
use super::common::{actor, check_name, FieldErrors, PlanFormValues, Section};
use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::PortalResult;
use crate::pages::parse_id;
use crate::service::{self, ServiceError};
use crate::views::PlanView;
use crate::PortalState;

/// A whole number in `range`, from a form field that may use thousands separators.
fn parse_count(raw: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
    let digits: String = raw.trim().chars().filter(|c| !matches!(c, ',' | '_' | ' ')).collect();
    digits.parse::<i64>().ok().filter(|n| range.contains(n))
}

fn limits_of(v: &PlanFormValues) -> Result<PlanLimits, FieldErrors> {
    let mut errors = FieldErrors::default();
    let name = check_name(&v.name, &mut errors, "plan_name");
    let slug = v.slug.trim().to_owned();
    if let Err(e) = Slug::parse(&slug) {
        errors.add("plan_slug", format!("The plan's slug: {e}."));
    }
    let rate = parse_count(&v.rate_per_second, 1..=1_000_000);
    if rate.is_none() {
        errors.add("rate_per_second", "The rate is a whole number of requests per second from 1 to 1,000,000.");
    }
    let burst = parse_count(&v.burst, 1..=10_000_000);
    if burst.is_none() {
        errors.add("burst", "The burst is a whole number from 1 to 10,000,000.");
    }
    let quota = if v.monthly_quota.trim().is_empty() { Some(None) } else { parse_count(&v.monthly_quota, 1..=i64::MAX / 2).map(Some) };
    if quota.is_none() {
        errors.add("monthly_quota", "The monthly quota is a whole number of requests, or empty for unlimited.");
    }
    match (rate, burst, quota, errors.is_empty()) {
        (Some(rate_per_second), Some(burst), Some(monthly_quota), true) => {
            Ok(PlanLimits { slug, name, rate_per_second, burst, monthly_quota, is_default: v.is_default.is_some() })
        }
        _ => Err(errors),
    }
}

/// `POST /admin/apis/{id}/plans`: add a plan (free until billing prices it).
pub async fn create_plan(
    State(state): State<PortalState>,
    mut ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<PlanFormValues>,
) -> PortalResult<Response> {
    let admin = actor(&ctx)?;
    let api = state.store.get_api(parse_id(&id)?).await?;
    let errors = match limits_of(&form).and_then(|l| fail_open_of(&form).map(|f| (l, f))) {
        Ok((l, fail_open)) => match service::plans::create(&state.store, admin, &api, &l, fail_open, state.clock.now()).await {
            Ok(plan) => {
                ctx.flash(FlashKind::Success, format!("Added the plan “{}”.", plan.name)).await?;
                return Ok(Redirect::to(&format!("/admin/apis/{}#plans", api.id)).into_response());
            }
            Err(ServiceError::SlugTaken) => slug_taken(),
            Err(e) => return Err(e.into()),
        },
        Err(e) => e,
    };
    let page = edit_page(&state, &mut ctx, &api, None, FieldErrors::default(), Vec::new(), Some((form, errors))).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// The outage policy field: empty fails closed, else 1–86,400 seconds of fail-open.
fn fail_open_of(v: &PlanFormValues) -> Result<Option<i64>, FieldErrors> {
    if v.fail_open_seconds.trim().is_empty() {
        return Ok(None);
    }
    match parse_count(&v.fail_open_seconds, 1..=86_400) {
        Some(s) => Ok(Some(s)),
        None => {
            let mut e = FieldErrors::default();
            e.add("fail_open_seconds", "Seconds from 1 to 86,400, or empty to refuse requests (503) while Redis is unreachable.");
            Err(e)
        }
    }
}

/// The form's errors when the API has another plan with the slug.
fn slug_taken() -> FieldErrors {
    let mut e = FieldErrors::default();
    e.add("plan_slug", "This API already has a plan with this slug.");
    e
}

/// `GET /admin/plans/{id}`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "admin/plan_form.html")]
pub struct PlanFormPage {
    chrome: Chrome,
    section: Section,
    api: Api,
    plan_id: i64,
    price: String,
    pf: PlanFormValues,
    plan_errors: FieldErrors,
}

async fn plan_page(
    state: &PortalState,
    ctx: &mut Ctx,
    plan: &Plan,
    form: PlanFormValues,
    plan_errors: FieldErrors,
) -> PortalResult<PlanFormPage> {
    ctx.ensure_csrf().await?;
    let api = state.store.get_api(plan.api_id).await?;
    let view = PlanView::from(plan);
    let price = match view.metered {
        Some(m) => format!("{} {m}", view.price),
        None => view.price,
    };
    Ok(PlanFormPage { chrome: ctx.chrome().await?, section: Section::Apis, api, plan_id: plan.id, price, pf: form, plan_errors })
}

/// `GET /admin/plans/{id}`: edit a plan's name, slug, limits and default flag.
pub async fn plan_form(State(state): State<PortalState>, mut ctx: Ctx, Path(id): Path<String>) -> PortalResult<PlanFormPage> {
    let plan = state.store.get_plan(parse_id(&id)?).await?;
    let form = PlanFormValues::from_plan(&plan).with_policy(&state, plan.id).await?;
    plan_page(&state, &mut ctx, &plan, form, FieldErrors::default()).await
}

/// `POST /admin/plans/{id}`.
pub async fn update_plan(
    State(state): State<PortalState>,
    mut ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<PlanFormValues>,
) -> PortalResult<Response> {
    let admin = actor(&ctx)?;
    let plan = state.store.get_plan(parse_id(&id)?).await?;
    let errors = match limits_of(&form).and_then(|l| fail_open_of(&form).map(|f| (l, f))) {
        Ok((l, fail_open)) => match service::plans::update(&state.store, admin, &plan, &l, fail_open, state.clock.now()).await {
            Ok(updated) => {
                let msg = format!("Saved the plan “{}”. Gateways apply the new limits within a second.", updated.name);
                ctx.flash(FlashKind::Success, msg).await?;
                return Ok(Redirect::to(&format!("/admin/apis/{}#plans", plan.api_id)).into_response());
            }
            Err(ServiceError::SlugTaken) => slug_taken(),
            Err(e) => return Err(e.into()),
        },
        Err(e) => e,
    };
    let page = plan_page(&state, &mut ctx, &plan, form, errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}
