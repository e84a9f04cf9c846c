//! The owners' analytics page and its CSV show exactly what SQL over the stored analytics rows
//! says (counts summed over sources and hours; p99 from the bucket counts summed in SQL), at
//! every drill-down level; developers see the per-operation breakdown of their own keys only.

use std::collections::BTreeMap;

use turnpike_store::clock::hour_start;
use turnpike_store::domain::ApiKey;
use turnpike_store::histogram::{bucket_of, bucket_value};
use turnpike_store::{AnalyticsRow, Role, Traffic, Visibility};

use crate::helpers::{element_text, seed_api, unescape, TestApp, NOW};

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Rows of a query whose columns are a text and BIGINTs, on either database.
async fn sql(app: &TestApp, q: &str) -> Vec<(String, i64, i64, i64)> {
    if app.store.backend() == turnpike_store::Backend::Sqlite {
        let pool = sqlx::SqlitePool::connect(&app.db_url).await.unwrap();
        let rows = sqlx::query_as(q).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
        let rows = sqlx::query_as(q).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

fn number(text: &str) -> i64 {
    text.trim().replace(',', "").parse().unwrap_or_else(|_| panic!("a number: {text:?}"))
}

/// `label → (requests, 4xx, 5xx)` of the analytics table `id`.
fn table(html: &str, id: &str) -> BTreeMap<String, (i64, i64, i64)> {
    let start = html.find(&format!(r#"id="{id}""#)).unwrap_or_else(|| panic!("table {id}"));
    let body = &html[start..start + html[start..].find("</table>").expect("end of table")];
    let cell = |row: &str, label: &str| {
        let at = row.find(&format!(r#"data-label="{label}">"#)).expect("cell") + label.len() + 14;
        number(&row[at..at + row[at..].find('<').unwrap()])
    };
    body.split("<tr>")
        .skip(2)
        .map(|row| {
            let th = &row[row.find("<th scope=\"row\">").expect("row head") + 16..];
            let th = th.strip_prefix("<a href=\"").map_or(th, |t| &t[t.find('>').unwrap() + 1..]);
            let name = unescape(&th[..th.find('<').unwrap()]);
            (name, (cell(row, "Requests"), cell(row, "4xx"), cell(row, "5xx")))
        })
        .collect()
}

/// 40 days of hourly analytics rows from two sources for two APIs × three operations × two
/// consumers (fixed seed); returns `(api ids, account ids)`.
async fn seed(app: &TestApp) -> (Vec<i64>, Vec<i64>) {
    let s = &app.store;
    let apis = vec![seed_api(s, "pets", "Pets", Visibility::Public).await.0, seed_api(s, "maps", "Maps", Visibility::Public).await.0];
    let (mut accounts, mut keys) = (Vec::new(), Vec::new());
    for who in ["ana", "bo"] {
        let (_, account) = app.login_new(&format!("{who}@example.com"), Role::Developer).await;
        let a = s.create_app(account, &format!("{who}-app"), NOW).await.unwrap();
        s.subscribe_defaults(a.id, NOW).await.unwrap();
        keys.push(s.create_key(a.id, "k", &ApiKey::generate(), NOW).await.unwrap().id);
        accounts.push(account);
    }
    let ops = ["GET /pets/{id}", "GET /pets/mine", "unmatched"];
    let mut x: u64 = 0x18_0a11;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n) as i64
    };
    let mut rows = Vec::new();
    for h in 0..40 * 24 {
        let hour = hour_start(NOW) - h * HOUR;
        for (i, op) in ops.iter().enumerate() {
            if next(3) == 0 {
                continue;
            }
            let (s4, s5, ok) = (next(4), next(3), next(50));
            let mut latency = BTreeMap::new();
            for _ in 0..ok + s4 + s5 {
                *latency.entry(bucket_of(200 + (next(20_000) as u64) * (i as u64 + 1))).or_insert(0i64) += 1;
            }
            rows.push(AnalyticsRow {
                key_id: keys[h as usize % 2],
                api_id: apis[i % 2],
                operation: (*op).to_owned(),
                hour,
                traffic: Traffic { requests: ok + s4 + s5, status_2xx: ok, status_4xx: s4, status_5xx: s5, ..Default::default() },
                latency: latency.into_iter().map(|(b, c)| (b as i32, c)).collect(),
            });
        }
    }
    let (a, b) = rows.split_at(rows.len() / 3);
    s.upsert_analytics("gw-a", a, NOW).await.unwrap();
    s.upsert_analytics("gw-b", b, NOW).await.unwrap();
    s.upsert_analytics("gw-b", b, NOW).await.unwrap();
    (apis, accounts)
}

#[tokio::test]
async fn the_analytics_page_shows_what_sql_over_the_stored_rows_says() {
    for app in crate::helpers::each("analytics_page_figures").await {
        let (apis, accounts) = seed(&app).await;
        let (admin, _) = app.login_new("owner@example.com", Role::Admin).await;
        let to = hour_start(NOW) + HOUR;
        let from = to - 7 * DAY;
        let range = format!("hour >= {from} AND hour < {to}");

        let html = app.get(&admin, "/admin/analytics?range=7d").await.text().await.unwrap();
        let total = sql(&app, &format!("SELECT 'all', CAST(SUM(requests) AS BIGINT), CAST(SUM(status_4xx) AS BIGINT), CAST(SUM(status_5xx) AS BIGINT) FROM analytics_hourly WHERE {range}")).await;
        assert_eq!(number(&element_text(&html, "analytics-requests").unwrap()), total[0].1);
        assert_eq!(number(&element_text(&html, "analytics-4xx").unwrap()), total[0].2);
        assert_eq!(number(&element_text(&html, "analytics-5xx").unwrap()), total[0].3);
        // p99 from the bucket counts summed in SQL, ranked here.
        let buckets = sql(&app, &format!("SELECT 'b', CAST(bucket AS BIGINT), CAST(SUM(count) AS BIGINT), CAST(0 AS BIGINT) FROM analytics_latency_hourly WHERE {range} GROUP BY bucket ORDER BY bucket")).await;
        let n: i64 = buckets.iter().map(|b| b.2).sum();
        let rank = (n * 990 + 999) / 1000;
        let mut seen = 0;
        let p99 = buckets.iter().find(|b| {
            seen += b.2;
            seen >= rank
        });
        let p99_us = bucket_value(p99.unwrap().1 as usize);
        assert_eq!(element_text(&html, "analytics-p99").unwrap(), turnpike_portal::format::latency(Some(p99_us)));

        let per_api = |q: &str| {
            format!("SELECT {q}, CAST(SUM(t.requests) AS BIGINT), CAST(SUM(t.status_4xx) AS BIGINT), CAST(SUM(t.status_5xx) AS BIGINT) FROM analytics_hourly t")
        };
        let want: BTreeMap<String, (i64, i64, i64)> =
            sql(&app, &format!("{} JOIN apis a ON a.id = t.api_id WHERE {range} GROUP BY a.name", per_api("a.name")))
                .await
                .into_iter()
                .map(|r| (r.0, (r.1, r.2, r.3)))
                .collect();
        assert_eq!(table(&html, "analytics-lines"), want);

        // Drill down: an API's operations, then an operation's consumers.
        let html = app.get(&admin, &format!("/admin/analytics?range=7d&api={}", apis[0])).await.text().await.unwrap();
        let want: BTreeMap<String, (i64, i64, i64)> =
            sql(&app, &format!("{} WHERE {range} AND t.api_id = {} GROUP BY t.operation", per_api("t.operation"), apis[0]))
                .await
                .into_iter()
                .map(|r| (r.0, (r.1, r.2, r.3)))
                .collect();
        assert_eq!(table(&html, "analytics-lines"), want);
        let op = "GET /pets/{id}";
        let html =
            app.get(&admin, &format!("/admin/analytics?range=7d&api={}&op=GET+%2Fpets%2F%7Bid%7D", apis[0])).await.text().await.unwrap();
        let want: BTreeMap<String, (i64, i64, i64)> = sql(
            &app,
            &format!(
                "{} JOIN api_keys k ON k.id = t.key_id JOIN apps p ON p.id = k.app_id WHERE {range} AND t.api_id = {} AND t.operation = '{op}' GROUP BY p.name",
                per_api("p.name"),
                apis[0]
            ),
        )
        .await
        .into_iter()
        .map(|r| (r.0, (r.1, r.2, r.3)))
        .collect();
        assert_eq!(want.len(), 2);
        assert_eq!(table(&html, "analytics-lines"), want);

        // The CSV of a level has the same lines.
        let csv = app.get(&admin, &format!("/admin/analytics.csv?range=7d&api={}", apis[0])).await.text().await.unwrap();
        let ops = sql(&app, &format!("{} WHERE {range} AND t.api_id = {} GROUP BY t.operation", per_api("t.operation"), apis[0])).await;
        assert_eq!(csv.lines().count(), ops.len() + 1);
        for (op, requests, _, _) in &ops {
            assert!(csv.lines().any(|l| l.contains(&format!(",{op},Pets,{requests},"))), "{op} {requests} in {csv}");
        }

        // The admin API's usage report of a selection: the same totals and lines, and the same CSV.
        let json: serde_json::Value = app.get(&admin, "/api/v1/admin/reports/usage?range=7d").await.json().await.unwrap();
        assert_eq!((json["total"]["requests"].as_i64(), json["total"]["status_5xx"].as_i64()), (Some(total[0].1), Some(total[0].3)));
        assert_eq!(json["total"]["p99_us"].as_u64(), Some(p99_us));
        let path = format!("/api/v1/admin/reports/usage?range=7d&api={}", apis[0]);
        let json: serde_json::Value = app.get(&admin, &path).await.json().await.unwrap();
        assert_eq!(json["grouping"], "operation");
        let lines: BTreeMap<String, (i64, i64, i64)> = json["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let n = |k: &str| l[k].as_i64().unwrap();
                (l["label"].as_str().unwrap().to_owned(), (n("requests"), n("status_4xx"), n("status_5xx")))
            })
            .collect();
        assert_eq!(lines, ops.iter().map(|r| (r.0.clone(), (r.1, r.2, r.3))).collect());
        let api_csv = app.get(&admin, &format!("{path}&format=csv")).await.text().await.unwrap();
        assert_eq!(api_csv, csv);

        // Each developer sees the operations of their own keys, within what their keys made.
        for (who, account) in ["ana", "bo"].into_iter().zip(&accounts) {
            let dev = app.login(&format!("{who}@example.com")).await;
            let html = app.get(&dev, "/dashboard").await.text().await.unwrap();
            let shown: i64 = table(&html, "usage-operations").values().map(|v| v.0).sum();
            let mine = sql(
                &app,
                &format!(
                    "SELECT 'x', CAST(COALESCE(SUM(t.requests), 0) AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT) FROM analytics_hourly t JOIN api_keys k ON k.id = t.key_id
                     JOIN apps p ON p.id = k.app_id WHERE p.account_id = {account}"
                ),
            )
            .await;
            assert!(shown > 0 && shown <= mine[0].1, "{who}: {shown} of {}", mine[0].1);
        }
    }
}
