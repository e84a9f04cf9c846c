//! The admin API's audit filters and report queries: each filter narrows to exactly the entries
//! it names, and a report query that cannot be read is a problem naming the parameter (the
//! figures themselves are compared with SQL and the console in `analytics.rs` and `exports.rs`).

use reqwest::StatusCode;
use serde_json::Value;
use turnpike_store::Role;

use crate::helpers::{each, NOW};

#[tokio::test]
async fn the_audit_log_filters_by_target_action_actor_and_time() {
    for app in each("admin_audit_filters").await {
        let (admin, admin_id) = app.login_new("owner@example.com", Role::Admin).await;
        let entries = [
            (Some(admin_id), "api.update", "api:1", NOW - 100),
            (None, "api.update", "api:12", NOW - 50),
            (Some(admin_id), "plan.create", "plan:3", NOW - 50),
            (Some(admin_id), "plan.price", "plan:3", NOW),
        ];
        for (actor, action, target, at) in entries {
            app.store.audit(actor, action, target, "", at).await.unwrap();
        }
        let found = |q: String| {
            let (app, admin) = (&app, &admin);
            async move {
                let res = app.get(admin, &format!("/api/v1/admin/audit?{q}")).await;
                assert_eq!(res.status(), StatusCode::OK, "{q}");
                let page: Value = res.json().await.unwrap();
                let mut got: Vec<(String, String)> = page["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["action"] != "login")
                    .map(|e| (e["action"].as_str().unwrap().to_owned(), e["target"].as_str().unwrap().to_owned()))
                    .collect();
                got.sort();
                got
            }
        };
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, t)| ((*a).to_owned(), (*t).to_owned())).collect::<Vec<_>>();
        // An exact target: `api:1` is not a prefix of `api:12`.
        assert_eq!(found("target=api:1".to_owned()).await, pairs(&[("api.update", "api:1")]));
        assert_eq!(found("target=plan:3".to_owned()).await, pairs(&[("plan.create", "plan:3"), ("plan.price", "plan:3")]));
        // A time window: `since` inclusive, `until` exclusive.
        assert_eq!(found(format!("since={}&until={}", NOW - 50, NOW)).await, pairs(&[("api.update", "api:12"), ("plan.create", "plan:3")]));
        assert_eq!(found(format!("until={}", NOW - 50)).await, pairs(&[("api.update", "api:1")]));
        // Filters combine.
        assert_eq!(found(format!("action=api.&actor_id={admin_id}")).await, pairs(&[("api.update", "api:1")]));
        // A time that is not a number is a problem, not an empty page.
        let res = app.get(&admin, "/api/v1/admin/audit?since=yesterday").await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn a_report_query_that_cannot_be_read_names_its_parameter() {
    for app in each("admin_report_queries").await {
        let (admin, _) = app.login_new("owner@example.com", Role::Admin).await;
        let cases = [
            ("/api/v1/admin/reports/usage?range=1y", StatusCode::UNPROCESSABLE_ENTITY, Some("range")),
            ("/api/v1/admin/reports/usage?range=custom", StatusCode::UNPROCESSABLE_ENTITY, Some("from")),
            ("/api/v1/admin/reports/usage?range=custom&from=2026-05-10&to=2026-05-01", StatusCode::UNPROCESSABLE_ENTITY, Some("from")),
            ("/api/v1/admin/reports/usage?range=custom&from=2026-05-01&to=2027-12-01", StatusCode::UNPROCESSABLE_ENTITY, Some("from")),
            ("/api/v1/admin/reports/usage?range=custom&from=May&to=2026-05-01", StatusCode::UNPROCESSABLE_ENTITY, Some("from")),
            ("/api/v1/admin/reports/usage?api=pets", StatusCode::BAD_REQUEST, None),
            ("/api/v1/admin/reports/usage?format=xml", StatusCode::BAD_REQUEST, None),
            ("/api/v1/admin/reports/revenue?format=pdf", StatusCode::BAD_REQUEST, None),
        ];
        for (path, status, field) in cases {
            let res = app.get(&admin, path).await;
            assert_eq!(res.status(), status, "{path}");
            assert_eq!(res.headers()["content-type"], "application/problem+json", "{path}");
            let problem: Value = res.json().await.unwrap();
            if let Some(field) = field {
                assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
            }
        }
        // A readable custom range, and the defaults, answer.
        for path in ["/api/v1/admin/reports/usage?range=custom&from=2026-05-01&to=2026-05-31", "/api/v1/admin/reports/usage"] {
            let res = app.get(&admin, path).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            let report: Value = res.json().await.unwrap();
            assert_eq!(report["grouping"], "api", "{path}");
            assert_eq!(report["total"]["requests"], 0, "{path}");
        }
    }
}
