//! The public catalog: landing page, API detail, OpenAPI documents.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use turnpike_store::{Api, StoreError, Visibility};

use crate::ctx::{Chrome, Ctx};
use crate::error::{PortalError, PortalResult};
use crate::views::ApiView;
use crate::PortalState;

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
        if api.visibility == Visibility::Public {
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
}

impl ApiPage {
    /// The example request shown to visitors.
    pub fn curl(&self) -> String {
        self.api.curl("<your key>")
    }
}

/// Draft APIs exist only for admins.
async fn visible_api(state: &PortalState, ctx: &Ctx, slug: &str) -> PortalResult<Api> {
    let api = state.store.get_api_by_slug(slug).await.map_err(|e| match e {
        StoreError::NotFound => PortalError::NotFound,
        e => e.into(),
    })?;
    if api.visibility == Visibility::Draft && !ctx.is_admin() {
        return Err(PortalError::NotFound);
    }
    Ok(api)
}

/// `GET /apis/{slug}`: description, base URL, plans, an example request.
pub async fn api_detail(State(state): State<PortalState>, ctx: Ctx, Path(slug): Path<String>) -> PortalResult<ApiPage> {
    let api = visible_api(&state, &ctx, &slug).await?;
    let plans = state.store.list_plans(api.id).await?;
    Ok(ApiPage {
        logged_in: ctx.account.is_some(),
        chrome: ctx.chrome().await?,
        api: ApiView::new(&api, &plans, &state.config.gateway_url),
    })
}

/// `GET /apis/{slug}/openapi.json`: the stored document, as uploaded.
pub async fn openapi(State(state): State<PortalState>, ctx: Ctx, Path(slug): Path<String>) -> PortalResult<Response> {
    let api = visible_api(&state, &ctx, &slug).await?;
    let doc = api.openapi.ok_or(PortalError::NotFound)?;
    let content_type = if doc.trim_start().starts_with('{') { "application/json" } else { "application/yaml" };
    Ok(([(CONTENT_TYPE, content_type)], doc).into_response())
}

/// The catalog's routes.
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new().route("/", get(index)).route("/apis/{slug}", get(api_detail)).route("/apis/{slug}/openapi.json", get(openapi))
}
