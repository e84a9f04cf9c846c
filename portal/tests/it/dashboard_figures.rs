//! The dashboard reads whole days from the daily rollup; every figure it shows must still be the
//! sum of the hourly buckets (what billing invoices), computed here straight from `usage_hourly`.

use std::collections::HashMap;

use turnpike_store::clock::hour_start;
use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{UsageRow, Visibility};

use crate::helpers::{element_text, seed_api, TestApp, NOW};

const DAY: i64 = 86_400;

/// A query over `usage_hourly` whose rows are three BIGINTs, on either database.
async fn hourly(app: &TestApp, sql: &str) -> Vec<(i64, i64, i64)> {
    if app.store.backend() == turnpike_store::Backend::Sqlite {
        let pool = sqlx::SqlitePool::connect(&app.db_url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

fn number(text: &str) -> i64 {
    text.trim().replace(',', "").parse().unwrap_or_else(|_| panic!("a number: {text:?}"))
}

/// The `(calls, errors)` cells of each row of the table `id`.
fn table_rows(html: &str, id: &str) -> Vec<(i64, i64)> {
    let start = html.find(&format!(r#"id="{id}""#)).expect("table");
    let table = &html[start..start + html[start..].find("</table>").expect("end of table")];
    table
        .split("<tr><th scope=\"row\">")
        .skip(1)
        .map(|row| {
            let cells: Vec<&str> = row.split("<td class=\"num\">").skip(1).map(|c| &c[..c.find('<').unwrap()]).collect();
            (number(cells[0]), number(cells[1]))
        })
        .collect()
}

/// Two apps on two APIs, 60 days of hourly usage from two counter sources (one flushed twice),
/// subscriptions anchored at 20:00 so each quota period starts and ends mid-day.
async fn seed_usage(app: &TestApp) {
    let s = &app.store;
    let apis = [seed_api(s, "one", "One", Visibility::Public).await.0, seed_api(s, "two", "Two", Visibility::Public).await.0];
    assert_eq!(apis.len(), 2);
    let account = s.find_account_by_email(&Email::parse("ada@example.com").unwrap()).await.unwrap().unwrap().0;
    let since = NOW - 60 * DAY;
    let mut rows = Vec::new();
    for i in 0..2 {
        let a = s.create_app(account.id, &format!("app {i}"), since).await.unwrap();
        s.subscribe_defaults(a.id, NOW - 40 * DAY).await.unwrap();
        let key = s.create_key(a.id, "main", &ApiKey::generate(), since).await.unwrap();
        for sub in s.list_subscriptions(a.id).await.unwrap() {
            for h in (hour_start(since)..=hour_start(NOW)).step_by(3600) {
                let admitted = (h / 3600 + sub.id * 3 + i) % 11;
                let e5 = admitted % 3;
                rows.push(UsageRow {
                    key_id: key.id,
                    api_id: sub.api_id,
                    subscription_id: sub.id,
                    hour: h,
                    admitted,
                    status_2xx: admitted - e5,
                    status_5xx: e5,
                    latency_ms_sum: admitted * 20,
                    ..Default::default()
                });
            }
        }
    }
    s.upsert_usage("gw1", &rows, NOW).await.unwrap();
    s.upsert_usage("gw1", &rows, NOW).await.unwrap();
    let other: Vec<UsageRow> =
        rows.iter().step_by(5).map(|r| UsageRow { admitted: 1, status_2xx: 1, status_5xx: 0, ..r.clone() }).collect();
    s.upsert_usage("gw2", &other, NOW).await.unwrap();
}

#[tokio::test]
async fn dashboard_figures_equal_the_sum_of_the_hourly_buckets() {
    for app in crate::helpers::each("dashboard_figures").await {
        let dev = app.developer("ada@example.com").await;
        seed_usage(&app).await;
        let html = app.get(&dev, "/dashboard").await.text().await.unwrap();
        let month = turnpike_portal::format::month_start(NOW);

        // Calls this month, and per app.
        let total = hourly(
            &app,
            &format!("SELECT CAST(SUM(admitted) AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT) FROM usage_hourly WHERE hour >= {month}"),
        )
        .await;
        assert!(total[0].0 > 1000);
        assert_eq!(element_text(&html, "calls-this-month").map(|t| number(&t)), Some(total[0].0));
        let per_app = hourly(
            &app,
            &format!(
                "SELECT CAST(k.app_id AS BIGINT), CAST(SUM(u.admitted) AS BIGINT), CAST(SUM(u.status_4xx + u.status_5xx) AS BIGINT)
                 FROM usage_hourly u JOIN api_keys k ON k.id = u.key_id WHERE u.hour >= {month} GROUP BY k.app_id ORDER BY k.app_id"
            ),
        )
        .await;
        for (app_id, calls, errors) in per_app {
            let row = &html[html.find(&format!(r#"<a href="/apps/{app_id}">"#)).expect("app row")..];
            let cells: Vec<i64> = row
                .split("data-label=\"Calls\">")
                .nth(1)
                .into_iter()
                .chain(row.split("data-label=\"Errors\">").nth(1))
                .map(|c| number(&c[..c.find('<').unwrap()]))
                .collect();
            assert_eq!(cells, vec![calls, errors], "app {app_id}");
        }

        // The daily table: every day of the month, from its hourly buckets.
        let days = hourly(
            &app,
            &format!(
                "SELECT CAST(hour - hour % {DAY} AS BIGINT), CAST(SUM(admitted) AS BIGINT), CAST(SUM(status_4xx + status_5xx) AS BIGINT)
                 FROM usage_hourly WHERE hour >= {month} GROUP BY hour - hour % {DAY} ORDER BY 1"
            ),
        )
        .await;
        let by_day: HashMap<i64, (i64, i64)> = days.into_iter().map(|(d, c, e)| (d, (c, e))).collect();
        let table = table_rows(&html, "usage-daily");
        assert!(table.len() >= 28, "a row per day of the month");
        for (i, row) in table.iter().enumerate() {
            let day = month + i64::try_from(i).unwrap() * DAY;
            assert_eq!(*row, by_day.get(&day).copied().unwrap_or((0, 0)), "day {i}");
        }

        // Each quota: the subscription's own period, which starts and ends at 20:00.
        let subs = app
            .store
            .account_subscriptions(app.store.find_account_by_email(&Email::parse("ada@example.com").unwrap()).await.unwrap().unwrap().0.id)
            .await
            .unwrap();
        let mut used = Vec::new();
        for sub in &subs {
            let p = turnpike_store::period::monthly_period(sub.billing_anchor, NOW);
            assert_ne!(p.start % DAY, 0, "the period starts mid-day");
            let n = hourly(&app, &format!("SELECT CAST(COALESCE(SUM(admitted), 0) AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT) FROM usage_hourly WHERE subscription_id = {} AND hour >= {} AND hour < {}", sub.id, p.start, p.end)).await;
            used.push(n[0].0);
        }
        let shown: Vec<i64> = html.split("<span class=\"quota-used\">").skip(1).map(|c| number(&c[..c.find('<').unwrap()])).collect();
        used.sort_unstable();
        let mut shown_sorted = shown.clone();
        shown_sorted.sort_unstable();
        assert_eq!(shown_sorted, used, "quota figures {shown:?}");
    }
}
