//! Usage reports: calls and errors per hour (last 48 h) and per day (this period), quota used and
//! left with a forecast, mean latency, and the hourly rows as CSV. For the whole account (on the
//! dashboard) and per app (`/apps/{id}/usage`), filtered by key and API. Every number is
//! `usage_hourly` summed over counter sources: what billing invoices.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use turnpike_store::clock::hour_start;
use turnpike_store::period::{monthly_period, Period};
use turnpike_store::{AnalyticsFilter, Api, App, Grouping, HourUsage, KeyRecord, Plan, Subscription, UsageCounts, UsageFilter};

use super::owned_app;
use crate::charts::{self, Bar};
use crate::csv;
use crate::ctx::{Chrome, Ctx};
use crate::error::{PortalError, PortalResult};
use crate::format::{count, datetime, day_label, hour_label, month_start, percent};
use crate::PortalState;

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// Hours in the hourly chart, the current one included.
pub const HOURS_SHOWN: i64 = 48;

/// `?key=&api=`: empty or absent means all.
#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    #[serde(default)]
    key: String,
    #[serde(default)]
    api: String,
}

/// An `<option>` of a filter select.
#[derive(Debug, Clone)]
pub struct FilterOption {
    /// Value (an id).
    pub value: i64,
    /// Text.
    pub label: String,
    /// Whether it is the current choice.
    pub selected: bool,
}

/// One row of a chart's data table.
#[derive(Debug, Clone)]
pub struct SeriesRow {
    /// Hour or day, e.g. `"2026-05-28 14:00 UTC"`.
    pub label: String,
    /// Calls, formatted.
    pub calls: String,
    /// Errors, formatted.
    pub errors: String,
}

/// A subscription's quota this period.
#[derive(Debug, Clone)]
pub struct QuotaView {
    /// App name.
    pub app_name: String,
    /// API name.
    pub api_name: String,
    /// Plan name.
    pub plan_name: String,
    /// Calls counted against the quota this period (the invoiced figure), formatted.
    pub used: String,
    /// Quota, formatted, or "Unlimited".
    pub quota: String,
    /// Left, formatted, or "—" when unlimited.
    pub left: String,
    /// Width of the bar, 0–100.
    pub percent: i64,
    /// Over or at the quota.
    pub exhausted: bool,
    /// "Runs out around …", "Used up", "Lasts the period".
    pub forecast: String,
    /// `"2026-05-01 00:00 UTC – 2026-06-01 00:00 UTC"`.
    pub period: String,
}

/// Everything the usage section renders.
#[derive(Debug, Clone)]
pub struct UsageReport {
    /// Where the filter form submits.
    pub form_action: String,
    /// Whether the section shows its own totals strip (the dashboard has its own at the top).
    pub show_totals: bool,
    /// The CSV link with the current filters.
    pub csv_href: String,
    /// Key choices.
    pub keys: Vec<FilterOption>,
    /// API choices.
    pub apis: Vec<FilterOption>,
    /// The period the daily chart and the totals cover.
    pub period_label: String,
    /// Calls this period, formatted.
    pub calls: String,
    /// Errors this period, formatted.
    pub errors: String,
    /// Errors as a share of calls, e.g. `"1.2%"`.
    pub error_rate: String,
    /// Mean latency this period, e.g. `"42 ms"`, or "—".
    pub latency: String,
    /// Hourly chart (SVG markup built by [`charts::bars`], all text escaped).
    pub hourly_svg: String,
    /// Hourly data table.
    pub hourly: Vec<SeriesRow>,
    /// Daily chart.
    pub daily_svg: String,
    /// Daily data table.
    pub daily: Vec<SeriesRow>,
    /// Quotas of the subscriptions in scope.
    pub quotas: Vec<QuotaView>,
    /// This period by OpenAPI operation of the APIs called.
    pub operations: Vec<crate::analytics::LineView>,
}

/// What the report covers.
enum Scope<'a> {
    /// All of the account's apps.
    Account,
    /// One app.
    App(&'a App),
}

fn parse_choice(raw: &str) -> PortalResult<Option<i64>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<i64>().map(Some).map_err(|_| PortalError::NotFound)
}

/// Bucket hourly totals into `n` slots of `width` seconds from `start`.
fn bucket(hours: &[HourUsage], start: i64, width: i64, n: i64) -> Vec<UsageCounts> {
    let mut out = vec![UsageCounts::default(); usize::try_from(n.max(0)).unwrap_or(0)];
    for h in hours {
        if h.hour < start {
            continue;
        }
        if let Some(slot) = usize::try_from((h.hour - start) / width).ok().and_then(|i| out.get_mut(i)) {
            slot.add(&h.counts);
        }
    }
    out
}

/// The keys and subscriptions in scope, read in two queries however many apps there are.
async fn inventory(state: &PortalState, account_id: i64, scope: &Scope<'_>) -> PortalResult<(Vec<KeyRecord>, Vec<(String, Subscription)>)> {
    // Independent reads run at once (the pools hold several connections; SQLite reads in WAL mode).
    let (apps, keys, subs) = match scope {
        Scope::Account => tokio::try_join!(
            state.store.list_apps(account_id),
            state.store.account_keys(account_id),
            state.store.account_subscriptions(account_id),
        )?,
        Scope::App(app) => {
            let (keys, subs) = tokio::try_join!(state.store.list_keys(app.id), state.store.list_subscriptions(app.id))?;
            (vec![(*app).clone()], keys, subs)
        }
    };
    let names: HashMap<i64, String> = apps.into_iter().map(|a| (a.id, a.name)).collect();
    let subs = subs.into_iter().map(|s| (names.get(&s.app_id).cloned().unwrap_or_default(), s)).collect();
    // Keys carry their app's name in the label on the account-wide report.
    let keys = keys.into_iter().map(|mut k| {
        if matches!(scope, Scope::Account) {
            k.name = format!("{} / {}", names.get(&k.app_id).map_or("", String::as_str), k.name);
        }
        k
    });
    Ok((keys.collect(), subs))
}

/// Calls and errors per slot of `width` seconds from `start`: chart bars and table rows.
fn series(hours: &[HourUsage], start: i64, width: i64, n: i64, short: fn(i64) -> String) -> (Vec<Bar>, Vec<SeriesRow>) {
    bucket(hours, start, width, n)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let at = start + i64::try_from(i).unwrap_or(0) * width;
            (
                Bar { label: short(at), title: datetime(at), calls: c.admitted, errors: c.errors() },
                SeriesRow { label: datetime(at), calls: count(c.admitted), errors: count(c.errors()) },
            )
        })
        .unzip()
}

/// One subscription's quota: `used` of its plan's quota in its period `p`, with the forecast.
fn quota_view(app_name: &str, api: &Api, plan: &Plan, used: i64, p: Period, now: i64) -> QuotaView {
    let (quota, left, percent, exhausted, forecast) = match plan.monthly_quota {
        None => ("Unlimited".to_owned(), "—".to_owned(), 0, false, "No quota on this plan".to_owned()),
        Some(q) => {
            let left = (q - used).max(0);
            let percent = if q <= 0 { 100 } else { i64::try_from((i128::from(used) * 100 / i128::from(q)).min(100)).unwrap_or(100) };
            let forecast = match turnpike_billing::forecast_exhaustion(
                u64::try_from(used.max(0)).unwrap_or(0),
                u64::try_from(q.max(0)).unwrap_or(0),
                now - p.start,
                p.end - p.start,
            ) {
                Some(0) => "Used up: calls are refused until the period ends".to_owned(),
                Some(secs) => format!("At this rate it runs out around {}", datetime(now + secs)),
                None => "At this rate it lasts the period".to_owned(),
            };
            (count(q), count(left), percent, used >= q, forecast)
        }
    };
    QuotaView {
        app_name: app_name.to_owned(),
        api_name: api.name.clone(),
        plan_name: plan.name.clone(),
        used: count(used),
        quota,
        left,
        percent,
        exhausted,
        forecast,
        period: format!("{} – {}", datetime(p.start), datetime(p.end)),
    }
}

/// The quotas of `subs`, each over its own billing period: two queries in all (plans, usage).
async fn quotas(state: &PortalState, subs: &[&(String, Subscription)], apis: &[Api], now: i64) -> PortalResult<Vec<QuotaView>> {
    let periods: Vec<Period> = subs.iter().map(|(_, s)| monthly_period(s.billing_anchor, now)).collect();
    let windows: Vec<(i64, i64, i64)> = subs.iter().zip(&periods).map(|((_, s), p)| (s.id, p.start, p.end)).collect();
    // The figure billing counts: each subscription's usage in its own period, all keys.
    let (plans, used) = tokio::try_join!(state.store.list_all_plans(), state.store.subscriptions_usage(&windows))?;
    let mut out = Vec::with_capacity(subs.len());
    for ((app_name, sub), p) in subs.iter().zip(periods) {
        let Some(api) = apis.iter().find(|a| a.id == sub.api_id) else { continue };
        let Some(plan) = plans.iter().find(|p| p.id == sub.plan_id) else { continue };
        out.push(quota_view(app_name, api, plan, used.get(&sub.id).copied().unwrap_or(0), p, now));
    }
    Ok(out)
}

/// The report's period: the subscription's billing period when the report is about exactly one
/// subscription (one app and one API), otherwise the calendar month (UTC).
fn report_period(scope: &Scope<'_>, scoped: &[&(String, Subscription)], api_choice: Option<i64>, now: i64) -> Period {
    match (scope, scoped) {
        (Scope::App(_), [(_, only)]) if api_choice.is_some() => monthly_period(only.billing_anchor, now),
        _ => {
            let start = month_start(now);
            Period { start, end: month_start(start + 32 * DAY) }
        }
    }
}

/// The key and API choices of the filter form, with the chosen ones selected. A choice naming
/// someone else's key or an API not in scope is a page that does not exist.
fn filter_options(
    keys: Vec<KeyRecord>,
    all_apis: &[Api],
    subs: &[(String, Subscription)],
    key_choice: Option<i64>,
    api_choice: Option<i64>,
) -> PortalResult<(Vec<FilterOption>, Vec<FilterOption>)> {
    let keys: Vec<FilterOption> = keys
        .into_iter()
        .map(|k| FilterOption { value: k.id, label: format!("{} ({}…)", k.name, k.display_prefix), selected: key_choice == Some(k.id) })
        .collect();
    let mut apis: Vec<FilterOption> = all_apis
        .iter()
        .filter(|a| subs.iter().any(|(_, s)| s.api_id == a.id))
        .map(|a| FilterOption { value: a.id, label: a.name.clone(), selected: api_choice == Some(a.id) })
        .collect();
    apis.sort_by(|a, b| a.label.cmp(&b.label));
    if key_choice.is_some_and(|k| !keys.iter().any(|o| o.value == k)) || api_choice.is_some_and(|a| !apis.iter().any(|o| o.value == a)) {
        return Err(PortalError::NotFound);
    }
    Ok((keys, apis))
}

/// Build the report for `scope`, filtered by `query`, at the clock's now. A fixed number of
/// queries (seven) whatever the number of apps, keys and subscriptions.
async fn report(
    state: &PortalState,
    account_id: i64,
    scope: Scope<'_>,
    query: &UsageQuery,
    form_action: String,
    csv_path: &str,
) -> PortalResult<UsageReport> {
    let now = state.clock.now();
    let (key_choice, api_choice) = (parse_choice(&query.key)?, parse_choice(&query.api)?);
    let ((keys, subs), all_apis) =
        tokio::try_join!(inventory(state, account_id, &scope), async { Ok::<_, PortalError>(state.store.list_apis().await?) })?;
    let (keys, apis) = filter_options(keys, &all_apis, &subs, key_choice, api_choice)?;
    let app_id = match scope {
        Scope::Account => None,
        Scope::App(app) => Some(app.id),
    };
    let filter = UsageFilter { account_id, app_id, key_id: key_choice, api_id: api_choice };
    let scoped_subs: Vec<_> = subs.iter().filter(|(_, s)| api_choice.is_none_or(|a| s.api_id == a)).collect();
    let period = report_period(&scope, &scoped_subs, api_choice, now);

    let hour_to = hour_start(now) + HOUR;
    let hour_from = hour_to - HOURS_SHOWN * HOUR;
    let by_operation = AnalyticsFilter {
        from: period.start,
        to: period.end,
        api_id: api_choice,
        app_id,
        key_id: key_choice,
        account_id: Some(account_id),
        operation: None,
    };
    // The last hours from the hourly buckets, the period's days from the daily rollup, the
    // quotas and the operations: four independent reads, run at once.
    let (hours, days, quotas, operations) = tokio::try_join!(
        async { Ok::<_, PortalError>(state.store.calls_by_hour(&filter, hour_from, hour_to).await?) },
        async { Ok(state.store.usage_by_day(&filter, period.start, period.end).await?) },
        quotas(state, &scoped_subs, &all_apis, now),
        async { Ok(state.store.analytics(&by_operation, Grouping::Operation).await?) },
    )?;
    // The hourly chart and table show calls and errors only (carried as admitted and 4xx).
    let hours: Vec<HourUsage> = hours
        .into_iter()
        .map(|h| HourUsage { hour: h.hour, counts: UsageCounts { admitted: h.calls, status_4xx: h.errors, ..UsageCounts::default() } })
        .collect();
    let (hourly_bars, hourly) = series(&hours, hour_from, HOUR, HOURS_SHOWN, hour_label);
    let (daily_bars, daily) = series(&days, period.start, DAY, (period.end - period.start + DAY - 1) / DAY, day_label);
    let mut totals = UsageCounts::default();
    for d in &days {
        totals.add(&d.counts);
    }
    let period_label = format!("{} – {}", datetime(period.start), datetime(period.end));
    Ok(UsageReport {
        csv_href: csv_href(csv_path, key_choice, api_choice),
        form_action,
        show_totals: matches!(scope, Scope::App(_)),
        keys,
        apis,
        calls: count(totals.admitted),
        errors: count(totals.errors()),
        error_rate: percent(totals.errors(), totals.admitted),
        latency: totals.mean_latency_ms().map_or_else(|| "—".to_owned(), |ms| format!("{} ms", count(ms))),
        hourly_svg: charts::bars(
            "chart-hourly",
            "Calls and errors per hour, last 48 hours",
            "Bar chart of calls (blue) and errors (red) for each of the last 48 hours, UTC. The table below lists the same numbers.",
            &hourly_bars,
            6,
        ),
        hourly,
        daily_svg: charts::bars(
            "chart-daily",
            "Calls and errors per day, this period",
            &format!("Bar chart of calls (blue) and errors (red) for each day of the period {period_label}. The table below lists the same numbers."),
            &daily_bars,
            if daily_bars.len() > 16 { 3 } else { 1 },
        ),
        daily,
        period_label,
        quotas,
        operations: operations.iter().map(|l| crate::analytics::LineView::of(l, None)).collect(),
    })
}

/// The CSV link, keeping the report's filters.
fn csv_href(csv_path: &str, key_choice: Option<i64>, api_choice: Option<i64>) -> String {
    let qs: Vec<String> = [key_choice.map(|k| format!("key={k}")), api_choice.map(|a| format!("api={a}"))].into_iter().flatten().collect();
    if qs.is_empty() {
        csv_path.to_owned()
    } else {
        format!("{csv_path}?{}", qs.join("&"))
    }
}

/// The account-wide report for the dashboard.
pub(crate) async fn account_report(state: &PortalState, account_id: i64, query: &UsageQuery) -> PortalResult<UsageReport> {
    report(state, account_id, Scope::Account, query, "/dashboard".to_owned(), "/dashboard/usage.csv").await
}

/// `GET /apps/{id}/usage`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "usage.html")]
pub struct UsagePage {
    chrome: Chrome,
    app: App,
    usage: UsageReport,
}

/// `GET /apps/{id}/usage`: one app's usage.
pub async fn app_usage(
    State(state): State<PortalState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<UsageQuery>,
) -> PortalResult<UsagePage> {
    let app = owned_app(&state, &ctx, &id).await?;
    let usage =
        report(&state, app.account_id, Scope::App(&app), &query, format!("/apps/{}/usage", app.id), &format!("/apps/{}/usage.csv", app.id))
            .await?;
    Ok(UsagePage { chrome: ctx.chrome().await?, app, usage })
}

/// `GET /apps/{id}/usage.csv`.
pub async fn app_usage_csv(
    State(state): State<PortalState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<UsageQuery>,
) -> PortalResult<Response> {
    let app = owned_app(&state, &ctx, &id).await?;
    csv_export(&state, app.account_id, Some(app.id), &query, &format!("usage-app-{}", app.id)).await
}

/// `GET /dashboard/usage.csv`: every app of the account.
pub async fn account_usage_csv(State(state): State<PortalState>, ctx: Ctx, Query(query): Query<UsageQuery>) -> PortalResult<Response> {
    let account_id = ctx.require_account()?.id;
    csv_export(&state, account_id, None, &query, "usage").await
}

/// The CSV header line.
pub const CSV_HEADER: &str = "hour_utc,hour_unix,app_id,key_id,key_name,key_prefix,api,calls,status_2xx,status_3xx,status_4xx,status_5xx,errors,bytes_in,bytes_out,latency_ms_sum";

/// The hourly rows (key × API × hour, summed over sources) of the report's range: this period
/// and the last 48 hours.
async fn csv_export(state: &PortalState, account_id: i64, app_id: Option<i64>, query: &UsageQuery, name: &str) -> PortalResult<Response> {
    let now = state.clock.now();
    let key_id = parse_choice(&query.key)?;
    let api_id = parse_choice(&query.api)?;
    let filter = UsageFilter { account_id, app_id, key_id, api_id };
    let to = hour_start(now) + HOUR;
    let from = (to - HOURS_SHOWN * HOUR).min(month_start(now));
    let lines = state.store.usage_hourly_lines(&filter, from, to).await?;
    let rows = lines.into_iter().map(|l| {
        let c = &l.counts;
        let hour = time::OffsetDateTime::from_unix_timestamp(l.hour)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        csv::Row::new()
            .value(hour)
            .value(l.hour)
            .value(l.app_id)
            .value(l.key_id)
            .text(&l.key_name)
            .text(&l.key_prefix)
            .text(&l.api_slug)
            .value(c.admitted)
            .value(c.status_2xx)
            .value(c.status_3xx)
            .value(c.status_4xx)
            .value(c.status_5xx)
            .value(c.errors())
            .value(c.bytes_in)
            .value(c.bytes_out)
            .value(c.latency_ms_sum)
    });
    Ok(csv::download(&format!("turnpike-{name}.csv"), CSV_HEADER, rows))
}

/// Usage routes (merged by the dashboard's).
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new()
        .route("/apps/{id}/usage", get(app_usage))
        .route("/apps/{id}/usage.csv", get(app_usage_csv))
        .route("/dashboard/usage.csv", get(account_usage_csv))
}
