//! The public catalog: landing page, API detail, OpenAPI documents.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use turnpike_store::{Api, StoreError, Visibility};

mod openapi_rewrite;
mod quickstart;

use turnpike_ledger as ledger;

use super::stripe::StripeEnabled;
use crate::ctx::{Chrome, Ctx};
use crate::error::{PortalError, PortalResult};
use crate::views::ApiView;
use crate::PortalState;
use axum::body::Bytes;

/// `GET /`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "index.html")]
pub struct IndexPage {
    chrome: Chrome,
    apis: Vec<ApiView>,
}

/// `GET /`: landing page and the catalog of public APIs.
pub async fn index(State(state): State<PortalState>, ctx: Ctx) -> PortalResult<IndexPage> {
    let mut apis = Vec::new();
    for api in state.store.list_apis().await? {
        // An API the gateway answers with `no_route` is not offered.
        if api.visibility == Visibility::Public && api.unroutable_reason().is_none() {
            let plans = state.store.list_plans(api.id).await?;
            apis.push(ApiView::new(&api, &plans, &state.config.gateway_url));
        }
    }
    Ok(IndexPage { chrome: ctx.chrome().await?, apis })
}

/// `GET /apis/{slug}`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "api.html")]
pub struct ApiPage {
    chrome: Chrome,
    api: ApiView,
    logged_in: bool,
    /// `(badge class, label)` for the API's lifecycle status.
    status: (&'static str, &'static str),
    /// Whether developers can subscribe here (published APIs only).
    subscribable: bool,
    /// The gateway routes none of its targets: no subscribing, no "Try it". The reason is for
    /// admins only (it names upstream URLs).
    unavailable: Option<String>,
    /// The quick start's path: the first `GET` of the document, if it has one.
    example_path: Option<String>,
    /// The logged-in developer's apps and where each stands on this API.
    apps: Vec<AppOnApi>,
    /// Plans whose price needs payment (the "continues to payment" note when Stripe is on).
    paid_plans: Vec<i64>,
    /// Stripe is configured: paid plans go through Checkout.
    stripe: bool,
}

/// One of the developer's apps, for the "Subscribe" forms.
#[derive(Debug, Clone)]
pub struct AppOnApi {
    /// App id.
    pub id: i64,
    /// App name.
    pub name: String,
    /// The plan of its live (not canceled) subscription to this API, if any.
    pub plan_id: Option<i64>,
}

/// An option of a plan's app picker.
#[derive(Debug, Clone)]
pub struct AppChoice {
    /// App id.
    pub id: i64,
    /// App name.
    pub name: String,
    /// Already on this plan (shown, disabled).
    pub on_plan: bool,
}

impl ApiPage {
    /// The example request shown to visitors: a real `GET` of the API's document when it has one.
    pub fn curl(&self) -> String {
        match &self.example_path {
            Some(path) => format!("curl -H \"Authorization: Bearer <your key>\" \"{}{path}\"", self.api.base_url),
            None => self.api.curl("<your key>"),
        }
    }

    /// Whether the interactive reference ("Try it out") is offered.
    pub fn try_it(&self) -> bool {
        self.api.has_openapi && self.unavailable.is_none()
    }

    /// The app picker of `plan_id`'s "Subscribe" form.
    pub fn choices(&self, plan_id: &i64) -> Vec<AppChoice> {
        self.apps.iter().map(|a| AppChoice { id: a.id, name: a.name.clone(), on_plan: a.plan_id == Some(*plan_id) }).collect()
    }

    /// Whether every app of the developer is already on `plan_id`.
    pub fn all_on(&self, plan_id: &i64) -> bool {
        self.apps.iter().all(|a| a.plan_id == Some(*plan_id))
    }

    /// Whether subscribing to `plan_id` continues to Stripe Checkout.
    pub fn goes_to_checkout(&self, plan_id: &i64) -> bool {
        self.stripe && self.paid_plans.contains(plan_id)
    }
}

/// Draft APIs exist only for admins.
async fn visible_api(state: &PortalState, ctx: &Ctx, slug: &str) -> PortalResult<Api> {
    visible(state.store.get_api_by_slug(slug).await, ctx)
}

/// [`visible_api`] without reading the document (`openapi` is `Some("")` when there is one).
async fn visible_api_summary(state: &PortalState, ctx: &Ctx, slug: &str) -> PortalResult<Api> {
    visible(state.store.get_api_summary_by_slug(slug).await, ctx)
}

fn visible(found: Result<Api, StoreError>, ctx: &Ctx) -> PortalResult<Api> {
    let api = found.map_err(|e| match e {
        StoreError::NotFound => PortalError::NotFound,
        e => e.into(),
    })?;
    if api.visibility == Visibility::Draft && !ctx.is_admin() {
        return Err(PortalError::NotFound);
    }
    Ok(api)
}

/// `GET /apis/{slug}`: description, status, base URL, plans, an example request and, when a
/// document is stored, the interactive reference (Swagger UI, vendored under `static/`).
pub async fn api_detail(
    State(state): State<PortalState>,
    StripeEnabled(stripe): StripeEnabled,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> PortalResult<Response> {
    let api = visible_api(&state, &ctx, &slug).await?;
    let plans = state.store.list_plans(api.id).await?;
    let unavailable = if api.visibility == Visibility::Draft { None } else { api.unroutable_reason() };
    let subscribable = api.visibility == Visibility::Public && unavailable.is_none();
    let mut apps = Vec::new();
    if let (Some(account), true) = (&ctx.account, subscribable) {
        for app in state.store.list_apps(account.id).await? {
            let subs = state.store.list_subscriptions(app.id).await?;
            let plan_id = subs.iter().find(|s| s.api_id == api.id && s.status != "canceled").map(|s| s.plan_id);
            apps.push(AppOnApi { id: app.id, name: app.name, plan_id });
        }
    }
    let mut paid_plans = Vec::new();
    if stripe && subscribable {
        let now = state.clock.now();
        for plan in &plans {
            // A plan whose price cannot be read is shown without the note; subscribing reports it.
            if ledger::plan_needs_payment(&state.store, plan.id, now).await.unwrap_or(false) {
                paid_plans.push(plan.id);
            }
        }
    }
    let status = match api.visibility {
        _ if unavailable.is_some() => ("suspended", "Unavailable"),
        Visibility::Public => ("active", "Published"),
        Visibility::Private => ("accent", "Unlisted"),
        Visibility::Draft => ("warn", "Draft"),
    };
    let example_path = quickstart::example_path(&api);
    let page = ApiPage {
        logged_in: ctx.account.is_some(),
        chrome: ctx.chrome().await?,
        api: ApiView::new(&api, &plans, &state.config.gateway_url),
        status,
        subscribable,
        unavailable: unavailable.map(|why| if ctx.is_admin() { why } else { String::new() }),
        example_path,
        apps,
        paid_plans,
        stripe,
    };
    let csp = docs_csp(&state.config.gateway_url);
    Ok(([(CONTENT_SECURITY_POLICY, csp)], page).into_response())
}

/// The API page's policy: the portal-wide one, except that
/// - `style-src` allows inline styles: Swagger UI (React) sets `style` attributes on its
///   elements (collapsing sections, the model viewer) and cannot work without them. Scripts stay
///   `'self'` only, so this admits no script injection; the page has no user-controlled CSS.
/// - `connect-src` allows the gateway's origin, where "Try it out" sends its requests.
fn docs_csp(gateway_url: &str) -> HeaderValue {
    let origin = gateway_origin(gateway_url).map(|o| format!(" {o}")).unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; \
         connect-src 'self'{origin}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// `scheme://host[:port]` of an http(s) URL, if it is one and holds only characters that are safe
/// inside a CSP source expression.
fn gateway_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let safe = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    safe.then(|| format!("{scheme}://{host}"))
}

/// `GET /apis/{slug}/openapi.json`: the stored document, as uploaded (the download link).
pub async fn openapi(State(state): State<PortalState>, ctx: Ctx, Path(slug): Path<String>) -> PortalResult<Response> {
    let api = visible_api_summary(&state, &ctx, &slug).await?;
    let doc = state.store.api_document(api.id).await?.ok_or(PortalError::NotFound)?;
    let content_type = if is_json(&doc) { "application/json" } else { "application/yaml" };
    Ok(([(CONTENT_TYPE, content_type)], doc).into_response())
}

/// `GET /apis/{slug}/openapi.gateway.json`: the document the docs page renders: servers point at
/// the gateway (so "Try it out" goes through it) and the security scheme is the Turnpike key.
pub async fn gateway_openapi(State(state): State<PortalState>, ctx: Ctx, Path(slug): Path<String>) -> PortalResult<Response> {
    let api = visible_api_summary(&state, &ctx, &slug).await?;
    let stamp = state.store.api_document_stamp(api.id).await?.ok_or(PortalError::NotFound)?;
    let base_url = format!("{}{}", state.config.gateway_url.trim_end_matches('/'), api.route_prefix);
    let key = (api.id, stamp, base_url);
    let cached = rewritten_cache().lock().ok().and_then(|c| c.get(&key).cloned());
    let rendered = match cached {
        Some(r) => r,
        None => {
            // Read and rewrite the document once per version (it can be 16 MiB: GitHub's is 13).
            let doc = state.store.api_document(api.id).await?.ok_or(PortalError::NotFound)?;
            let rendered = std::sync::Arc::new(match openapi_rewrite::for_gateway(&doc, &key.2) {
                Ok(openapi_rewrite::Rewritten::Json(body)) => ("application/json", Bytes::from(body)),
                Ok(openapi_rewrite::Rewritten::Yaml(body)) => ("application/yaml", Bytes::from(body)),
                Err(e) => {
                    // A stored document that does not parse: log it, and serve it unchanged so the
                    // docs still show what Swagger UI can make of it.
                    tracing::warn!(api = %api.slug, error = %e, "openapi document could not be rewritten for the gateway");
                    (if is_json(&doc) { "application/json" } else { "application/yaml" }, Bytes::from(doc))
                }
            });
            if let Ok(mut c) = rewritten_cache().lock() {
                // Few APIs have documents; a full cache starts over rather than tracking use.
                if c.len() >= REWRITTEN_CACHE_ENTRIES {
                    c.clear();
                }
                c.insert(key, rendered.clone());
            }
            rendered
        }
    };
    let disposition = HeaderValue::from_static("inline");
    let headers = [(CONTENT_TYPE, HeaderValue::from_static(rendered.0)), (CONTENT_DISPOSITION, disposition)];
    Ok((headers, rendered.1.clone()).into_response())
}

/// Documents rewritten for the gateway kept in memory, at most.
const REWRITTEN_CACHE_ENTRIES: usize = 32;

/// Content type and body; `Bytes` so that serving a cached 13 MB document copies nothing.
type Rewritten = std::sync::Arc<(&'static str, Bytes)>;

/// Rewritten documents by (API, (updated at, length), gateway base URL): a new upload changes the
/// stamp, so a stale rendering is never served.
type RewrittenCache = std::sync::Mutex<std::collections::HashMap<(i64, (i64, i64), String), Rewritten>>;

fn rewritten_cache() -> &'static RewrittenCache {
    static CACHE: std::sync::OnceLock<RewrittenCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn is_json(doc: &str) -> bool {
    doc.trim_start().starts_with('{')
}

/// The catalog's routes.
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new()
        .route("/", get(index))
        .route("/apis/{slug}", get(api_detail))
        .route("/apis/{slug}/openapi.json", get(openapi))
        .route("/apis/{slug}/openapi.gateway.json", get(gateway_openapi))
        .route("/apis/{slug}/subscribe", axum::routing::post(super::subscribe::subscribe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(gateway_origin("https://gw.example.com/base").as_deref(), Some("https://gw.example.com"));
        assert_eq!(gateway_origin("http://127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(gateway_origin("ftp://x"), None);
        assert_eq!(gateway_origin("https://a b;script-src *"), None);
    }
}
