//! Analytics as the pages show them (issue 18): the range a page asks for, the owner's report of
//! a selection (one function, called by the page and its CSV export), and the rows the templates
//! print. Every figure comes from [`turnpike_store::Store::analytics`]: sums of the stored rows,
//! percentiles from the merged histograms.

use serde::Deserialize;
use turnpike_store::clock::hour_start;
use turnpike_store::{AnalyticsFilter, AnalyticsLine, Grouping, Store, StoreError, TrafficSlot};

use crate::charts::Bar;
use crate::format::{count, datetime, day_label, hour_label, latency, percent};

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// Longest custom range.
const MAX_DAYS: i64 = 400;
/// Lines in the "top consumers" tables.
pub const TOP: usize = 10;

/// `?range=24h|7d|30d|custom&from=YYYY-MM-DD&to=YYYY-MM-DD&api=&op=&app=`; empty means the default.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Selection {
    /// `24h` (default), `7d`, `30d` or `custom`.
    #[serde(default)]
    pub range: String,
    /// Custom range's first day.
    #[serde(default)]
    pub from: String,
    /// Custom range's last day (included).
    #[serde(default)]
    pub to: String,
    /// API id.
    #[serde(default)]
    pub api: String,
    /// Operation label.
    #[serde(default)]
    pub op: String,
    /// Consumer app id.
    #[serde(default)]
    pub app: String,
}

/// The time a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Start (inclusive), unix seconds.
    pub from: i64,
    /// End (exclusive).
    pub to: i64,
    /// `24h`, `7d`, `30d` or `custom`.
    pub key: &'static str,
    /// Chart slot width, seconds.
    pub step: i64,
    /// A custom range that could not be read, said plainly (the last 24 hours are shown).
    pub notice: Option<String>,
}

impl Window {
    /// The window `sel` names at `now`; ranges end with the current hour.
    pub fn of(sel: &Selection, now: i64) -> Window {
        let end = hour_start(now) + HOUR;
        let fixed = |key, days: i64| Window { from: end - days * DAY, to: end, key, step: if days > 1 { DAY } else { HOUR }, notice: None };
        match sel.range.as_str() {
            "7d" => fixed("7d", 7),
            "30d" => fixed("30d", 30),
            "custom" => match (day(&sel.from), day(&sel.to)) {
                (Some(from), Some(last)) if from <= last && last - from < MAX_DAYS * DAY => {
                    let to = last + DAY;
                    Window { from, to, key: "custom", step: if to - from > 2 * DAY { DAY } else { HOUR }, notice: None }
                }
                _ => Window {
                    notice: Some(format!("The custom range needs two dates (YYYY-MM-DD), the first not after the last, at most {MAX_DAYS} days apart; showing the last 24 hours.")),
                    ..fixed("24h", 1)
                },
            },
            _ => fixed("24h", 1),
        }
    }

    /// The window of the same length just before.
    pub fn previous(&self) -> (i64, i64) {
        (self.from - (self.to - self.from), self.from)
    }

    /// `"2026-11-23 12:00 UTC – 2026-11-24 12:00 UTC"`.
    pub fn label(&self) -> String {
        format!("{} – {}", datetime(self.from), datetime(self.to))
    }
}

/// `YYYY-MM-DD` → its midnight, unix seconds.
fn day(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), &fmt).ok().map(|d| d.midnight().assume_utc().unix_timestamp())
}

/// The selection's filter over window `w`: the API and app ids parsed, or the name of the
/// parameter that is not an id.
pub fn filter_of(sel: &Selection, w: &Window) -> Result<AnalyticsFilter, &'static str> {
    let id = |s: &str, name: &'static str| -> Result<Option<i64>, &'static str> {
        let s = s.trim();
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(|_| name)
        }
    };
    let operation = (!sel.op.is_empty()).then(|| sel.op.clone());
    Ok(AnalyticsFilter {
        from: w.from,
        to: w.to,
        api_id: id(&sel.api, "api")?,
        operation,
        app_id: id(&sel.app, "app")?,
        ..Default::default()
    })
}

/// The report's grouping as CSV and JSON name it: `api`, `operation` or `consumer`.
pub fn grouping_name(g: Grouping) -> &'static str {
    match g {
        Grouping::Api | Grouping::Total => "api",
        Grouping::Operation => "operation",
        Grouping::Consumer => "consumer",
    }
}

/// The report's lines as CSV (latencies in microseconds): the console's export and the admin
/// API's.
pub fn csv_download(report: OwnerReport) -> axum::response::Response {
    let grouping = grouping_name(report.grouping);
    let rows = report.lines.into_iter().map(move |l| {
        let t = l.traffic;
        let us = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
        crate::csv::Row::new()
            .value(grouping)
            .value(l.id)
            .text(&l.label)
            .text(&l.context)
            .value(t.requests)
            .value(t.status_2xx)
            .value(t.status_3xx)
            .value(t.status_4xx)
            .value(t.status_5xx)
            .value(us(l.latency.p50))
            .value(us(l.latency.p95))
            .value(us(l.latency.p99))
    });
    crate::csv::download(
        "turnpike-analytics.csv",
        "grouping,id,label,context,requests,status_2xx,status_3xx,status_4xx,status_5xx,p50_us,p95_us,p99_us",
        rows,
    )
}

/// Everything an owner's analytics page shows for one selection.
#[derive(Debug, Clone)]
pub struct OwnerReport {
    /// The lines' grouping: APIs, then an API's operations, then an operation's consumers.
    pub grouping: Grouping,
    /// Totals of the selection, this window and the one before.
    pub total: AnalyticsLine,
    /// The same for the window before.
    pub previous: AnalyticsLine,
    /// One line per group, busiest first.
    pub lines: Vec<AnalyticsLine>,
    /// Consumers by requests.
    pub top_consumers: Vec<AnalyticsLine>,
    /// Consumers by errors (only those with errors).
    pub top_failing: Vec<AnalyticsLine>,
    /// Requests and errors per chart slot.
    pub series: Vec<TrafficSlot>,
}

/// The owner's report of `filter` (its range included), grouped one level below what it names.
pub async fn owner_report(store: &Store, filter: &AnalyticsFilter, step: i64) -> Result<OwnerReport, StoreError> {
    let grouping = match (filter.api_id, &filter.operation, filter.app_id) {
        (_, _, Some(_)) | (Some(_), None, None) => Grouping::Operation,
        (Some(_), Some(_), None) => Grouping::Consumer,
        (None, _, None) => Grouping::Api,
    };
    let span = filter.to - filter.from;
    let before = AnalyticsFilter { from: filter.from - span, to: filter.from, ..filter.clone() };
    let consumers = store.analytics(filter, Grouping::Consumer).await?;
    let mut top_failing: Vec<AnalyticsLine> = consumers.iter().filter(|l| l.traffic.errors() > 0).cloned().collect();
    top_failing.sort_by(|a, b| b.traffic.errors().cmp(&a.traffic.errors()).then_with(|| a.label.cmp(&b.label)));
    top_failing.truncate(TOP);
    let lines = if grouping == Grouping::Consumer { consumers.clone() } else { store.analytics(filter, grouping).await? };
    Ok(OwnerReport {
        grouping,
        total: store.analytics_total(filter).await?,
        previous: store.analytics_total(&before).await?,
        lines,
        top_consumers: consumers.into_iter().take(TOP).collect(),
        top_failing,
        series: store.analytics_series(filter, step).await?,
    })
}

/// A line as the tables print it.
#[derive(Debug, Clone)]
pub struct LineView {
    /// What the line is (API name, operation, app name).
    pub label: String,
    /// Where the label links (drill-down), if anywhere.
    pub href: Option<String>,
    /// Secondary text (slug, API name, owner's email).
    pub context: String,
    /// Requests.
    pub requests: String,
    /// 2xx, 3xx, 4xx, 5xx.
    pub classes: [String; 4],
    /// Errors (4xx + 5xx) as a share of requests.
    pub error_rate: String,
    /// p50, p95, p99.
    pub p50: String,
    /// p95.
    pub p95: String,
    /// p99.
    pub p99: String,
}

impl LineView {
    /// `line` formatted, its label linking to `href`.
    pub fn of(line: &AnalyticsLine, href: Option<String>) -> LineView {
        let t = &line.traffic;
        LineView {
            label: line.label.clone(),
            href,
            context: line.context.clone(),
            requests: count(t.requests),
            classes: [t.status_2xx, t.status_3xx, t.status_4xx, t.status_5xx].map(count),
            error_rate: percent(t.errors(), t.requests),
            p50: latency(line.latency.p50),
            p95: latency(line.latency.p95),
            p99: latency(line.latency.p99),
        }
    }
}

/// `now` against `before` in words: `"+12.5% vs the period before"`, `"none in the period before"`.
pub fn change(now: i64, before: i64) -> String {
    match (now, before) {
        (0, 0) => "none in this period or the one before".to_owned(),
        (_, 0) => "none in the period before".to_owned(),
        _ if now >= before => format!("+{} vs the period before", percent(now - before, before)),
        _ => format!("−{} vs the period before", percent(before - now, before)),
    }
}

/// The series as chart bars: hour labels for hourly slots, day labels otherwise.
pub fn bars(series: &[TrafficSlot], step: i64) -> Vec<Bar> {
    series
        .iter()
        .map(|s| Bar {
            label: if step < DAY { hour_label(s.at) } else { day_label(s.at) },
            title: datetime(s.at),
            calls: s.traffic.requests,
            errors: s.traffic.errors(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let now = 1_795_435_200 + 1_234; // 2026-11-23 12:20 UTC
        let sel =
            |range: &str, from: &str, to: &str| Selection { range: range.into(), from: from.into(), to: to.into(), ..Default::default() };
        let w = Window::of(&sel("", "", ""), now);
        assert_eq!((w.to - w.from, w.to, w.step), (DAY, 1_795_435_200 + HOUR, HOUR));
        assert_eq!(w.previous(), (w.from - DAY, w.from));
        assert_eq!(Window::of(&sel("30d", "", ""), now).to - Window::of(&sel("30d", "", ""), now).from, 30 * DAY);
        let c = Window::of(&sel("custom", "2026-11-01", "2026-11-03"), now);
        assert_eq!((datetime(c.from).as_str(), c.to - c.from, c.notice.is_none()), ("2026-11-01 00:00 UTC", 3 * DAY, true));
        for (from, to) in [("2026-11-03", "2026-11-01"), ("x", "2026-11-01"), ("2020-01-01", "2026-11-01")] {
            let w = Window::of(&sel("custom", from, to), now);
            assert!(w.notice.is_some() && w.key == "24h", "{from} {to}");
        }
    }

    #[test]
    fn changes() {
        assert_eq!(change(110, 100), "+10.0% vs the period before");
        assert_eq!(change(90, 100), "−10.0% vs the period before");
        assert_eq!(change(5, 0), "none in the period before");
    }
}
