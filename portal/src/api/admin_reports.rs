//! The admin API's reports: revenue (what the console's Revenue page shows) and usage analytics
//! (what `/admin/analytics` shows), as JSON or, with `?format=csv`, as the console's own CSV
//! downloads. Each figure comes from the function the page calls ([`ledger::report`],
//! [`crate::analytics::owner_report`]) and each CSV from the builder the console's link uses, so
//! the page, the API and the spreadsheet cannot disagree.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use turnpike_billing::Money;
use turnpike_ledger::{self as ledger, Figure};
use turnpike_store::AnalyticsLine;
use utoipa::{IntoParams, ToSchema};

use super::admin::AdminErrors;
use super::auth::AdminCaller;
use super::problem::{query_rejection, ApiError, ApiResult, FieldError, Problem};
use crate::analytics::{self as view, Selection, Window};
use crate::PortalState;

/// The answer's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// `application/json` (the default).
    #[default]
    Json,
    /// `text/csv`, the console's download.
    Csv,
}

/// `?format=json|csv`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevenueQuery {
    /// `json` (default) or `csv`.
    pub format: Option<ReportFormat>,
}

/// Calls and revenue of one group (a month, an API, a plan, a consumer), in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct FigureOut {
    /// The group: `2027-01`, an API's name, `API / Plan`, a consumer's app and email.
    pub label: String,
    /// ISO 4217 code, lower case.
    pub currency: String,
    /// Billable requests invoiced.
    pub calls: i64,
    /// Invoiced (not void), minor units.
    pub revenue_minor: i64,
    /// Of which paid, minor units.
    pub paid_minor: i64,
    /// Invoices counted.
    pub invoices: i64,
    /// `revenue_minor` as a decimal of the currency (`12.345` KWD, `1200` JPY).
    pub revenue: String,
    /// `paid_minor` as a decimal.
    pub paid: String,
}

impl From<&Figure> for FigureOut {
    fn from(f: &Figure) -> Self {
        FigureOut {
            label: f.label.clone(),
            currency: f.currency.clone(),
            calls: f.calls,
            revenue_minor: f.revenue,
            paid_minor: f.paid,
            invoices: f.invoices,
            revenue: Money::from_stored(f.revenue, &f.currency).to_decimal_string(),
            paid: Money::from_stored(f.paid, &f.currency).to_decimal_string(),
        }
    }
}

fn figures(figs: &[Figure]) -> Vec<FigureOut> {
    figs.iter().map(FigureOut::from).collect()
}

/// Monthly recurring revenue in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct MrrOut {
    /// ISO 4217 code.
    pub currency: String,
    /// Revenue of the latest month with invoices, minor units.
    pub last_month_minor: i64,
    /// Revenue of the month before, minor units.
    pub month_before_minor: i64,
}

/// An amount given back through Stripe, in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnedOut {
    /// ISO 4217 code.
    pub currency: String,
    /// Minor units.
    pub amount_minor: i64,
    /// Refunded charges, or credit notes.
    pub count: i64,
}

/// An open invoice past its due date.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverdueOut {
    /// Invoice number.
    pub number: String,
    /// The developer's email address.
    pub email: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Total, minor units.
    pub total_minor: i64,
    /// Due date (unix seconds).
    pub due_at: i64,
}

/// The revenue report.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueReportOut {
    /// Per calendar month of the period start, oldest first, per currency.
    pub by_month: Vec<FigureOut>,
    /// The drafts of the periods in progress, per currency (not invoiced yet).
    pub so_far: Vec<FigureOut>,
    /// Per API.
    pub by_api: Vec<FigureOut>,
    /// Per plan.
    pub by_plan: Vec<FigureOut>,
    /// Top consumers by calls.
    pub top_by_calls: Vec<FigureOut>,
    /// Top consumers by revenue.
    pub top_by_revenue: Vec<FigureOut>,
    /// Monthly recurring revenue per currency.
    pub mrr: Vec<MrrOut>,
    /// Refunded through Stripe, per currency.
    pub refunds: Vec<ReturnedOut>,
    /// Credited by Stripe credit notes beyond their refunds, per currency.
    pub credits: Vec<ReturnedOut>,
    /// Open invoices past their due date.
    pub overdue: Vec<OverdueOut>,
    /// Invoices whose billed quantity was compared with the metered buckets.
    pub drift_checked: usize,
    /// Sum of |invoiced − metered| over those invoices: reads zero.
    pub drift_total: i64,
    /// Billable requests on every invoice that is not void.
    pub invoiced_total: i64,
}

/// Revenue: per month, API, plan and consumer, MRR, refunds, credit notes, overdue invoices and
/// the metering drift check. `?format=csv` answers the console's `revenue.csv`.
#[utoipa::path(get, path = "/api/v1/admin/reports/revenue", tag = "admin", params(RevenueQuery),
    responses((status = 200, description = "The revenue report", content((RevenueReportOut = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        AdminErrors))]
pub async fn revenue(
    State(state): State<PortalState>,
    _admin: AdminCaller,
    query: Result<Query<RevenueQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|r| query_rejection(&r))?;
    let now = state.clock.now();
    let r = ledger::report(&state.store, now).await.map_err(ledger_error)?;
    if q.format == Some(ReportFormat::Csv) {
        return Ok(crate::reports::revenue_csv(r));
    }
    let so_far = ledger::so_far(&state.store, now).await.map_err(ledger_error)?;
    let returned = |currency: String, amount_minor, count| ReturnedOut { currency, amount_minor, count };
    let out = RevenueReportOut {
        by_month: figures(&r.by_month),
        so_far: figures(&so_far),
        by_api: figures(&r.by_api),
        by_plan: figures(&r.by_plan),
        top_by_calls: figures(&r.top_by_calls),
        top_by_revenue: figures(&r.top_by_revenue),
        mrr: r
            .mrr
            .iter()
            .map(|(c, last, before)| MrrOut { currency: c.clone(), last_month_minor: *last, month_before_minor: *before })
            .collect(),
        refunds: state
            .store
            .stripe_refund_totals(0, now.saturating_add(1))
            .await?
            .into_iter()
            .map(|t| returned(t.currency, t.refunded, t.charges))
            .collect(),
        credits: state
            .store
            .stripe_credit_totals(0, now.saturating_add(1))
            .await?
            .into_iter()
            .map(|t| returned(t.currency, t.credited, t.notes))
            .collect(),
        overdue: r
            .overdue
            .iter()
            .map(|(number, email, currency, total, due)| OverdueOut {
                number: number.clone(),
                email: email.clone(),
                currency: currency.clone(),
                total_minor: *total,
                due_at: *due,
            })
            .collect(),
        drift_checked: r.drift_checked,
        drift_total: r.drift_total,
        invoiced_total: r.invoiced_total,
    };
    Ok(Json(out).into_response())
}

/// A report failure: the store's own error, or an unreadable stored price (logged with the
/// request id, never shown).
fn ledger_error(e: ledger::LedgerError) -> ApiError {
    match e {
        ledger::LedgerError::Store(e) => e.into(),
        e => ApiError::Internal(e.to_string()),
    }
}

/// `?range=24h|7d|30d|custom&from=&to=&api=&op=&app=&format=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// `24h` (default), `7d`, `30d` or `custom` (then `from` and `to` are required).
    pub range: Option<String>,
    /// First day of a custom range, `YYYY-MM-DD` (UTC).
    pub from: Option<String>,
    /// Last day of a custom range (included), at most 400 days after `from`.
    pub to: Option<String>,
    /// Only this API (id): the lines are its operations.
    pub api: Option<i64>,
    /// Only this operation of the API (e.g. `GET /orders/{id}`): the lines are its consumers.
    pub op: Option<String>,
    /// Only this consumer app (id): the lines are its operations.
    pub app: Option<i64>,
    /// `json` (default) or `csv`.
    pub format: Option<ReportFormat>,
}

/// Requests, errors and latency of one line (an API, an operation or a consumer).
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageLineOut {
    /// API id, consumer app id, or 0 for an operation (see `label`).
    pub id: i64,
    /// The API's name, the operation (`GET /orders/{id}`) or the consumer app's name.
    pub label: String,
    /// More about the line: the API of an operation, a consumer's email.
    pub context: String,
    /// Requests.
    pub requests: i64,
    /// Answers 100–299.
    pub status_2xx: i64,
    /// Answers 300–399.
    pub status_3xx: i64,
    /// Answers 400–499.
    pub status_4xx: i64,
    /// Answers 500–599.
    pub status_5xx: i64,
    /// Median latency, microseconds (none without requests).
    pub p50_us: Option<u64>,
    /// 95th percentile, microseconds.
    pub p95_us: Option<u64>,
    /// 99th percentile, microseconds.
    pub p99_us: Option<u64>,
}

impl From<&AnalyticsLine> for UsageLineOut {
    fn from(l: &AnalyticsLine) -> Self {
        let t = &l.traffic;
        UsageLineOut {
            id: l.id,
            label: l.label.clone(),
            context: l.context.clone(),
            requests: t.requests,
            status_2xx: t.status_2xx,
            status_3xx: t.status_3xx,
            status_4xx: t.status_4xx,
            status_5xx: t.status_5xx,
            p50_us: l.latency.p50,
            p95_us: l.latency.p95,
            p99_us: l.latency.p99,
        }
    }
}

/// Requests and errors in one slot of the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageSlotOut {
    /// Slot start (unix seconds).
    pub at: i64,
    /// Requests.
    pub requests: i64,
    /// Answers 400–599.
    pub errors: i64,
}

/// The usage report of one selection.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReportOut {
    /// Start of the range (unix seconds, inclusive).
    pub from: i64,
    /// End of the range (exclusive).
    pub to: i64,
    /// `24h`, `7d`, `30d` or `custom`.
    pub range: String,
    /// What a line is: `api`, `operation` or `consumer`.
    pub grouping: String,
    /// The whole selection.
    pub total: UsageLineOut,
    /// The whole selection over the range of the same length just before.
    pub previous: UsageLineOut,
    /// One line per group, busiest first.
    pub lines: Vec<UsageLineOut>,
    /// Requests and errors per slot (an hour for 24 h, else a day).
    pub series: Vec<UsageSlotOut>,
}

/// The selection of `q`, or the problem with each parameter that cannot be read.
fn selection(q: &UsageQuery) -> Result<Selection, ApiError> {
    let range = q.range.as_deref().unwrap_or("").trim();
    let mut errors = Vec::new();
    if !["", "24h", "7d", "30d", "custom"].contains(&range) {
        errors.push(FieldError::new("range", "must be 24h, 7d, 30d or custom"));
    }
    if range == "custom" && (q.from.is_none() || q.to.is_none()) {
        errors.push(FieldError::new("from", "a custom range needs `from` and `to` (YYYY-MM-DD)"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let id = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    Ok(Selection {
        range: range.to_owned(),
        from: q.from.clone().unwrap_or_default(),
        to: q.to.clone().unwrap_or_default(),
        api: id(q.api),
        op: q.op.clone().unwrap_or_default(),
        app: id(q.app),
    })
}

/// Usage analytics: requests, errors by class and latency percentiles per API, per operation of
/// an API (`api`), per consumer of an operation (`api` + `op`) or per operation of a consumer
/// (`app`), over the range, with the range before for comparison. `?format=csv` answers the
/// console's `analytics.csv` of the same selection.
#[utoipa::path(get, path = "/api/v1/admin/reports/usage", tag = "admin", params(UsageQuery),
    responses((status = 200, description = "The usage report", content((UsageReportOut = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A range that cannot be read", body = Problem, content_type = "application/problem+json"),
        AdminErrors))]
pub async fn usage(
    State(state): State<PortalState>,
    _admin: AdminCaller,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|r| query_rejection(&r))?;
    let sel = selection(&q)?;
    let w = Window::of(&sel, state.clock.now());
    if let Some(notice) = w.notice {
        return Err(ApiError::Validation(vec![FieldError::new("from", notice)]));
    }
    let f = view::filter_of(&sel, &w).map_err(|field| ApiError::Validation(vec![FieldError::new(field, "must be an id")]))?;
    let report = view::owner_report(&state.store, &f, w.step).await?;
    if q.format == Some(ReportFormat::Csv) {
        return Ok(view::csv_download(report));
    }
    let out = UsageReportOut {
        from: w.from,
        to: w.to,
        range: w.key.to_owned(),
        grouping: view::grouping_name(report.grouping).to_owned(),
        total: UsageLineOut::from(&report.total),
        previous: UsageLineOut::from(&report.previous),
        lines: report.lines.iter().map(UsageLineOut::from).collect(),
        series: report.series.iter().map(|s| UsageSlotOut { at: s.at, requests: s.traffic.requests, errors: s.traffic.errors() }).collect(),
    };
    Ok(Json(out).into_response())
}
