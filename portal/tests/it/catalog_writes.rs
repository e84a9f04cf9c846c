//! The admin API's catalog writes: an `admin:write` token publishes an API, reads it back,
//! changes it (whole and in part), uploads its document, adds and changes a plan and sets a price
//! version, each through the console's own service functions (audited). A field that fails its
//! rule is a 422 naming it and changes nothing; a taken slug or route is a 409; `admin:read`
//! tokens and developers are refused (see also `admin_api`, which walks every documented route).

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use turnpike_store::{AuditFilter, PersonalToken, Role, Scopes, Visibility};

use crate::helpers::{each, seed_api, TestApp, NOW};

async fn token(app: &TestApp, account_id: i64, scopes: &[&str]) -> String {
    app.store.mark_email_verified(account_id, NOW).await.unwrap();
    let t = PersonalToken::generate();
    app.store.create_pat(account_id, "t", &t, &Scopes::parse(scopes.iter().copied()).unwrap(), None, None, NOW).await.unwrap();
    t.expose().to_owned()
}

async fn send(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = Client::new().request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn audit_count(app: &TestApp) -> usize {
    app.store.search_audit(&AuditFilter::default(), 0, 1000).await.unwrap().rows.len()
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"].as_array().map(|e| e.iter().map(|f| f["field"].as_str().unwrap_or("").to_owned()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn an_admin_token_publishes_and_changes_apis_plans_and_prices() {
    for app in each("catalog_writes").await {
        let (_, admin_id) = app.login_new("owner@example.com", Role::Admin).await;
        let w = token(&app, admin_id, &["admin:write", "admin:read"]).await;
        let api = json!({
            "slug": "payments", "name": "Payments", "route_prefix": "/payments/v1",
            "targets": [{"url": "http://127.0.0.1:9101", "weight": 3}, {"url": "https://pay.example.com/base/"}],
            "visibility": "public", "lifecycle": "beta"
        });
        let (s, created) = send(&app, Method::POST, "/api/v1/admin/apis", &w, Some(api.clone())).await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let id = created["id"].as_i64().unwrap();
        assert_eq!(created["lifecycle"], "beta");
        // Read back: what was stored is what the console's rules made of it (trailing / trimmed).
        let (s, got) = send(&app, Method::GET, &format!("/api/v1/admin/apis/{id}"), &w, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            got["targets"],
            json!([{"url": "http://127.0.0.1:9101", "weight": 3}, {"url": "https://pay.example.com/base", "weight": 1}])
        );
        assert_eq!((got["visibility"].as_str(), got["routed"].as_bool()), (Some("public"), Some(true)));

        // Taken slug and taken route: 409, nothing stored.
        let (s, p) = send(&app, Method::POST, "/api/v1/admin/apis", &w, Some(api.clone())).await;
        assert_eq!((s, p["type"].as_str()), (StatusCode::CONFLICT, Some("urn:turnpike:problem:conflict")), "{p}");
        let mut other = api.clone();
        other["slug"] = json!("payments-two");
        let (s, p) = send(&app, Method::POST, "/api/v1/admin/apis", &w, Some(other)).await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert!(p["detail"].as_str().unwrap().contains("route prefix"), "{p}");
        assert_eq!(app.store.list_apis().await.unwrap().len(), 1);

        // A bad field: 422 naming each field, nothing changed (not even an audit row).
        let audits = audit_count(&app).await;
        let bad = json!({"route_prefix": "payments/", "host": "http://x", "targets": [{"url": "ftp://x"}], "visibility": "everyone"});
        let (s, p) = send(&app, Method::PATCH, &format!("/api/v1/admin/apis/{id}"), &w, Some(bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        assert_eq!(fields(&p), ["route_prefix", "host", "targets", "visibility"]);
        assert_eq!(audit_count(&app).await, audits);
        assert_eq!(app.store.get_api(id).await.unwrap().route_prefix, "/payments/v1");
        // A misspelt field is refused, not ignored; so are prefixes the gateway could never match
        // and ports that do not exist.
        for bad in
            [json!({"routePrefix": "/zzz"}), json!({"route_prefix": "/a/../b"}), json!({"targets": [{"url": "http://127.0.0.1:99999"}]})]
        {
            let (s, p) = send(&app, Method::PATCH, &format!("/api/v1/admin/apis/{id}"), &w, Some(bad.clone())).await;
            assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST, "{bad}: {s} {p}");
            assert_eq!(p["type"].as_str().map(|t| t.starts_with("urn:turnpike:problem:")), Some(true), "{bad}: {p}");
        }
        assert_eq!(audit_count(&app).await, audits);
        let stored = app.store.get_api(id).await.unwrap();
        assert_eq!((stored.route_prefix.as_str(), stored.upstreams.len()), ("/payments/v1", 2));
        // A draft is never reported as routed, whatever its targets.
        let draft = json!({"slug": "drafty", "name": "Drafty", "route_prefix": "/drafty", "targets": [{"url": "http://127.0.0.1:9101"}]});
        let (s, d) = send(&app, Method::POST, "/api/v1/admin/apis", &w, Some(draft)).await;
        assert_eq!((s, d["visibility"].as_str(), d["routed"].as_bool()), (StatusCode::CREATED, Some("draft"), Some(false)), "{d}");
        assert!(d["not_routed_reason"].as_str().is_some_and(|r| r.contains("draft")), "{d}");

        // PATCH changes only what it names; PUT replaces every setting.
        let (s, p) = send(&app, Method::PATCH, &format!("/api/v1/admin/apis/{id}"), &w, Some(json!({"name": "Pay"}))).await;
        assert_eq!((s, p["name"].as_str(), p["route_prefix"].as_str()), (StatusCode::OK, Some("Pay"), Some("/payments/v1")));
        let mut replaced = api.clone();
        replaced["route_prefix"] = json!("/pay");
        replaced["targets"] = json!([{"url": "http://127.0.0.1:9103"}]);
        let (s, p) = send(&app, Method::PUT, &format!("/api/v1/admin/apis/{id}"), &w, Some(replaced)).await;
        assert_eq!((s, p["route_prefix"].as_str(), p["lifecycle"].as_str()), (StatusCode::OK, Some("/pay"), Some("beta")), "{p}");
        assert_eq!(p["targets"].as_array().unwrap().len(), 1);

        // The document: YAML accepted with the console's import rules; a bad one is a 422.
        let yaml = "openapi: 3.0.3\ninfo: {title: Pay, version: '2'}\npaths:\n  /charges:\n    get:\n      responses: {'200': {description: ok}}\n";
        let res = Client::new()
            .put(app.url(&format!("/api/v1/admin/apis/{id}/openapi")))
            .bearer_auth(&w)
            .header("content-type", "application/yaml")
            .body(yaml)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let doc: Value = serde_json::from_str(&app.store.api_document(id).await.unwrap().unwrap()).unwrap();
        assert_eq!(doc["info"]["title"], "Pay");
        let res = Client::new()
            .put(app.url(&format!("/api/v1/admin/apis/{id}/openapi")))
            .bearer_auth(&w)
            .header("content-type", "application/json")
            .body(r#"{"openapi": "2.0", "info": {}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let p: Value = res.json().await.unwrap();
        assert!(fields(&p).iter().all(|f| f == "openapi") && !fields(&p).is_empty(), "{p}");
        assert_eq!(serde_json::from_str::<Value>(&app.store.api_document(id).await.unwrap().unwrap()).unwrap(), doc);

        // A plan: created, listed, changed; bad limits name their fields.
        let plan = json!({"slug": "pro", "name": "Pro", "rate_per_second": 10, "burst": 20, "monthly_quota": 1000, "is_default": true});
        let (s, p) = send(&app, Method::POST, &format!("/api/v1/admin/apis/{id}/plans"), &w, Some(plan.clone())).await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let plan_id = p["id"].as_i64().unwrap();
        let (s, p) = send(&app, Method::POST, &format!("/api/v1/admin/apis/{id}/plans"), &w, Some(plan)).await;
        assert_eq!(s, StatusCode::CONFLICT, "{p}");
        let bad = json!({"slug": "Bad Slug", "name": "", "rate_per_second": 0, "burst": 20, "fail_open_seconds": 100000});
        let (s, p) = send(&app, Method::POST, &format!("/api/v1/admin/apis/{id}/plans"), &w, Some(bad)).await;
        assert_eq!(
            (s, fields(&p)),
            (StatusCode::UNPROCESSABLE_ENTITY, vec!["name".into(), "slug".into(), "rate_per_second".into(), "fail_open_seconds".into()])
        );
        let (s, p) = send(
            &app,
            Method::PATCH,
            &format!("/api/v1/admin/plans/{plan_id}"),
            &w,
            Some(json!({"burst": 50, "monthly_quota": null, "fail_open_seconds": 30})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert_eq!(
            (p["burst"].as_i64(), p["monthly_quota"].is_null(), p["fail_open_seconds"].as_i64(), p["rate_per_second"].as_i64()),
            (Some(50), true, Some(30), Some(10))
        );
        let (s, list) = send(&app, Method::GET, &format!("/api/v1/admin/apis/{id}/plans"), &w, None).await;
        assert_eq!((s, list.as_array().unwrap().len()), (StatusCode::OK, 1));

        // Prices: versions are appended; a price that makes no sense names its field.
        let price = json!({"currency": "usd", "pricing": {"model": "flat", "amount": 4900}, "trial_days": 7});
        let (s, p) = send(&app, Method::POST, &format!("/api/v1/admin/plans/{plan_id}/prices"), &w, Some(price)).await;
        assert_eq!((s, p["version"].as_i64()), (StatusCode::CREATED, Some(1)), "{p}");
        let price =
            json!({"currency": "usd", "pricing": {"model": "quota", "base_fee": 1000, "included": 5000, "overage": {"kind": "hard_cap"}}});
        let (s, p) = send(&app, Method::POST, &format!("/api/v1/admin/plans/{plan_id}/prices"), &w, Some(price)).await;
        assert_eq!((s, p["version"].as_i64()), (StatusCode::CREATED, Some(2)), "{p}");
        assert_eq!(app.store.get_plan(plan_id).await.unwrap().monthly_quota, Some(5000), "a hard-capped quota is the gateway's quota");
        // …and stays it: the limit cannot drift from what the price charges for.
        for quota in [json!(7), Value::Null] {
            let patch = json!({ "monthly_quota": quota });
            let (s, p) = send(&app, Method::PATCH, &format!("/api/v1/admin/plans/{plan_id}"), &w, Some(patch)).await;
            assert_eq!((s, fields(&p)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["monthly_quota".to_owned()]), "{p}");
        }
        assert_eq!(app.store.get_plan(plan_id).await.unwrap().monthly_quota, Some(5000));
        for (bad, field) in [
            (json!({"currency": "usd", "pricing": {"model": "flat", "amount": 1}, "trial_days": 400}), "trial_days"),
            (json!({"currency": "dollars", "pricing": {"model": "free"}}), "currency"),
            (json!({"currency": "usd", "pricing": {"model": "barter"}}), "pricing"),
            (json!({"currency": "usd", "pricing": {"model": "free"}, "billable": "some"}), "billable"),
        ] {
            let (s, p) = send(&app, Method::POST, &format!("/api/v1/admin/plans/{plan_id}/prices"), &w, Some(bad)).await;
            assert_eq!((s, fields(&p)), (StatusCode::UNPROCESSABLE_ENTITY, vec![field.to_owned()]), "{p}");
        }
        let (s, versions) = send(&app, Method::GET, &format!("/api/v1/admin/plans/{plan_id}/prices"), &w, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(versions.as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect::<Vec<_>>(), vec![2, 1]);

        // Every write was audited with the token's account.
        let rows = app.store.search_audit(&AuditFilter { actor_id: Some(admin_id), ..AuditFilter::default() }, 0, 100).await.unwrap().rows;
        let mut actions: Vec<&str> = rows.iter().map(|r| r.entry.action.as_str()).filter(|a| *a != "login").collect();
        actions.sort_unstable();
        assert_eq!(
            actions,
            [
                "api.create",
                "api.create",
                "api.update",
                "api.update",
                "api.update",
                "plan.create",
                "plan.price",
                "plan.price",
                "plan.update"
            ]
        );
    }
}

#[tokio::test]
async fn read_only_tokens_and_developers_cannot_write_the_catalog() {
    for app in each("catalog_writes_refused").await {
        let (api_id, plan_id) = seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let (_, admin_id) = app.login_new("owner@example.com", Role::Admin).await;
        let reader = token(&app, admin_id, &["admin:read"]).await;
        let (_, dev_id) = app.login_new("dev@example.com", Role::Developer).await;
        let dev = token(&app, dev_id, &["developer"]).await;
        let body = json!({"slug": "x", "name": "X", "route_prefix": "/x", "targets": [{"url": "http://127.0.0.1:1"}]});
        let audits = audit_count(&app).await;
        for (t, code) in [(&reader, "insufficient-scope"), (&dev, "admin-only")] {
            for (m, path) in [
                (Method::POST, "/api/v1/admin/apis".to_owned()),
                (Method::PATCH, format!("/api/v1/admin/apis/{api_id}")),
                (Method::POST, format!("/api/v1/admin/apis/{api_id}/plans")),
                (Method::PATCH, format!("/api/v1/admin/plans/{plan_id}")),
                (Method::POST, format!("/api/v1/admin/plans/{plan_id}/prices")),
            ] {
                let (s, p) = send(&app, m.clone(), &path, t, Some(body.clone())).await;
                assert_eq!(
                    (s, p["type"].as_str()),
                    (StatusCode::FORBIDDEN, Some(format!("urn:turnpike:problem:{code}").as_str())),
                    "{m} {path}"
                );
            }
        }
        assert_eq!(app.store.list_apis().await.unwrap().len(), 1);
        assert_eq!(audit_count(&app).await, audits);
    }
}

/// utoipa names a component by its Rust type name, and a later type of the same name silently
/// replaces the earlier one: the admin API's plan must not replace the catalog's `PlanOut`.
#[test]
fn the_admin_schemas_do_not_replace_the_catalogs() {
    let doc: Value = serde_json::from_str(&turnpike_portal::api::openapi_json()).unwrap();
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["PlanOut"]["properties"]["currency"].is_object(), "the catalog's plan: {}", schemas["PlanOut"]);
    assert!(schemas["AdminPlanOut"]["properties"]["fail_open_seconds"].is_object());
    assert!(schemas["ApiOut"]["properties"]["base_url"].is_object(), "the catalog's API: {}", schemas["ApiOut"]);
}
