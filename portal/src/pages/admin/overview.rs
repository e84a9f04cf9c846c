//! The admin console's front page: headline counts and where to go next.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use super::common::Section;
use crate::ctx::{Chrome, Ctx};
use crate::error::PortalResult;
use crate::format::count;
use crate::PortalState;

/// `GET /admin`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "admin/overview.html")]
pub struct OverviewPage {
    chrome: Chrome,
    section: Section,
    developers: String,
    apps: String,
    active_keys: String,
    apis: String,
    drafts: usize,
}

/// `GET /admin`: counts of developers, apps, active keys and APIs.
pub async fn overview(State(state): State<PortalState>, ctx: Ctx) -> PortalResult<OverviewPage> {
    let c = state.store.admin_counts().await?;
    let drafts = state.store.list_apis().await?.iter().filter(|a| a.visibility == turnpike_store::Visibility::Draft).count();
    Ok(OverviewPage {
        chrome: ctx.chrome().await?,
        section: Section::Overview,
        developers: count(c.developers),
        apps: count(c.apps),
        active_keys: count(c.active_keys),
        apis: count(c.apis),
        drafts,
    })
}
