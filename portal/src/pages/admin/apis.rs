//! Admin pages for APIs and their plans: list, publish, edit, OpenAPI upload, plan limits.
//!
//! The API forms are `multipart/form-data` so one submit can carry the settings and an OpenAPI
//! file. Nothing is written unless every field and the document pass their checks; on any error
//! the form comes back with every message.

use askama::Template;
use askama_web::WebTemplate;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use turnpike_store::domain::Slug;
use turnpike_store::{Api, ApiSettings, Lifecycle, Upstream, Visibility};

use super::common::{actor, check_name, FieldErrors, PlanFormValues, Section};
use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::PortalResult;
use crate::format::{count, datetime};
use crate::openapi_import::{self, ImportedSpec};
use crate::pages::parse_id;
use crate::service::{self, ServiceError};
use crate::views::PlanView;
use crate::PortalState;

/// Upstream rows the form offers beyond those already set.
const SPARE_UPSTREAM_ROWS: usize = 2;
/// Most upstream targets per API.
const MAX_UPSTREAMS: usize = 32;
/// Longest description.
const MAX_DESCRIPTION_CHARS: usize = 2000;

/// One upstream row of the form, as typed.
#[derive(Debug, Clone, Default)]
pub struct UpstreamRow {
    /// URL text.
    pub url: String,
    /// Weight text.
    pub weight: String,
}

/// The API form's values, as typed (re-rendered on error).
#[derive(Debug, Clone)]
pub struct ApiFormValues {
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Description.
    pub description: String,
    /// Route prefix.
    pub route_prefix: String,
    /// Host.
    pub host: String,
    /// Upstream rows, with spare blank rows.
    pub upstreams: Vec<UpstreamRow>,
    /// `draft`, `public`, `private`.
    pub visibility: String,
    /// `alpha`, `beta`, `stable`, `deprecated`.
    pub lifecycle: String,
    /// Whether `?api_key=` is accepted.
    pub allow_query_key: bool,
}

impl ApiFormValues {
    fn blank() -> ApiFormValues {
        ApiFormValues {
            name: String::new(),
            slug: String::new(),
            description: String::new(),
            route_prefix: String::new(),
            host: String::new(),
            upstreams: vec![UpstreamRow { url: String::new(), weight: "1".into() }],
            visibility: "draft".into(),
            lifecycle: "stable".into(),
            allow_query_key: false,
        }
        .with_spare_rows()
    }

    fn from_api(api: &Api, lifecycle: Lifecycle) -> ApiFormValues {
        ApiFormValues {
            name: api.name.clone(),
            slug: api.slug.clone(),
            description: api.description.clone(),
            route_prefix: api.route_prefix.clone(),
            host: api.host.clone().unwrap_or_default(),
            upstreams: api.upstreams.iter().map(|u| UpstreamRow { url: u.url.clone(), weight: u.weight.to_string() }).collect(),
            visibility: api.visibility.as_str().into(),
            lifecycle: lifecycle.as_str().into(),
            allow_query_key: api.allow_query_key,
        }
        .with_spare_rows()
    }

    fn with_spare_rows(mut self) -> Self {
        self.upstreams.retain(|r| !(r.url.trim().is_empty() && r.weight.trim().is_empty()));
        for _ in 0..SPARE_UPSTREAM_ROWS {
            self.upstreams.push(UpstreamRow { url: String::new(), weight: String::new() });
        }
        self
    }

    /// `(value, label)` pairs for the visibility choice.
    pub fn visibilities(&self) -> [(&'static str, &'static str); 3] {
        [
            ("draft", "Draft: only admins see it; gateways do not route it"),
            ("public", "Public: listed in the catalog and routed"),
            ("private", "Private: routed, not listed"),
        ]
    }

    /// Whether `v` is the chosen visibility.
    pub fn visibility_is(&self, v: &str) -> bool {
        self.visibility == v
    }

    /// Whether `v` is the chosen lifecycle.
    pub fn lifecycle_is(&self, v: &str) -> bool {
        self.lifecycle == v
    }

    /// Lifecycle values for the select.
    pub fn lifecycles(&self) -> Vec<&'static str> {
        Lifecycle::ALL.iter().map(|l| l.as_str()).collect()
    }
}

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

/// `GET /admin/apis/new`.
pub async fn new_form(mut ctx: Ctx) -> PortalResult<ApiFormPage> {
    ctx.ensure_csrf().await?;
    Ok(ApiFormPage {
        chrome: ctx.chrome().await?,
        section: Section::Apis,
        api_id: None,
        stored_slug: String::new(),
        stored_visibility: String::new(),
        form: ApiFormValues::blank(),
        errors: FieldErrors::default(),
        spec_errors: Vec::new(),
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

/// The fields of a submitted multipart API form.
#[derive(Debug, Default)]
struct Submitted {
    fields: Vec<(String, String)>,
    /// The uploaded document's bytes, when a file was chosen.
    spec: Option<Bytes>,
}

impl Submitted {
    fn get(&self, name: &str) -> String {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// Read a `multipart/form-data` body. `Err` carries a message for the form.
async fn read_multipart(headers: &HeaderMap, body: Bytes) -> Result<Submitted, String> {
    let boundary = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| "The form was not sent as multipart/form-data; reload the page and submit it again.".to_owned())?;
    let mut form = multer::Multipart::new(Body::from(body).into_data_stream(), boundary);
    let mut out = Submitted::default();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(format!("The form could not be read ({e}); reload the page and submit it again.")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "openapi" {
            let has_file = field.file_name().is_some_and(|n| !n.is_empty());
            let bytes = field.bytes().await.map_err(|e| format!("The file could not be read ({e})."))?;
            if has_file || !bytes.is_empty() {
                out.spec = Some(bytes);
            }
        } else {
            let text = field.text().await.map_err(|e| format!("The form could not be read ({e})."))?;
            out.fields.push((name, text));
        }
    }
    Ok(out)
}

fn values_of(s: &Submitted) -> ApiFormValues {
    let urls = s.all("upstream_url");
    let weights = s.all("upstream_weight");
    let rows = (0..urls.len().max(weights.len()))
        .map(|i| UpstreamRow { url: urls.get(i).cloned().unwrap_or_default(), weight: weights.get(i).cloned().unwrap_or_default() })
        .collect();
    ApiFormValues {
        name: s.get("name"),
        slug: s.get("slug"),
        description: s.get("description"),
        route_prefix: s.get("route_prefix"),
        host: s.get("host"),
        upstreams: rows,
        visibility: s.get("visibility"),
        lifecycle: s.get("lifecycle"),
        allow_query_key: !s.get("allow_query_key").is_empty(),
    }
}

fn check_slug(raw: &str, errors: &mut FieldErrors) -> String {
    let slug = raw.trim();
    if let Err(e) = Slug::parse(slug) {
        errors.add("slug", format!("The slug is used in URLs: {e}."));
    }
    slug.to_owned()
}

/// `/payments/v1`: starts with `/`, no trailing `/`, unreserved URL characters only.
fn check_prefix(raw: &str, errors: &mut FieldErrors) -> String {
    let p = raw.trim();
    let ok = p.len() >= 2
        && p.len() <= 200
        && p.starts_with('/')
        && !p.ends_with('/')
        && !p.contains("//")
        && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
    if !ok {
        errors.add(
            "route_prefix",
            "The route prefix is a path such as /payments/v1: it starts with /, does not end with /, and uses letters, digits, - . _ ~ and /.",
        );
    }
    p.to_owned()
}

/// A bare host name (`api.example.com`), lower-cased; empty means any host.
fn check_host(raw: &str, errors: &mut FieldErrors) -> Option<String> {
    let h = raw.trim().to_ascii_lowercase();
    if h.is_empty() {
        return None;
    }
    let ok = h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        errors.add("host", "Enter a host name such as api.example.com (no scheme, port or path), or leave it empty to match any host.");
    }
    Some(h)
}

/// At least one `http(s)://host[:port][/path]` target with a weight of 1–1000.
fn check_upstreams(rows: &[UpstreamRow], errors: &mut FieldErrors) -> Vec<Upstream> {
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let (url, weight) = (row.url.trim(), row.weight.trim());
        if url.is_empty() && weight.is_empty() {
            continue;
        }
        let n = i + 1;
        // The gateway's own routing rule: what is saved here is what it routes.
        if let Err(why) = turnpike_store::check_upstream_url(url) {
            errors.add(
                "upstreams",
                format!("Target {n}: enter an http:// or https:// URL with a host, such as https://api.example.com/v1 ({why})."),
            );
            continue;
        }
        let w = if weight.is_empty() { Some(1) } else { weight.parse::<u32>().ok().filter(|w| (1..=1000).contains(w)) };
        let Some(weight) = w else {
            errors.add("upstreams", format!("Target {n}: the weight is a whole number from 1 to 1000."));
            continue;
        };
        out.push(Upstream { url: url.trim_end_matches('/').to_owned(), weight });
    }
    if out.is_empty() && errors.get("upstreams").is_none() {
        errors.add("upstreams", "Add at least one upstream target.");
    }
    if out.len() > MAX_UPSTREAMS {
        errors.add("upstreams", format!("Use at most {MAX_UPSTREAMS} upstream targets."));
    }
    out
}

/// Check every field; `Err` holds every problem found.
fn settings_of(v: &ApiFormValues) -> Result<ApiSettings, FieldErrors> {
    let mut errors = FieldErrors::default();
    let name = check_name(&v.name, &mut errors, "name");
    let slug = check_slug(&v.slug, &mut errors);
    let description = v.description.trim().to_owned();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.add("description", format!("Use at most {MAX_DESCRIPTION_CHARS} characters."));
    }
    let route_prefix = check_prefix(&v.route_prefix, &mut errors);
    let host = check_host(&v.host, &mut errors);
    let upstreams = check_upstreams(&v.upstreams, &mut errors);
    let visibility = Visibility::parse(&v.visibility);
    if visibility.is_none() {
        errors.add("visibility", "Choose draft, public or private.");
    }
    let lifecycle = Lifecycle::parse(&v.lifecycle);
    if lifecycle.is_none() {
        errors.add("lifecycle", "Choose alpha, beta, stable or deprecated.");
    }
    match (visibility, lifecycle, errors.is_empty()) {
        (Some(visibility), Some(lifecycle), true) => Ok(ApiSettings {
            slug,
            name,
            description,
            route_prefix,
            host,
            upstreams,
            visibility,
            allow_query_key: v.allow_query_key,
            lifecycle,
        }),
        _ => Err(errors),
    }
}

/// Whether another API already routes the same host and prefix.
async fn route_taken(state: &PortalState, s: &ApiSettings, except: Option<i64>) -> PortalResult<bool> {
    Ok(state
        .store
        .list_apis()
        .await?
        .iter()
        .any(|a| Some(a.id) != except && a.route_prefix.trim_end_matches('/') == s.route_prefix && a.host == s.host))
}

/// Everything submitted, checked: settings and (if a file was chosen) the document.
struct Checked {
    values: ApiFormValues,
    result: Result<(ApiSettings, Option<ImportedSpec>), (FieldErrors, Vec<String>)>,
}

async fn check_submission(state: &PortalState, headers: &HeaderMap, body: Bytes, except: Option<i64>) -> PortalResult<Checked> {
    let submitted = match read_multipart(headers, body).await {
        Ok(s) => s,
        Err(msg) => {
            let mut errors = FieldErrors::default();
            errors.add("", msg);
            return Ok(Checked { values: ApiFormValues::blank(), result: Err((errors, Vec::new())) });
        }
    };
    let mut values = values_of(&submitted);
    let spec = match &submitted.spec {
        Some(bytes) => match openapi_import::import(bytes) {
            Ok(spec) => Some(Ok(spec)),
            Err(errs) => Some(Err(errs)),
        },
        None => None,
    };
    // A new API may take its name and description from the document it is published with.
    if let Some(Ok(spec)) = &spec {
        if values.name.trim().is_empty() {
            values.name = spec.title.clone();
        }
        if values.description.trim().is_empty() {
            values.description = spec.description.clone().unwrap_or_default().chars().take(MAX_DESCRIPTION_CHARS).collect();
        }
    }
    let settings = settings_of(&values);
    let (mut errors, settings) = match settings {
        Ok(s) => (FieldErrors::default(), Some(s)),
        Err(e) => (e, None),
    };
    if let Some(s) = &settings {
        if route_taken(state, s, except).await? {
            errors.add("route_prefix", "Another API already uses this route prefix (and host). Pick another.");
        }
    }
    let spec_errors = match &spec {
        Some(Err(errs)) => errs.clone(),
        _ => Vec::new(),
    };
    let result = match (settings, spec) {
        (Some(s), spec) if errors.is_empty() && spec_errors.is_empty() => Ok((s, spec.and_then(Result::ok))),
        _ => Err((errors, spec_errors)),
    };
    Ok(Checked { values: values.with_spare_rows(), result })
}

/// The form's errors when another API has the slug.
fn slug_taken() -> (FieldErrors, Vec<String>) {
    let mut e = FieldErrors::default();
    e.add("slug", "Another API already uses this slug. Pick another.");
    (e, Vec::new())
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
    ctx.ensure_csrf().await?;
    let page = ApiFormPage {
        chrome: ctx.chrome().await?,
        section: Section::Apis,
        api_id: None,
        stored_slug: String::new(),
        stored_visibility: String::new(),
        form: checked.values,
        errors,
        spec_errors,
        spec: None,
        plans: Vec::new(),
        pf: PlanFormValues::blank(),
        plan_errors: FieldErrors::default(),
        max_spec_mib: openapi_import::MAX_SPEC_BYTES / (1024 * 1024),
    };
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
