//! Admin pages for APIs and their plans: list, publish, edit, OpenAPI upload, plan limits.
//!
//! The API forms are `multipart/form-data` so one submit can carry the settings and an OpenAPI
//! file. Nothing is written unless every field and the document pass their checks; on any error
//! the form comes back with every message.

use askama::Template;
use askama_web::WebTemplate;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use turnpike_store::{Api, Lifecycle, Visibility};

mod form;

pub(crate) use form::form_errors;
use form::{check_submission, slug_taken};
pub use form::{ApiFormValues, UpstreamRow};

use super::common::{actor, FieldErrors, PlanFormValues, Section};
use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::PortalResult;
use crate::format::{count, datetime};
use crate::openapi_import::{self, ImportedSpec};
use crate::pages::parse_id;
use crate::service::{self, ServiceError};
use crate::views::PlanView;
use crate::PortalState;

/// What the stored document looks like, for the edit page.
#[derive(Debug, Clone)]
pub struct SpecSummary {
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub version: String,
    /// `openapi`.
    pub openapi: String,
    /// Operation count.
    pub operations: String,
    /// Size of the stored JSON.
    pub size: String,
}

fn summarize(json: &str) -> Option<SpecSummary> {
    let spec = openapi_import::import(json.as_bytes()).ok()?;
    Some(summary_of(&spec))
}

fn summary_of(spec: &ImportedSpec) -> SpecSummary {
    let kib = spec.json.len().div_ceil(1024);
    SpecSummary {
        title: spec.title.clone(),
        version: spec.version.clone(),
        openapi: spec.openapi.clone(),
        operations: count(i64::try_from(spec.operations).unwrap_or(i64::MAX)),
        size: format!("{} KiB", count(i64::try_from(kib).unwrap_or(i64::MAX))),
    }
}

/// `GET /admin/apis/new`, `GET /admin/apis/{id}` and their re-rendered forms.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "admin/api_form.html")]
pub struct ApiFormPage {
    chrome: Chrome,
    section: Section,
    /// `None` when creating.
    api_id: Option<i64>,
    /// Slug as stored (for links), when editing.
    stored_slug: String,
    stored_visibility: String,
    /// Why the gateway routes none of the stored API's targets (not a draft), if so.
    not_routed: Option<String>,
    form: ApiFormValues,
    errors: FieldErrors,
    /// Problems with the uploaded document.
    spec_errors: Vec<String>,
    spec: Option<SpecSummary>,
    plans: Vec<PlanRow>,
    /// The add-plan form.
    pf: PlanFormValues,
    plan_errors: FieldErrors,
    max_spec_mib: usize,
}

/// A plan in the API page's table.
#[derive(Debug, Clone)]
pub struct PlanRow {
    /// Id.
    pub id: i64,
    /// Slug.
    pub slug: String,
    /// Catalog view (name, price, limits).
    pub view: PlanView,
}

impl ApiFormPage {
    fn action(&self) -> String {
        self.api_id.map_or_else(|| "/admin/apis".to_owned(), |id| format!("/admin/apis/{id}"))
    }
}

/// A row of the API list.
#[derive(Debug, Clone)]
pub struct ApiRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Route prefix (and host).
    pub route: String,
    /// Visibility.
    pub visibility: &'static str,
    /// The gateway's state: `(badge class, label, why not routed)`, e.g. `("active",
    /// "Published", None)` or `("suspended", "Not routed", Some("upstream target 1 (…): …"))`.
    pub routing: (&'static str, &'static str, Option<String>),
    /// Lifecycle.
    pub lifecycle: &'static str,
    /// Number of upstream targets.
    pub upstreams: usize,
    /// Number of plans.
    pub plans: usize,
    /// Whether a document is stored.
    pub has_openapi: bool,
    /// Last change.
    pub updated: String,
}

/// `GET /admin/apis`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "admin/apis.html")]
pub struct ApiListPage {
    chrome: Chrome,
    section: Section,
    apis: Vec<ApiRow>,
}

/// `GET /admin/apis`: every API, any visibility.
pub async fn list(State(state): State<PortalState>, ctx: Ctx) -> PortalResult<ApiListPage> {
    let lifecycles = state.store.api_lifecycles().await?;
    let mut apis = Vec::new();
    for api in state.store.list_apis().await? {
        let plans = state.store.list_plans(api.id).await?.len();
        let lifecycle = lifecycles.iter().find(|(id, _)| *id == api.id).map_or(Lifecycle::Stable, |(_, l)| *l);
        apis.push(ApiRow {
            routing: routing_badge(&api),
            id: api.id,
            route: match &api.host {
                Some(h) => format!("{h}{}", api.route_prefix),
                None => api.route_prefix.clone(),
            },
            name: api.name,
            slug: api.slug,
            visibility: api.visibility.as_str(),
            lifecycle: lifecycle.as_str(),
            upstreams: api.upstreams.len(),
            plans,
            has_openapi: api.openapi.is_some(),
            updated: datetime(api.updated_at),
        });
    }
    Ok(ApiListPage { chrome: ctx.chrome().await?, section: Section::Apis, apis })
}

/// What the gateway does with `api`: a draft is not routed by choice; a listed or unlisted API
/// whose targets the gateway cannot use says so instead of "Published".
fn routing_badge(api: &Api) -> (&'static str, &'static str, Option<String>) {
    match (api.visibility, api.unroutable_reason()) {
        (Visibility::Draft, _) => ("warn", "Draft, not routed", None),
        (_, Some(why)) => ("suspended", "Not routed", Some(why)),
        (Visibility::Public, None) => ("active", "Published", None),
        (Visibility::Private, None) => ("accent", "Routed, unlisted", None),
    }
}

/// `GET /admin/apis/new`.
pub async fn new_form(mut ctx: Ctx) -> PortalResult<ApiFormPage> {
    new_page(&mut ctx, ApiFormValues::blank(), FieldErrors::default(), Vec::new()).await
}

/// The page of an API not created yet, with `form` values and errors.
async fn new_page(ctx: &mut Ctx, form: ApiFormValues, errors: FieldErrors, spec_errors: Vec<String>) -> PortalResult<ApiFormPage> {
    ctx.ensure_csrf().await?;
    Ok(ApiFormPage {
        chrome: ctx.chrome().await?,
        section: Section::Apis,
        api_id: None,
        stored_slug: String::new(),
        stored_visibility: String::new(),
        not_routed: None,
        form,
        errors,
        spec_errors,
        spec: None,
        plans: Vec::new(),
        pf: PlanFormValues::blank(),
        plan_errors: FieldErrors::default(),
        max_spec_mib: openapi_import::MAX_SPEC_BYTES / (1024 * 1024),
    })
}

/// The edit page of `api`, with `form` values and errors.
pub(super) async fn edit_page(
    state: &PortalState,
    ctx: &mut Ctx,
    api: &Api,
    form: Option<ApiFormValues>,
    errors: FieldErrors,
    spec_errors: Vec<String>,
    new_plan: Option<(PlanFormValues, FieldErrors)>,
) -> PortalResult<ApiFormPage> {
    ctx.ensure_csrf().await?;
    let lifecycle = state.store.api_lifecycle(api.id).await?;
    let plans =
        state.store.list_plans(api.id).await?.iter().map(|p| PlanRow { id: p.id, slug: p.slug.clone(), view: PlanView::from(p) }).collect();
    let (pf, plan_errors) = new_plan.unwrap_or_else(|| (PlanFormValues::blank(), FieldErrors::default()));
    Ok(ApiFormPage {
        chrome: ctx.chrome().await?,
        section: Section::Apis,
        api_id: Some(api.id),
        stored_slug: api.slug.clone(),
        stored_visibility: api.visibility.as_str().to_owned(),
        not_routed: if api.visibility == Visibility::Draft { None } else { api.unroutable_reason() },
        form: form.unwrap_or_else(|| ApiFormValues::from_api(api, lifecycle)),
        errors,
        spec_errors,
        spec: api.openapi.as_deref().and_then(summarize),
        plans,
        pf,
        plan_errors,
        max_spec_mib: openapi_import::MAX_SPEC_BYTES / (1024 * 1024),
    })
}

/// `GET /admin/apis/{id}`: settings, OpenAPI document and plans.
pub async fn edit_form(State(state): State<PortalState>, mut ctx: Ctx, Path(id): Path<String>) -> PortalResult<ApiFormPage> {
    let api = state.store.get_api(parse_id(&id)?).await?;
    edit_page(&state, &mut ctx, &api, None, FieldErrors::default(), Vec::new(), None).await
}

/// `POST /admin/apis`: publish a new API (optionally with its OpenAPI document).
pub async fn create(State(state): State<PortalState>, mut ctx: Ctx, headers: HeaderMap, body: Bytes) -> PortalResult<Response> {
    let admin = actor(&ctx)?;
    let checked = check_submission(&state, &headers, body, None).await?;
    let (errors, spec_errors) = match checked.result {
        Ok((settings, spec)) => {
            let now = state.clock.now();
            match service::apis::publish(&state.store, admin, &settings, spec.as_ref(), now).await {
                Ok(api) => {
                    ctx.flash(FlashKind::Success, format!("Created “{}”. Add a plan so developers can subscribe.", api.name)).await?;
                    return Ok(Redirect::to(&format!("/admin/apis/{}", api.id)).into_response());
                }
                Err(ServiceError::SlugTaken) => slug_taken(),
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => e,
    };
    let page = new_page(&mut ctx, checked.values, errors, spec_errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// `POST /admin/apis/{id}`: change an API's settings and, if a file was chosen, its document.
pub async fn update(
    State(state): State<PortalState>,
    mut ctx: Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PortalResult<Response> {
    let admin = actor(&ctx)?;
    let api = state.store.get_api(parse_id(&id)?).await?;
    let checked = check_submission(&state, &headers, body, Some(api.id)).await?;
    let (errors, spec_errors) = match checked.result {
        Ok((settings, spec)) => {
            let now = state.clock.now();
            match service::apis::update(&state.store, admin, &api, &settings, spec.as_ref(), now).await {
                Ok(updated) => {
                    let msg = match &spec {
                        Some(s) => format!("Saved “{}” with its OpenAPI document ({} operations).", updated.name, s.operations),
                        None => format!("Saved “{}”. Gateways apply the change within a second.", updated.name),
                    };
                    ctx.flash(FlashKind::Success, msg).await?;
                    return Ok(Redirect::to(&format!("/admin/apis/{}", api.id)).into_response());
                }
                Err(ServiceError::SlugTaken) => slug_taken(),
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => e,
    };
    let page = edit_page(&state, &mut ctx, &api, Some(checked.values), errors, spec_errors, None).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}
