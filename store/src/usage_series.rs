//! Usage as the developer's dashboard shows it: `usage_hourly` summed over counter sources (one
//! row per key × API × hour × source), so every figure is the one billing invoices.

use std::collections::HashMap;

use serde::Serialize;

use crate::db::on_pool;
use crate::{Store, StoreError};

/// Which usage to read. Always scoped to one account, so nobody reads another's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageFilter {
    /// Owner of the keys (required).
    pub account_id: i64,
    /// Only this app's keys.
    pub app_id: Option<i64>,
    /// Only this key.
    pub key_id: Option<i64>,
    /// Only this API.
    pub api_id: Option<i64>,
}

/// Counters summed over sources (and over keys and APIs, unless the row names them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UsageCounts {
    /// Requests admitted (the billable count).
    pub admitted: i64,
    /// Responses 2xx.
    pub status_2xx: i64,
    /// Responses 3xx.
    pub status_3xx: i64,
    /// Responses 4xx.
    pub status_4xx: i64,
    /// Responses 5xx.
    pub status_5xx: i64,
    /// Request body bytes.
    pub bytes_in: i64,
    /// Response body bytes.
    pub bytes_out: i64,
    /// Sum of latencies, milliseconds.
    pub latency_ms_sum: i64,
}

impl UsageCounts {
    /// 4xx + 5xx.
    pub fn errors(&self) -> i64 {
        self.status_4xx + self.status_5xx
    }

    /// Responses counted (the latency sum's denominator).
    pub fn responses(&self) -> i64 {
        self.status_2xx + self.status_3xx + self.status_4xx + self.status_5xx
    }

    /// Mean latency in whole milliseconds (rounded half up), if any response was counted.
    pub fn mean_latency_ms(&self) -> Option<i64> {
        let n = self.responses();
        (n > 0).then(|| (self.latency_ms_sum + n / 2) / n)
    }

    /// Add another row's counters.
    pub fn add(&mut self, o: &UsageCounts) {
        self.admitted += o.admitted;
        self.status_2xx += o.status_2xx;
        self.status_3xx += o.status_3xx;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.latency_ms_sum += o.latency_ms_sum;
    }
}

/// One hour's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HourUsage {
    /// Start of the hour (unix seconds).
    pub hour: i64,
    /// Counters.
    pub counts: UsageCounts,
}

/// Calls and errors of one hour: what a chart draws.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct HourCalls {
    /// Start of the hour (unix seconds).
    pub hour: i64,
    /// Requests admitted.
    pub calls: i64,
    /// Responses 4xx + 5xx.
    pub errors: i64,
}

/// One key × API × hour, summed over sources: a line of the CSV export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourlyUsageLine {
    /// Start of the hour (unix seconds).
    pub hour: i64,
    /// App id.
    pub app_id: i64,
    /// Key id.
    pub key_id: i64,
    /// Key label.
    pub key_name: String,
    /// Key's safe prefix.
    pub key_prefix: String,
    /// API slug.
    pub api_slug: String,
    /// Counters.
    pub counts: UsageCounts,
}

/// The hourly buckets and their time column.
const HOURLY: (&str, &str) = ("usage_hourly", "hour");
/// The daily rollup and its time column: whole UTC days.
const DAILY: (&str, &str) = ("usage_daily", "day");

/// The shared `FROM … WHERE` of every query here over `table` in `[from, to)` (`$2`, `$3`; `$1`
/// is the account), and the values to bind in order. Only the filters that are set become
/// conditions: `($n IS NULL OR …)` makes PostgreSQL's generic plan (used from the sixth run of
/// a prepared statement) expect one row and loop over `apps` for every bucket.
fn scope((table, time): (&str, &str), f: &UsageFilter, from: i64, to: i64) -> (String, Vec<i64>) {
    let mut binds = vec![f.account_id, from, to];
    let mut sql = format!(
        "FROM {table} u JOIN api_keys k ON k.id = u.key_id JOIN apps a ON a.id = k.app_id
         WHERE a.account_id = $1 AND u.{time} >= $2 AND u.{time} < $3"
    );
    for (column, value) in [("k.app_id", f.app_id), ("u.key_id", f.key_id), ("u.api_id", f.api_id)] {
        if let Some(v) = value {
            binds.push(v);
            sql.push_str(&format!(" AND {column} = ${}", binds.len()));
        }
    }
    (sql, binds)
}

const SUMS: &str = "CAST(COALESCE(SUM(u.admitted), 0) AS BIGINT) AS admitted,
     CAST(COALESCE(SUM(u.status_2xx), 0) AS BIGINT) AS status_2xx,
     CAST(COALESCE(SUM(u.status_3xx), 0) AS BIGINT) AS status_3xx,
     CAST(COALESCE(SUM(u.status_4xx), 0) AS BIGINT) AS status_4xx,
     CAST(COALESCE(SUM(u.status_5xx), 0) AS BIGINT) AS status_5xx,
     CAST(COALESCE(SUM(u.bytes_in), 0) AS BIGINT) AS bytes_in,
     CAST(COALESCE(SUM(u.bytes_out), 0) AS BIGINT) AS bytes_out,
     CAST(COALESCE(SUM(u.latency_ms_sum), 0) AS BIGINT) AS latency_ms_sum";

const DAY: i64 = 86_400;

/// Start of the UTC day of `t`.
fn day_floor(t: i64) -> i64 {
    t - t.rem_euclid(DAY)
}

/// Start of the first UTC day starting at or after `t`.
fn day_ceil(t: i64) -> i64 {
    day_floor(t + DAY - 1)
}

/// `[from, to)` cut into the whole UTC days in it, read from the daily rollup, and the hours
/// before and after them, read from `usage_hourly`: `(head, days, tail)`, each `(from, to)`,
/// possibly empty. When no whole day fits, everything is in the head.
fn split_by_days(from: i64, to: i64) -> ((i64, i64), (i64, i64), (i64, i64)) {
    let (first, last) = (day_ceil(from), day_floor(to));
    if first >= last {
        ((from, to), (to, to), (to, to))
    } else {
        ((from, first), (first, last), (last, to))
    }
}

#[derive(sqlx::FromRow)]
struct HourRow {
    hour: i64,
    #[sqlx(flatten)]
    counts: UsageCounts,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    hour: i64,
    app_id: i64,
    key_id: i64,
    key_name: String,
    key_prefix: String,
    api_slug: String,
    #[sqlx(flatten)]
    counts: UsageCounts,
}

impl Store {
    /// Totals per hour in `[from, to)`, hours without usage left out, oldest first.
    pub async fn usage_by_hour(&self, f: &UsageFilter, from: i64, to: i64) -> Result<Vec<HourUsage>, StoreError> {
        self.grouped("u.hour", HOURLY, f, (from, to)).await
    }

    /// Calls and errors per hour in `[from, to)`, hours without usage left out, oldest first:
    /// [`Store::usage_by_hour`] reduced to what a chart draws, which SQLite reads from the
    /// `(key_id, hour, …)` index alone.
    pub async fn calls_by_hour(&self, f: &UsageFilter, from: i64, to: i64) -> Result<Vec<HourCalls>, StoreError> {
        let (scope, binds) = scope(HOURLY, f, from, to);
        let sql = format!(
            "SELECT u.hour AS hour, CAST(SUM(u.admitted) AS BIGINT) AS calls, CAST(SUM(u.status_4xx + u.status_5xx) AS BIGINT) AS errors
             {scope} GROUP BY u.hour ORDER BY u.hour"
        );
        Ok(on_pool!(self, p => {
            let mut q = sqlx::query_as(&sql);
            for v in &binds {
                q = q.bind(*v);
            }
            q.fetch_all(p).await?
        }))
    }

    /// Totals per day in `[from, to)`, days without usage left out, oldest first; each entry's
    /// `hour` is its day's start. Days are counted from `from`: UTC days when `from` is midnight
    /// UTC, read from the daily rollup (a partial last day from `usage_hourly`); otherwise from
    /// `usage_hourly`. Equal to [`Store::usage_by_hour`] summed per day.
    pub async fn usage_by_day(&self, f: &UsageFilter, from: i64, to: i64) -> Result<Vec<HourUsage>, StoreError> {
        if from.rem_euclid(DAY) == 0 {
            // A partial day (before or after the whole ones) is one slot starting at its `$2`.
            let (head, days, tail) = split_by_days(from, to);
            let mut out = self.grouped("$2", HOURLY, f, head).await?;
            out.extend(self.grouped("u.day", DAILY, f, days).await?);
            out.extend(self.grouped("$2", HOURLY, f, tail).await?);
            Ok(out)
        } else {
            // Days that straddle UTC midnight: only the hourly buckets can say.
            self.grouped(&format!("$2 + (u.hour - $2) / {DAY} * {DAY}"), HOURLY, f, (from, to)).await
        }
    }

    /// `SELECT <slot> AS hour, <sums> FROM <table> … GROUP BY 1 ORDER BY 1` over `[from, to)`.
    async fn grouped(
        &self,
        slot: &str,
        table: (&str, &str),
        f: &UsageFilter,
        (from, to): (i64, i64),
    ) -> Result<Vec<HourUsage>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let (scope, binds) = scope(table, f, from, to);
        let sql = format!("SELECT CAST({slot} AS BIGINT) AS hour, {SUMS} {scope} GROUP BY 1 ORDER BY 1");
        let rows: Vec<HourRow> = on_pool!(self, p => {
            let mut q = sqlx::query_as(&sql);
            for v in &binds {
                q = q.bind(*v);
            }
            q.fetch_all(p).await?
        });
        Ok(rows.into_iter().map(|r| HourUsage { hour: r.hour, counts: r.counts }).collect())
    }

    /// Per app of `account_id`: `(app_id, admitted, errors)` since `from` (errors: 4xx and 5xx);
    /// apps without traffic are absent. Whole days from the daily rollup.
    pub async fn account_usage_by_app(&self, account_id: i64, from: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let first_day = day_ceil(from);
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT app_id, CAST(SUM(admitted) AS BIGINT), CAST(SUM(errors) AS BIGINT) FROM (
                 SELECT k.app_id AS app_id, u.admitted AS admitted, u.status_4xx + u.status_5xx AS errors
                 FROM usage_daily u JOIN api_keys k ON k.id = u.key_id JOIN apps a ON a.id = k.app_id
                 WHERE a.account_id = $1 AND u.day >= $3
                 UNION ALL
                 SELECT k.app_id, u.admitted, u.status_4xx + u.status_5xx
                 FROM usage_hourly u JOIN api_keys k ON k.id = u.key_id JOIN apps a ON a.id = k.app_id
                 WHERE a.account_id = $1 AND u.hour >= $2 AND u.hour < $3
             ) t GROUP BY app_id")
            .bind(account_id).bind(from).bind(first_day).fetch_all(p).await?))
    }

    /// Admitted requests of each subscription in its own window: `(subscription_id, from, to)`
    /// in, `subscription_id → admitted` out (absent: none). The figure
    /// [`Store::subscription_usage`] gives for one, in one query per 500 subscriptions: whole
    /// days from the daily rollup, the hours around them from `usage_hourly`.
    pub async fn subscriptions_usage(&self, windows: &[(i64, i64, i64)]) -> Result<HashMap<i64, i64>, StoreError> {
        let mut out = HashMap::with_capacity(windows.len());
        for chunk in windows.chunks(500) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${})", (1..=7).map(|j| (7 * i + j).to_string()).collect::<Vec<_>>().join(", $")))
                .collect();
            // One indexed range read per window and part (correlated subqueries): a join
            // against the VALUES list lets PostgreSQL pick a hash join over the whole table.
            let sql = format!(
                "WITH w (sid, hfrom, hto, dfrom, dto, tfrom, tto) AS (VALUES {})
                 SELECT sid, CAST(
                     COALESCE((SELECT SUM(u.admitted) FROM usage_hourly u WHERE u.subscription_id = w.sid AND u.hour >= w.hfrom AND u.hour < w.hto), 0)
                   + COALESCE((SELECT SUM(u.admitted) FROM usage_daily u WHERE u.subscription_id = w.sid AND u.day >= w.dfrom AND u.day < w.dto), 0)
                   + COALESCE((SELECT SUM(u.admitted) FROM usage_hourly u WHERE u.subscription_id = w.sid AND u.hour >= w.tfrom AND u.hour < w.tto), 0)
                 AS BIGINT) FROM w",
                values.join(", ")
            );
            let rows: Vec<(i64, i64)> = on_pool!(self, p => {
                let mut q = sqlx::query_as(&sql);
                for &(sid, from, to) in chunk {
                    let (head, days, tail) = split_by_days(from, to.max(from));
                    q = q.bind(sid).bind(head.0).bind(head.1).bind(days.0).bind(days.1).bind(tail.0).bind(tail.1);
                }
                q.fetch_all(p).await?
            });
            out.extend(rows.into_iter().filter(|&(_, n)| n != 0));
        }
        Ok(out)
    }

    /// Totals over `[from, to)`.
    pub async fn usage_totals(&self, f: &UsageFilter, from: i64, to: i64) -> Result<UsageCounts, StoreError> {
        let (scope, binds) = scope(HOURLY, f, from, to);
        let sql = format!("SELECT {SUMS} {scope}");
        Ok(on_pool!(self, p => {
            let mut q = sqlx::query_as(&sql);
            for v in &binds {
                q = q.bind(*v);
            }
            q.fetch_one(p).await?
        }))
    }

    /// One line per key × API × hour in `[from, to)`, oldest first: the CSV export.
    pub async fn usage_hourly_lines(&self, f: &UsageFilter, from: i64, to: i64) -> Result<Vec<HourlyUsageLine>, StoreError> {
        let (scope, binds) = scope(HOURLY, f, from, to);
        let sql = format!(
            "SELECT u.hour AS hour, k.app_id AS app_id, u.key_id AS key_id, k.name AS key_name, k.display_prefix AS key_prefix,
                    s.slug AS api_slug, {SUMS}
             {scope}
             GROUP BY u.hour, k.app_id, u.key_id, k.name, k.display_prefix, s.slug
             ORDER BY u.hour, u.key_id, s.slug",
            scope = scope.replacen("JOIN apps a", "JOIN apis s ON s.id = u.api_id JOIN apps a", 1)
        );
        let rows: Vec<LineRow> = on_pool!(self, p => {
            let mut q = sqlx::query_as(&sql);
            for v in &binds {
                q = q.bind(*v);
            }
            q.fetch_all(p).await?
        });
        Ok(rows
            .into_iter()
            .map(|r| HourlyUsageLine {
                hour: r.hour,
                app_id: r.app_id,
                key_id: r.key_id,
                key_name: r.key_name,
                key_prefix: r.key_prefix,
                api_slug: r.api_slug,
                counts: r.counts,
            })
            .collect())
    }
}
