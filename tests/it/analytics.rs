//! Owners' analytics through the real gateway: calls to an API with an imported OpenAPI document
//! (templated and overlapping paths) are attributed to the right operation, in both counter
//! modes, and the billable usage rows are exactly what they are for the same calls to an API
//! without a document.

use std::collections::BTreeMap;

use turnpike_store::{AnalyticsFilter, Grouping, NewApi, Upstream, Visibility};
use turnpike_testkit::TestDb;

use crate::{system_clock, CounterBackend, TestApp};

/// A slice of GitHub's document: templates, a literal beside a template, nested templates.
pub(crate) const GITHUB_LIKE: &str = r#"{"openapi":"3.0.3","info":{"title":"GH","version":"1"},"paths":{
  "/users/{username}":{"get":{}},
  "/users/me":{"get":{}},
  "/users/{username}/repos":{"get":{}},
  "/repos/{owner}/{repo}":{"get":{},"delete":{},"parameters":[]},
  "/repos/{owner}/{repo}/issues/{issue_number}":{"get":{},"patch":{}}
}}"#;

/// `(method, path, count, operation)`: the calls and where each must be attributed.
pub(crate) const CALLS: &[(&str, &str, usize, &str)] = &[
    ("GET", "/users/me", 3, "GET /users/me"),
    ("GET", "/users/octocat", 2, "GET /users/{username}"),
    // `me` has no `repos` child: the template's branch answers.
    ("GET", "/users/me/repos", 1, "GET /users/{username}/repos"),
    ("GET", "/repos/rust-lang/rust", 4, "GET /repos/{owner}/{repo}"),
    ("DELETE", "/repos/a/b", 1, "DELETE /repos/{owner}/{repo}"),
    ("PATCH", "/repos/a/b/issues/12", 2, "PATCH /repos/{owner}/{repo}/issues/{issue_number}"),
    ("GET", "/repos/a/b/issues/12/", 1, "GET /repos/{owner}/{repo}/issues/{issue_number}"),
    ("GET", "/nothing/here", 2, "unmatched"),
    ("POST", "/users/me", 1, "unmatched"),
];

/// Publish `slug` in front of `upstream`, with `doc` as its document and a generous default plan.
pub(crate) async fn publish_with_doc(app: &TestApp, slug: &str, upstream: &str, doc: Option<&str>) -> i64 {
    let now = app.clock.now();
    let api = app
        .store
        .create_api(
            &NewApi {
                slug: slug.into(),
                name: slug.to_uppercase(),
                description: String::new(),
                route_prefix: format!("/{slug}"),
                host: None,
                upstreams: vec![Upstream { url: upstream.into(), weight: 1 }],
                openapi: doc.map(str::to_owned),
                visibility: Visibility::Public,
            },
            now,
        )
        .await
        .unwrap();
    app.store.create_plan(api.id, &turnpike_testkit::default_plan("free", 100_000, 100_000, None), now).await.unwrap();
    app.gateway.follow().await.unwrap();
    api.id
}

/// Send every call of [`CALLS`] under `/{slug}`.
pub(crate) async fn send_calls(app: &TestApp, slug: &str, key: &str) {
    for (method, path, n, _) in CALLS {
        for _ in 0..*n {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let r = app.http.request(m, app.gw(&format!("/{slug}{path}"))).bearer_auth(key).send().await.unwrap();
            assert_eq!(r.status(), 200, "{method} {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_attributed_to_their_operation_and_billing_is_unchanged() {
    for counters in CounterBackend::each("calls_are_attributed_to_their_operation").await {
        println!("counters: {}", counters.name());
        let db = TestDb::sqlite().await;
        let app = TestApp::start(&db, &counters, system_clock()).await;
        let echo = app.store.get_api_by_slug("echo").await.unwrap().upstreams[0].url.clone();
        let gh = publish_with_doc(&app, "gh", &echo, Some(GITHUB_LIKE)).await;
        let plain = publish_with_doc(&app, "plain", &echo, None).await;
        let (key, key_id, _) = app.developer_key("attr@example.com").await;
        send_calls(&app, "gh", key.expose()).await;
        send_calls(&app, "plain", key.expose()).await;
        app.gateway.flush().await.unwrap();

        let now = app.clock.now();
        let window = |api| AnalyticsFilter { from: now - 86_400, to: now + 3_600, api_id: Some(api), ..Default::default() };
        let got: BTreeMap<String, i64> = app
            .store
            .analytics(&window(gh), Grouping::Operation)
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.label, l.traffic.requests))
            .collect();
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        for (_, _, n, op) in CALLS {
            *want.entry((*op).to_owned()).or_default() += *n as i64;
        }
        assert_eq!(got, want, "{}", counters.name());
        // Without a document every call is "unmatched".
        let plain_ops = app.store.analytics(&window(plain), Grouping::Operation).await.unwrap();
        assert_eq!(plain_ops.len(), 1);
        assert_eq!((plain_ops[0].label.as_str(), plain_ops[0].traffic.requests), ("unmatched", want.values().sum::<i64>()));
        assert!(plain_ops[0].latency.p99.is_some());

        // Billing: the same calls give the same usage rows with and without attribution, and
        // the billable total is the number of calls sent.
        let calls: i64 = CALLS.iter().map(|c| c.2 as i64).sum();
        assert_eq!(app.store.key_usage_total(key_id).await.unwrap().admitted, 2 * calls);
        let rows = billable_rows(&db.url, key_id).await;
        assert_eq!(rows.len(), 2, "one usage row per API: {rows:?}");
        let by_api: BTreeMap<i64, (i64, i64)> = rows.into_iter().map(|(api, admitted, ok)| (api, (admitted, ok))).collect();
        assert_eq!(by_api[&gh], by_api[&plain]);
        assert_eq!(by_api[&gh], (calls, calls));
        app.stop().await;
    }
}

/// `(api_id, admitted, status_2xx)` of a key's usage rows, straight from `usage_hourly`.
async fn billable_rows(url: &str, key_id: i64) -> Vec<(i64, i64, i64)> {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let rows = sqlx::query_as(
        "SELECT api_id, CAST(SUM(admitted) AS BIGINT), CAST(SUM(status_2xx) AS BIGINT) FROM usage_hourly WHERE key_id = $1 GROUP BY api_id",
    )
    .bind(key_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}
