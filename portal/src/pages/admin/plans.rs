//! The admin's plan forms: a new plan of an API, and a plan's limits.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use turnpike_store::{Api, Plan, PlanLimits};

use super::apis::{edit_page, form_errors};
use super::common::{actor, FieldErrors, PlanFormValues, Section};
use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::PortalResult;
use crate::pages::parse_id;
use crate::service::{self, ServiceError};
use crate::views::PlanView;
use crate::PortalState;

/// The plan form's fields as named by the service's rules.
const PLAN_FIELDS: [(&str, &str); 2] = [("name", "plan_name"), ("slug", "plan_slug")];

/// The form's values checked by [`service::plans::check`]: limits and outage policy, or the
/// form's errors.
fn limits_of(v: &PlanFormValues) -> Result<(PlanLimits, Option<i64>), FieldErrors> {
    let draft = service::plans::PlanDraft {
        name: v.name.clone(),
        slug: v.slug.clone(),
        rate_per_second: v.rate_per_second.clone(),
        burst: v.burst.clone(),
        monthly_quota: v.monthly_quota.clone(),
        is_default: v.is_default.is_some(),
        fail_open_seconds: v.fail_open_seconds.clone(),
    };
    service::plans::check(&draft).map_err(|problems| form_errors(&problems, &PLAN_FIELDS))
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
    let errors = match limits_of(&form) {
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
    let errors = match limits_of(&form) {
        Ok((l, fail_open)) => match service::plans::update(&state.store, admin, &plan, &l, fail_open, state.clock.now()).await {
            Ok(updated) => {
                let msg = format!("Saved the plan “{}”. Gateways apply the new limits within a second.", updated.name);
                ctx.flash(FlashKind::Success, msg).await?;
                return Ok(Redirect::to(&format!("/admin/apis/{}#plans", plan.api_id)).into_response());
            }
            Err(ServiceError::SlugTaken) => slug_taken(),
            Err(ServiceError::Invalid(problems)) => form_errors(&problems, &PLAN_FIELDS),
            Err(e) => return Err(e.into()),
        },
        Err(e) => e,
    };
    let page = plan_page(&state, &mut ctx, &plan, form, errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}
