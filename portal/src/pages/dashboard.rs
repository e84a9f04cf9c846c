//! The developer's dashboard: apps and this month's usage.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::usage::{UsageQuery, UsageReport};
use crate::ctx::{Chrome, Ctx};
use crate::error::{PortalError, PortalResult};
use crate::format::{count, month_start};
use crate::PortalState;

/// One app row on the dashboard.
#[derive(Debug, Clone)]
pub struct AppSummary {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Active keys.
    pub active_keys: usize,
    /// All keys.
    pub keys: usize,
    /// Calls this month, formatted.
    pub calls: String,
    /// Errors this month, formatted.
    pub errors: String,
}

/// `GET /dashboard`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    chrome: Chrome,
    email: String,
    apps: Vec<AppSummary>,
    /// Raw number: an end-to-end test reads it.
    calls_this_month: i64,
    errors_this_month: String,
    month_label: String,
    /// The create-app form's value and error, when re-rendered.
    new_app_name: String,
    new_app_error: Option<String>,
    /// Charts, quotas and the CSV link for all apps.
    usage: UsageReport,
}

impl DashboardPage {
    /// Calls, formatted for humans next to the raw figure.
    pub fn calls_formatted(&self) -> String {
        count(self.calls_this_month)
    }
}

/// `GET /dashboard`.
pub async fn dashboard(State(state): State<PortalState>, ctx: Ctx, Query(query): Query<UsageQuery>) -> PortalResult<DashboardPage> {
    render(&state, &ctx, String::new(), None, &query).await
}

/// The dashboard, optionally with the create-app form re-shown with an error.
pub(crate) async fn render(
    state: &PortalState,
    ctx: &Ctx,
    new_app_name: String,
    new_app_error: Option<String>,
    query: &UsageQuery,
) -> PortalResult<DashboardPage> {
    let account = ctx.require_account()?;
    let now = state.clock.now();
    let from = month_start(now);
    // Three queries for any number of apps (the apps, all their keys, usage per app) and the
    // usage report, all at once: each waits on the database, not on the others.
    let (keys, usage_by_app, apps, report, chrome) = tokio::try_join!(
        async { Ok::<_, PortalError>(state.store.account_keys(account.id).await?) },
        async { Ok(state.store.account_usage_by_app(account.id, from).await?) },
        async { Ok(state.store.list_apps(account.id).await?) },
        super::usage::account_report(state, account.id, query),
        ctx.chrome(),
    )?;
    let apps = apps
        .into_iter()
        .map(|app| {
            let keys: Vec<_> = keys.iter().filter(|k| k.app_id == app.id).collect();
            let (calls, errors) = usage_by_app.iter().find(|(id, _, _)| *id == app.id).map_or((0, 0), |(_, c, e)| (*c, *e));
            AppSummary {
                id: app.id,
                name: app.name,
                // A rotated key past its grace period is refused by the gateways: not active any more.
                active_keys: keys
                    .iter()
                    .filter(|k| k.status == turnpike_store::KeyStatus::Active && k.expires_at.is_none_or(|t| t > now))
                    .count(),
                keys: keys.len(),
                calls: count(calls),
                errors: count(errors),
            }
        })
        .collect();
    let month_label = time::OffsetDateTime::from_unix_timestamp(now).map(|t| format!("{} {}", t.month(), t.year())).unwrap_or_default();
    Ok(DashboardPage {
        chrome,
        email: account.email.clone(),
        apps,
        // The month's totals are the sum over apps: no second pass over the usage rows.
        calls_this_month: usage_by_app.iter().map(|(_, calls, _)| calls).sum(),
        errors_this_month: count(usage_by_app.iter().map(|(_, _, errors)| errors).sum()),
        month_label,
        new_app_name,
        new_app_error,
        usage: report,
    })
}

/// The dashboard with a create-app error and a status.
pub(crate) async fn render_with_error(
    state: &PortalState,
    ctx: &Ctx,
    status: StatusCode,
    name: String,
    error: &str,
) -> PortalResult<Response> {
    let page = render(state, ctx, name, Some(error.to_owned()), &UsageQuery::default()).await?;
    Ok((status, page).into_response())
}

/// The dashboard.
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new().route("/dashboard", get(dashboard)).merge(super::usage::routes())
}
