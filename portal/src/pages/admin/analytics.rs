//! `/admin/analytics`: traffic, errors by class and latency percentiles per API, then per
//! operation of an API, then per consumer of an operation (drill-down by links), over 24 h, 7 d,
//! 30 d or a custom range, compared with the period before; the same lines as CSV.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::Response;
use turnpike_store::{AnalyticsFilter, AnalyticsLine, Grouping};

use super::common::Section;
use crate::analytics::{self as view, LineView, OwnerReport, Selection, Window};
use crate::ctx::{Chrome, Ctx};
use crate::error::{PortalError, PortalResult};
use crate::format::{count, latency, percent};
use crate::{charts, PortalState};

/// `GET /admin/analytics`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "admin/analytics.html")]
pub struct AnalyticsPage {
    chrome: Chrome,
    section: Section,
    /// `24h`, `7d`, `30d`, `custom`.
    range: &'static str,
    /// The custom range's inputs.
    from: String,
    to: String,
    /// The drill-down filters carried by the range form: `(name, value)`.
    hidden: Vec<(&'static str, String)>,
    window: String,
    notice: Option<String>,
    /// Breadcrumb: `(text, link)`; the last one is the current page.
    crumbs: Vec<(String, Option<String>)>,
    /// "APIs", "Operations", "Consumers".
    lines_title: &'static str,
    requests: String,
    requests_change: String,
    error_rate: String,
    error_rate_before: String,
    errors_4xx: String,
    errors_5xx: String,
    p50: String,
    p95: String,
    p99: String,
    p99_before: String,
    lines: Vec<LineView>,
    lines_svg: String,
    top_consumers: Vec<LineView>,
    top_failing: Vec<LineView>,
    /// Consumer tables are shown unless the lines already are consumers.
    show_consumers: bool,
    series_svg: String,
    series: Vec<(String, String, String)>,
    csv_href: String,
}

/// The selection's filter: ids parsed (anything else is a page that does not exist).
fn filter(sel: &Selection, w: &Window) -> PortalResult<AnalyticsFilter> {
    view::filter_of(sel, w).map_err(|_| PortalError::NotFound)
}

/// A link to this page with `sel`'s range and these drill-down filters.
fn href(path: &str, sel: &Selection, api: Option<i64>, op: Option<&str>, app: Option<i64>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if !sel.range.is_empty() {
        q.append_pair("range", &sel.range);
    }
    if sel.range == "custom" {
        q.append_pair("from", &sel.from).append_pair("to", &sel.to);
    }
    if let Some(a) = api {
        q.append_pair("api", &a.to_string());
    }
    if let Some(o) = op {
        q.append_pair("op", o);
    }
    if let Some(a) = app {
        q.append_pair("app", &a.to_string());
    }
    let q = q.finish();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{q}")
    }
}

/// Where a line's label leads: one level further down.
fn drill(sel: &Selection, f: &AnalyticsFilter, grouping: Grouping, line: &AnalyticsLine) -> Option<String> {
    let page = "/admin/analytics";
    match grouping {
        Grouping::Api => Some(href(page, sel, Some(line.id), None, f.app_id)),
        Grouping::Operation if f.app_id.is_none() => Some(href(page, sel, Some(line.id), Some(&line.label), None)),
        Grouping::Consumer => Some(href(page, sel, f.api_id, f.operation.as_deref(), Some(line.id))),
        _ => None,
    }
}

/// The breadcrumb of a selection: all APIs › API › operation › consumer.
fn crumbs(sel: &Selection, f: &AnalyticsFilter, api_name: Option<String>, app_name: Option<String>) -> Vec<(String, Option<String>)> {
    let page = "/admin/analytics";
    let mut out = vec![("All APIs".to_owned(), Some(href(page, sel, None, None, None)))];
    if let (Some(api), Some(name)) = (f.api_id, api_name) {
        out.push((name, Some(href(page, sel, Some(api), None, None))));
    }
    if let Some(op) = &f.operation {
        out.push((op.clone(), Some(href(page, sel, f.api_id, Some(op), None))));
    }
    if let Some(name) = app_name {
        out.push((format!("Consumer: {name}"), None));
    }
    if let Some(last) = out.last_mut() {
        last.1 = None;
    }
    out
}

/// `GET /admin/analytics`.
pub async fn page(State(state): State<PortalState>, ctx: Ctx, Query(sel): Query<Selection>) -> PortalResult<AnalyticsPage> {
    let w = Window::of(&sel, state.clock.now());
    let f = filter(&sel, &w)?;
    let report = view::owner_report(&state.store, &f, w.step).await?;
    let api_name = match f.api_id {
        Some(id) => Some(state.store.list_apis().await?.into_iter().find(|a| a.id == id).ok_or(PortalError::NotFound)?.name),
        None => None,
    };
    let app_name = match f.app_id {
        Some(id) => Some(report.top_consumers.iter().find(|l| l.id == id).map_or_else(|| format!("app {id}"), |l| l.label.clone())),
        None => None,
    };
    Ok(render(ctx.chrome().await?, &sel, &w, &f, &report, crumbs(&sel, &f, api_name, app_name)))
}

fn render(
    chrome: Chrome,
    sel: &Selection,
    w: &Window,
    f: &AnalyticsFilter,
    r: &OwnerReport,
    crumbs: Vec<(String, Option<String>)>,
) -> AnalyticsPage {
    let (t, p) = (&r.total.traffic, &r.previous.traffic);
    let consumer_link =
        |l: &AnalyticsLine| LineView::of(l, Some(href("/admin/analytics", sel, f.api_id, f.operation.as_deref(), Some(l.id))));
    let hidden = [("api", f.api_id.map(|v| v.to_string())), ("op", f.operation.clone()), ("app", f.app_id.map(|v| v.to_string()))]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    let lines_title = match r.grouping {
        Grouping::Api | Grouping::Total => "APIs",
        Grouping::Operation => "Operations",
        Grouping::Consumer => "Consumers",
    };
    let bars = view::bars(&r.series, w.step);
    AnalyticsPage {
        chrome,
        section: Section::Analytics,
        range: w.key,
        from: sel.from.clone(),
        to: sel.to.clone(),
        hidden,
        window: w.label(),
        notice: w.notice.clone(),
        crumbs,
        lines_title,
        requests: count(t.requests),
        requests_change: view::change(t.requests, p.requests),
        error_rate: percent(t.errors(), t.requests),
        error_rate_before: percent(p.errors(), p.requests),
        errors_4xx: count(t.status_4xx),
        errors_5xx: count(t.status_5xx),
        p50: latency(r.total.latency.p50),
        p95: latency(r.total.latency.p95),
        p99: latency(r.total.latency.p99),
        p99_before: latency(r.previous.latency.p99),
        lines: r.lines.iter().map(|l| LineView::of(l, drill(sel, f, r.grouping, l))).collect(),
        lines_svg: charts::hbars(
            &format!("Requests per {}", lines_title.to_lowercase()),
            &r.lines.iter().take(view::TOP).map(|l| (l.label.clone(), l.traffic.requests, count(l.traffic.requests))).collect::<Vec<_>>(),
        ),
        top_consumers: r.top_consumers.iter().map(consumer_link).collect(),
        top_failing: r.top_failing.iter().map(consumer_link).collect(),
        show_consumers: r.grouping != Grouping::Consumer && f.app_id.is_none(),
        series_svg: charts::bars(
            "chart-traffic",
            "Requests and errors over the range",
            "Bar chart of requests (blue) and errors, 4xx and 5xx (red), per slot of the range, UTC. The table beside lists the same numbers.",
            &bars,
            if bars.len() > 16 { bars.len() / 8 } else { 1 },
        ),
        series: bars.iter().map(|b| (b.title.clone(), count(b.calls), count(b.errors))).collect(),
        csv_href: href("/admin/analytics.csv", sel, f.api_id, f.operation.as_deref(), f.app_id),
    }
}

/// `GET /admin/analytics.csv`: the page's lines (same selection), latencies in microseconds.
pub async fn csv_export(State(state): State<PortalState>, Query(sel): Query<Selection>) -> PortalResult<Response> {
    let w = Window::of(&sel, state.clock.now());
    let f = filter(&sel, &w)?;
    Ok(view::csv_download(view::owner_report(&state.store, &f, w.step).await?))
}
