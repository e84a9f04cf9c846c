//! The admin console's front page: the last 24 hours at a glance (traffic, errors, p99, revenue
//! this month, MRR), headline counts and where to go next.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use turnpike_billing::Money;
use turnpike_store::clock::hour_start;
use turnpike_store::AnalyticsFilter;

use super::common::Section;
use crate::ctx::{Chrome, Ctx};
use crate::error::{ledger_err, PortalResult};
use crate::format::{count, latency, percent};
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
    /// Last 24 hours: requests, error rate, p99.
    requests_24h: String,
    error_rate_24h: String,
    p99_24h: String,
    /// Revenue of the periods in progress (drafts), one per currency.
    revenue_month: Vec<String>,
    /// MRR per currency.
    mrr: Vec<String>,
}

/// `GET /admin`: the last 24 hours, revenue, and counts of developers, apps, keys and APIs.
pub async fn overview(State(state): State<PortalState>, ctx: Ctx) -> PortalResult<OverviewPage> {
    let now = state.clock.now();
    let c = state.store.admin_counts().await?;
    let drafts = state.store.list_apis().await?.iter().filter(|a| a.visibility == turnpike_store::Visibility::Draft).count();
    let to = hour_start(now) + 3_600;
    let day = state.store.analytics_total(&AnalyticsFilter { from: to - 86_400, to, ..Default::default() }).await?;
    let so_far = turnpike_ledger::so_far(&state.store, now).await.map_err(ledger_err)?;
    let report = turnpike_ledger::report(&state.store, now).await.map_err(ledger_err)?;
    Ok(OverviewPage {
        chrome: ctx.chrome().await?,
        section: Section::Overview,
        developers: count(c.developers),
        apps: count(c.apps),
        active_keys: count(c.active_keys),
        apis: count(c.apis),
        drafts,
        requests_24h: count(day.traffic.requests),
        error_rate_24h: percent(day.traffic.errors(), day.traffic.requests),
        p99_24h: latency(day.latency.p99),
        revenue_month: so_far.iter().map(|f| Money::from_stored(f.revenue, &f.currency).format()).collect(),
        mrr: report.mrr.iter().map(|(c, last, _)| Money::from_stored(*last, c).format()).collect(),
    })
}
