//! Owners' analytics (issue 18): requests, status classes and latency histograms per key × API ×
//! OpenAPI operation × hour, written by each gateway as its own counter source (absolute values,
//! greatest wins, as `usage_hourly`), rolled up by day in the same transaction, and read back
//! for any range and grouping with p50/p95/p99 from the merged histograms
//! ([`crate::histogram`]). Never read for billing: `usage_hourly` stays the billable truth.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::db::{in_tx, on_pool};
use crate::histogram::{Histogram, Percentiles};
use crate::{Store, StoreError};

const DAY: i64 = 86_400;

/// Bind a [`Query`]'s parameters in order.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for b in &$binds {
            query = match b {
                Bind::Int(v) => query.bind(*v),
                Bind::Text(s) => query.bind(s.as_str()),
            };
        }
        query
    }};
}

/// The operation of a call that matched none of its API's document (or an API without one).
pub const UNMATCHED: &str = "unmatched";

/// Absolute values for one key × API × operation × hour from one counter source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalyticsRow {
    /// Key id.
    pub key_id: i64,
    /// API id.
    pub api_id: i64,
    /// `METHOD /path/{template}` or [`UNMATCHED`].
    pub operation: String,
    /// Start of the hour (unix seconds).
    pub hour: i64,
    /// Requests, their status classes and summed latency (µs).
    pub traffic: Traffic,
    /// The non-empty latency histogram buckets: `(bucket, count)`.
    pub latency: Vec<(i32, i64)>,
}

/// Request counts by status class and summed latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Traffic {
    /// Requests answered.
    pub requests: i64,
    /// Responses 1xx–2xx.
    pub status_2xx: i64,
    /// Responses 3xx.
    pub status_3xx: i64,
    /// Responses 4xx.
    pub status_4xx: i64,
    /// Responses 5xx.
    pub status_5xx: i64,
    /// Sum of latencies, microseconds.
    pub latency_us_sum: i64,
}

impl Traffic {
    /// Add another range's counts.
    pub fn add(&mut self, o: &Traffic) {
        self.requests += o.requests;
        self.status_2xx += o.status_2xx;
        self.status_3xx += o.status_3xx;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
        self.latency_us_sum += o.latency_us_sum;
    }

    /// 4xx + 5xx.
    pub fn errors(&self) -> i64 {
        self.status_4xx + self.status_5xx
    }
}

/// What the lines of a report stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// One line for everything in the filter.
    Total,
    /// One line per API (`id` = API id, `label` = name, `context` = slug).
    Api,
    /// One line per API × operation (`id` = API id, `label` = operation, `context` = API name).
    Operation,
    /// One line per consumer app (`id` = app id, `label` = app name, `context` = owner's email).
    Consumer,
}

/// Which calls a report covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalyticsFilter {
    /// Start, unix seconds (inclusive).
    pub from: i64,
    /// End, unix seconds (exclusive).
    pub to: i64,
    /// Only this API.
    pub api_id: Option<i64>,
    /// Only this operation.
    pub operation: Option<String>,
    /// Only this consumer app's keys.
    pub app_id: Option<i64>,
    /// Only this key.
    pub key_id: Option<i64>,
    /// Only the keys of this account's apps (a developer's own view).
    pub account_id: Option<i64>,
}

/// One line of a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AnalyticsLine {
    /// See [`Grouping`].
    pub id: i64,
    /// See [`Grouping`].
    pub label: String,
    /// See [`Grouping`].
    pub context: String,
    /// Counts.
    pub traffic: Traffic,
    /// p50/p95/p99 of latency (µs) from the merged histograms.
    pub latency: Percentiles,
}

/// Requests and errors in one slot of a time series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TrafficSlot {
    /// Slot start, unix seconds.
    pub at: i64,
    /// Counts in the slot.
    pub traffic: Traffic,
}

const UPSERT_HOURLY: &str = "INSERT INTO analytics_hourly (api_id, hour, operation, key_id, source, requests, status_2xx,
        status_3xx, status_4xx, status_5xx, latency_us_sum, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (api_id, hour, operation, key_id, source) DO UPDATE SET
        requests = CASE WHEN excluded.requests > analytics_hourly.requests THEN excluded.requests ELSE analytics_hourly.requests END,
        status_2xx = CASE WHEN excluded.status_2xx > analytics_hourly.status_2xx THEN excluded.status_2xx ELSE analytics_hourly.status_2xx END,
        status_3xx = CASE WHEN excluded.status_3xx > analytics_hourly.status_3xx THEN excluded.status_3xx ELSE analytics_hourly.status_3xx END,
        status_4xx = CASE WHEN excluded.status_4xx > analytics_hourly.status_4xx THEN excluded.status_4xx ELSE analytics_hourly.status_4xx END,
        status_5xx = CASE WHEN excluded.status_5xx > analytics_hourly.status_5xx THEN excluded.status_5xx ELSE analytics_hourly.status_5xx END,
        latency_us_sum = CASE WHEN excluded.latency_us_sum > analytics_hourly.latency_us_sum
            THEN excluded.latency_us_sum ELSE analytics_hourly.latency_us_sum END,
        updated_at = excluded.updated_at";

/// Recompute one API × operation × key × UTC day of `analytics_daily` from its hourly rows.
const ROLL_UP_DAY: &str = "INSERT INTO analytics_daily (api_id, day, operation, key_id, requests, status_2xx, status_3xx,
        status_4xx, status_5xx, latency_us_sum)
     SELECT api_id, $2, operation, key_id, CAST(SUM(requests) AS BIGINT), CAST(SUM(status_2xx) AS BIGINT),
        CAST(SUM(status_3xx) AS BIGINT), CAST(SUM(status_4xx) AS BIGINT), CAST(SUM(status_5xx) AS BIGINT),
        CAST(SUM(latency_us_sum) AS BIGINT)
     FROM analytics_hourly WHERE api_id = $1 AND hour >= $2 AND hour < $3 AND operation = $4 AND key_id = $5
     GROUP BY api_id, operation, key_id
     ON CONFLICT (api_id, day, operation, key_id) DO UPDATE SET requests = excluded.requests,
        status_2xx = excluded.status_2xx, status_3xx = excluded.status_3xx, status_4xx = excluded.status_4xx,
        status_5xx = excluded.status_5xx, latency_us_sum = excluded.latency_us_sum";

/// The same for the day's latency buckets.
const ROLL_UP_LATENCY_DAY: &str = "INSERT INTO analytics_latency_daily (api_id, day, operation, key_id, bucket, count)
     SELECT api_id, $2, operation, key_id, bucket, CAST(SUM(count) AS BIGINT)
     FROM analytics_latency_hourly WHERE api_id = $1 AND hour >= $2 AND hour < $3 AND operation = $4 AND key_id = $5
     GROUP BY api_id, operation, key_id, bucket
     ON CONFLICT (api_id, day, operation, key_id, bucket) DO UPDATE SET count = excluded.count";

/// Recompute one API × hour × operation of `analytics_ops_hourly` (no consumer) from the rows of
/// every key and source (`$1` API, `$2` hour, `$3` operation).
const ROLL_UP_OPS_HOUR: &str = "INSERT INTO analytics_ops_hourly (api_id, hour, operation, requests, status_2xx, status_3xx,
        status_4xx, status_5xx, latency_us_sum)
     SELECT api_id, hour, operation, CAST(SUM(requests) AS BIGINT), CAST(SUM(status_2xx) AS BIGINT), CAST(SUM(status_3xx) AS BIGINT),
        CAST(SUM(status_4xx) AS BIGINT), CAST(SUM(status_5xx) AS BIGINT), CAST(SUM(latency_us_sum) AS BIGINT)
     FROM analytics_hourly WHERE api_id = $1 AND hour = $2 AND operation = $3 GROUP BY api_id, hour, operation
     ON CONFLICT (api_id, hour, operation) DO UPDATE SET requests = excluded.requests, status_2xx = excluded.status_2xx,
        status_3xx = excluded.status_3xx, status_4xx = excluded.status_4xx, status_5xx = excluded.status_5xx,
        latency_us_sum = excluded.latency_us_sum";

const ROLL_UP_OPS_LATENCY_HOUR: &str = "INSERT INTO analytics_ops_latency_hourly (api_id, hour, operation, bucket, count)
     SELECT api_id, hour, operation, bucket, CAST(SUM(count) AS BIGINT)
     FROM analytics_latency_hourly WHERE api_id = $1 AND hour = $2 AND operation = $3 GROUP BY api_id, hour, operation, bucket
     ON CONFLICT (api_id, hour, operation, bucket) DO UPDATE SET count = excluded.count";

/// One API × UTC day × operation of `analytics_ops_daily` from its hours (`$1` API, `$2` day,
/// `$3` next day, `$4` operation).
const ROLL_UP_OPS_DAY: &str = "INSERT INTO analytics_ops_daily (api_id, day, operation, requests, status_2xx, status_3xx,
        status_4xx, status_5xx, latency_us_sum)
     SELECT api_id, $2, operation, CAST(SUM(requests) AS BIGINT), CAST(SUM(status_2xx) AS BIGINT), CAST(SUM(status_3xx) AS BIGINT),
        CAST(SUM(status_4xx) AS BIGINT), CAST(SUM(status_5xx) AS BIGINT), CAST(SUM(latency_us_sum) AS BIGINT)
     FROM analytics_ops_hourly WHERE api_id = $1 AND hour >= $2 AND hour < $3 AND operation = $4 GROUP BY api_id, operation
     ON CONFLICT (api_id, day, operation) DO UPDATE SET requests = excluded.requests, status_2xx = excluded.status_2xx,
        status_3xx = excluded.status_3xx, status_4xx = excluded.status_4xx, status_5xx = excluded.status_5xx,
        latency_us_sum = excluded.latency_us_sum";

const ROLL_UP_OPS_LATENCY_DAY: &str = "INSERT INTO analytics_ops_latency_daily (api_id, day, operation, bucket, count)
     SELECT api_id, $2, operation, bucket, CAST(SUM(count) AS BIGINT)
     FROM analytics_ops_latency_hourly WHERE api_id = $1 AND hour >= $2 AND hour < $3 AND operation = $4 GROUP BY api_id, operation, bucket
     ON CONFLICT (api_id, day, operation, bucket) DO UPDATE SET count = excluded.count";

/// The latency buckets of one hourly row: `$1`–`$5` name the row, then `(bucket, count)` pairs.
fn upsert_latency_sql(buckets: usize) -> String {
    let values: Vec<String> = (0..buckets).map(|i| format!("($1, $2, $3, $4, $5, ${}, ${})", 6 + 2 * i, 7 + 2 * i)).collect();
    format!(
        "INSERT INTO analytics_latency_hourly (api_id, hour, operation, key_id, source, bucket, count) VALUES {}
         ON CONFLICT (api_id, hour, operation, key_id, source, bucket) DO UPDATE SET
            count = CASE WHEN excluded.count > analytics_latency_hourly.count THEN excluded.count ELSE analytics_latency_hourly.count END",
        values.join(", ")
    )
}

impl Store {
    /// Write absolute analytics values for `source`. Idempotent like [`Store::upsert_usage`]:
    /// the same rows twice, or an older snapshot after a newer one, leave the newest values. The
    /// daily rollup of every day touched is recomputed in the same transaction.
    pub async fn upsert_analytics(&self, source: &str, rows: &[AnalyticsRow], now: i64) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let days: BTreeSet<(i64, i64, &str, i64)> =
            rows.iter().map(|r| (r.api_id, r.hour - r.hour.rem_euclid(DAY), r.operation.as_str(), r.key_id)).collect();
        let hours: BTreeSet<(i64, i64, &str)> = rows.iter().map(|r| (r.api_id, r.hour, r.operation.as_str())).collect();
        let op_days: BTreeSet<(i64, i64, &str)> = days.iter().map(|(api, day, op, _)| (*api, *day, *op)).collect();
        in_tx!(self, tx => {
            for r in rows {
                let t = &r.traffic;
                sqlx::query(UPSERT_HOURLY)
                    .bind(r.api_id).bind(r.hour).bind(&r.operation).bind(r.key_id).bind(source)
                    .bind(t.requests).bind(t.status_2xx).bind(t.status_3xx).bind(t.status_4xx).bind(t.status_5xx)
                    .bind(t.latency_us_sum).bind(now)
                    .execute(&mut *tx).await?;
                // At most 272 buckets: 549 parameters, well under either backend's limit.
                if !r.latency.is_empty() {
                    let sql = upsert_latency_sql(r.latency.len());
                    let mut q = sqlx::query(&sql).bind(r.api_id).bind(r.hour).bind(&r.operation).bind(r.key_id).bind(source);
                    for (bucket, count) in &r.latency {
                        q = q.bind(*bucket).bind(*count);
                    }
                    q.execute(&mut *tx).await?;
                }
            }
            for (api_id, day, operation, key_id) in &days {
                for sql in [ROLL_UP_DAY, ROLL_UP_LATENCY_DAY] {
                    sqlx::query(sql).bind(api_id).bind(day).bind(day + DAY).bind(operation).bind(key_id).execute(&mut *tx).await?;
                }
            }
            for (api_id, hour, operation) in &hours {
                for sql in [ROLL_UP_OPS_HOUR, ROLL_UP_OPS_LATENCY_HOUR] {
                    sqlx::query(sql).bind(api_id).bind(hour).bind(operation).execute(&mut *tx).await?;
                }
            }
            for (api_id, day, operation) in &op_days {
                for sql in [ROLL_UP_OPS_DAY, ROLL_UP_OPS_LATENCY_DAY] {
                    sqlx::query(sql).bind(api_id).bind(day).bind(day + DAY).bind(operation).execute(&mut *tx).await?;
                }
            }
        });
        Ok(())
    }

    /// One line per group over the filter's range, busiest first, with percentiles from the
    /// merged histograms. Whole UTC days are read from the daily rollup, the partial days at the
    /// edges from the hourly rows.
    pub async fn analytics(&self, filter: &AnalyticsFilter, grouping: Grouping) -> Result<Vec<AnalyticsLine>, StoreError> {
        let mut lines: BTreeMap<(i64, String), AnalyticsLine> = BTreeMap::new();
        let mut histograms: BTreeMap<(i64, String), Histogram> = BTreeMap::new();
        for (grain, ranges) in grains(filter.from, filter.to) {
            let q = Query::new(filter, grouping, grain, &ranges);
            let traffic: Vec<TrafficRow> = on_pool!(self, p => {
                bind_all!(sqlx::query_as(&q.traffic), q.binds).fetch_all(p).await?
            });
            for (id, label, context, requests, status_2xx, status_3xx, status_4xx, status_5xx, latency_us_sum) in traffic {
                let line = lines.entry((id, label.clone())).or_insert_with(|| AnalyticsLine { id, label, context, ..Default::default() });
                line.traffic.add(&Traffic { requests, status_2xx, status_3xx, status_4xx, status_5xx, latency_us_sum });
            }
            let buckets: Vec<(i64, String, i32, i64)> = on_pool!(self, p => {
                bind_all!(sqlx::query_as(&q.latency), q.binds).fetch_all(p).await?
            });
            for (id, label, bucket, count) in buckets {
                histograms
                    .entry((id, label))
                    .or_default()
                    .add(usize::try_from(bucket).unwrap_or(usize::MAX), u64::try_from(count).unwrap_or(0));
            }
        }
        let mut out: Vec<AnalyticsLine> = lines
            .into_iter()
            .filter(|(_, l)| l.traffic.requests > 0)
            .map(|(k, mut l)| {
                l.latency = histograms.get(&k).map(Histogram::percentiles).unwrap_or_default();
                l
            })
            .collect();
        out.sort_by(|a, b| b.traffic.requests.cmp(&a.traffic.requests).then_with(|| a.label.cmp(&b.label)));
        Ok(out)
    }

    /// The totals of the filter (one line, zero when nothing was called).
    pub async fn analytics_total(&self, filter: &AnalyticsFilter) -> Result<AnalyticsLine, StoreError> {
        Ok(self.analytics(filter, Grouping::Total).await?.pop().unwrap_or_default())
    }

    /// Requests and errors per `step` seconds from `filter.from` (hourly rows; every slot of the
    /// range present, empty ones zero).
    pub async fn analytics_series(&self, filter: &AnalyticsFilter, step: i64) -> Result<Vec<TrafficSlot>, StoreError> {
        let step = step.max(3600);
        let q = Query::new(filter, Grouping::Total, Grain::Hourly, &[(filter.from, filter.to)]);
        let sql = format!(
            "SELECT CAST($1 + ((t.hour - $1) / {step}) * {step} AS BIGINT), {sums} FROM {table}hourly t WHERE {cond} GROUP BY 1",
            sums = SUMS,
            table = q.table,
            cond = q.condition
        );
        let rows: Vec<(i64, i64, i64, i64, i64, i64, i64)> = on_pool!(self, p => {
            bind_all!(sqlx::query_as(&sql), q.binds).fetch_all(p).await?
        });
        let mut slots: Vec<TrafficSlot> = (0..(filter.to - filter.from + step - 1) / step)
            .map(|i| TrafficSlot { at: filter.from + i * step, traffic: Traffic::default() })
            .collect();
        for (at, requests, status_2xx, status_3xx, status_4xx, status_5xx, latency_us_sum) in rows {
            if let Some(s) = slots.get_mut(usize::try_from((at - filter.from) / step).unwrap_or(usize::MAX)) {
                s.traffic.add(&Traffic { requests, status_2xx, status_3xx, status_4xx, status_5xx, latency_us_sum });
            }
        }
        Ok(slots)
    }
}

/// A grouped line: id, label, context, then the sums of [`SUMS`].
type TrafficRow = (i64, String, String, i64, i64, i64, i64, i64, i64);

const SUMS: &str = "CAST(COALESCE(SUM(t.requests), 0) AS BIGINT), CAST(COALESCE(SUM(t.status_2xx), 0) AS BIGINT),
    CAST(COALESCE(SUM(t.status_3xx), 0) AS BIGINT), CAST(COALESCE(SUM(t.status_4xx), 0) AS BIGINT),
    CAST(COALESCE(SUM(t.status_5xx), 0) AS BIGINT), CAST(COALESCE(SUM(t.latency_us_sum), 0) AS BIGINT)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grain {
    Hourly,
    Daily,
}

/// `[from, to)` as the tables that cover it: whole UTC days from the daily rollup, the rest
/// from the hourly rows.
fn grains(from: i64, to: i64) -> Vec<(Grain, Vec<(i64, i64)>)> {
    let first_day = from + (DAY - from.rem_euclid(DAY)) % DAY;
    let last_day = to - to.rem_euclid(DAY);
    if first_day >= last_day {
        return vec![(Grain::Hourly, vec![(from, to)])];
    }
    let edges: Vec<(i64, i64)> = [(from, first_day), (last_day, to)].into_iter().filter(|(a, b)| a < b).collect();
    let mut out = vec![(Grain::Daily, vec![(first_day, last_day)])];
    if !edges.is_empty() {
        out.push((Grain::Hourly, edges));
    }
    out
}

enum Bind {
    Int(i64),
    Text(String),
}

/// The two statements of one grain of a report, with their parameters in order.
struct Query {
    /// `analytics_`, or `analytics_ops_` (no consumer dimension) when the query needs none.
    table: &'static str,
    traffic: String,
    latency: String,
    condition: String,
    binds: Vec<Bind>,
}

impl Query {
    fn new(f: &AnalyticsFilter, grouping: Grouping, grain: Grain, ranges: &[(i64, i64)]) -> Query {
        let (suffix, time) = match grain {
            Grain::Hourly => ("hourly", "t.hour"),
            Grain::Daily => ("daily", "t.day"),
        };
        let mut binds = Vec::new();
        let mut param = |b: Bind| {
            binds.push(b);
            format!("${}", binds.len())
        };
        let spans: Vec<String> =
            ranges.iter().map(|(a, b)| format!("({time} >= {} AND {time} < {})", param(Bind::Int(*a)), param(Bind::Int(*b)))).collect();
        let mut cond = vec![format!("({})", spans.join(" OR "))];
        if let Some(api) = f.api_id {
            cond.push(format!("t.api_id = {}", param(Bind::Int(api))));
        }
        if let Some(op) = &f.operation {
            cond.push(format!("t.operation = {}", param(Bind::Text(op.clone()))));
        }
        if let Some(app) = f.app_id {
            cond.push(format!("t.key_id IN (SELECT k2.id FROM api_keys k2 WHERE k2.app_id = {})", param(Bind::Int(app))));
        }
        if let Some(key) = f.key_id {
            cond.push(format!("t.key_id = {}", param(Bind::Int(key))));
        }
        if let Some(account) = f.account_id {
            cond.push(format!(
                "t.key_id IN (SELECT k2.id FROM api_keys k2 JOIN apps p2 ON p2.id = k2.app_id WHERE p2.account_id = {})",
                param(Bind::Int(account))
            ));
        }
        let condition = cond.join(" AND ");
        let by_consumer = grouping == Grouping::Consumer || f.app_id.is_some() || f.account_id.is_some() || f.key_id.is_some();
        let table = if by_consumer { "analytics_" } else { "analytics_ops_" };
        let (id, label, context, joins) = match grouping {
            Grouping::Total => ("CAST(0 AS BIGINT)", "CAST('' AS TEXT)", "CAST('' AS TEXT)", ""),
            Grouping::Api => ("t.api_id", "a.name", "a.slug", "JOIN apis a ON a.id = t.api_id"),
            Grouping::Operation => ("t.api_id", "t.operation", "a.name", "JOIN apis a ON a.id = t.api_id"),
            Grouping::Consumer => (
                "p.id",
                "p.name",
                "c.email",
                "JOIN api_keys k ON k.id = t.key_id JOIN apps p ON p.id = k.app_id JOIN accounts c ON c.id = p.account_id",
            ),
        };
        let group_by = if grouping == Grouping::Total { String::new() } else { format!("GROUP BY {id}, {label}, {context}") };
        let traffic = format!("SELECT {id}, {label}, {context}, {SUMS} FROM {table}{suffix} t {joins} WHERE {condition} {group_by}");
        let latency_group =
            if grouping == Grouping::Total { "GROUP BY t.bucket".to_owned() } else { format!("GROUP BY {id}, {label}, t.bucket") };
        let latency = format!(
            "SELECT {id}, {label}, t.bucket, CAST(SUM(t.count) AS BIGINT) FROM {table}latency_{suffix} t {joins}
             WHERE {condition} {latency_group}"
        );
        Query { table, traffic, latency, condition, binds }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_whole_days_and_hourly_edges() {
        assert_eq!(grains(3600, 7200), vec![(Grain::Hourly, vec![(3600, 7200)])]);
        assert_eq!(grains(DAY, 3 * DAY), vec![(Grain::Daily, vec![(DAY, 3 * DAY)])]);
        assert_eq!(
            grains(DAY - 3600, 3 * DAY + 7200),
            vec![(Grain::Daily, vec![(DAY, 3 * DAY)]), (Grain::Hourly, vec![(DAY - 3600, DAY), (3 * DAY, 3 * DAY + 7200)])]
        );
        // Less than a whole day inside: all hourly.
        assert_eq!(grains(DAY + 3600, 2 * DAY + 3600), vec![(Grain::Hourly, vec![(DAY + 3600, 2 * DAY + 3600)])]);
    }
}
