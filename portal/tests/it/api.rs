//! The JSON API under `/api/v1`: personal access tokens, session auth with the CSRF header,
//! isolation between developers, problem+json errors, ignored smuggled fields, keys that the
//! gateway's lookup accepts, usage, and the OpenAPI snapshot.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use turnpike_store::clock::hour_start;
use turnpike_store::domain::ApiKey;
use turnpike_store::{KeyStatus, PersonalToken, UsageRow, Visibility};
use turnpike_testkit::TestDb;

use crate::helpers::{browser, element_text, seed_api, spawn, TestApp, NOW};

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");

/// One running portal per backend, with its database URL for direct reads.
async fn each(test: &str) -> Vec<(TestApp, String)> {
    let mut out = Vec::new();
    for db in TestDb::each(test).await {
        println!("backend: {}", db.backend());
        let url = db.url.clone();
        out.push((spawn(db).await, url));
    }
    out
}

/// Create a token through the `/account/tokens` page of a logged-in browser; returns it.
async fn token_via_page(app: &TestApp, dev: &Client, name: &str) -> String {
    let csrf = app.csrf(dev, "/account/tokens").await;
    let res = app.post(dev, "/account/tokens", &[("csrf", &csrf), ("name", name), ("expires_in_days", "90")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    element_text(&html, "new-token").expect("the new token is shown")
}

/// A developer with a session and a token.
async fn developer(app: &TestApp, email: &str) -> (Client, String) {
    let dev = app.developer(email).await;
    let token = token_via_page(app, &dev, "script").await;
    (dev, token)
}

/// A client without cookies.
fn script() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn call(app: &TestApp, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Response {
    let mut req = script().request(method, app.url(path)).header(AUTHORIZATION, format!("Bearer {token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn get(app: &TestApp, token: &str, path: &str) -> Response {
    call(app, token, reqwest::Method::GET, path, None).await
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> Response {
    call(app, token, reqwest::Method::POST, path, Some(body)).await
}

/// Assert `res` is a problem document with `status`; returns it.
async fn problem(res: Response, status: StatusCode) -> Value {
    if res.status() != status {
        panic!("expected {status}, got {}: {}", res.status(), res.text().await.unwrap_or_default());
    }
    assert_eq!(res.headers()[CONTENT_TYPE], "application/problem+json");
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["status"], status.as_u16());
    assert!(p["type"].as_str().is_some_and(|t| t.starts_with("urn:turnpike:problem:")), "{p}");
    assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");
    p
}

async fn json_ok(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Every `token_hash` stored in `api_tokens`, read straight from the database.
async fn stored_token_rows(url: &str) -> Vec<(Vec<u8>, String, String)> {
    let sql = "SELECT token_hash, name, display_prefix FROM api_tokens ORDER BY id";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

#[tokio::test]
async fn personal_access_token_is_shown_once_works_and_stops_when_revoked() {
    for (app, url) in each("api_pat_lifecycle").await {
        let dev = app.developer("ada@example.com").await;
        let token = token_via_page(&app, &dev, "deploy").await;
        assert!(PersonalToken::parse(&token).is_some(), "{token}");

        // Shown once: the list page afterwards has only the prefix.
        let page = app.get(&dev, "/account/tokens").await.text().await.unwrap();
        assert!(page.contains(&format!("{}…", &token[..11])));
        assert!(!page.contains(&token));

        // Stored as SHA-256 only; nothing in the database or the audit log holds the token.
        let rows = stored_token_rows(&url).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, Sha256::digest(token.as_bytes()).to_vec());
        assert!(!rows[0].1.contains(&token) && !rows[0].2.contains(&token));
        let audit = app.store.recent_audit(20).await.unwrap();
        assert!(audit.iter().any(|e| e.action == "token.create"));
        assert!(audit.iter().all(|e| !e.detail.contains(&token[7..]) && !e.target.contains(&token[7..])));

        // It works, without any cookie, and records its last use.
        let me = json_ok(get(&app, &token, "/api/v1/me").await, StatusCode::OK).await;
        assert_eq!(me["email"], "ada@example.com");
        assert_eq!(me["auth"], "token");
        assert_eq!(me["role"], "developer");
        let account_id = me["id"].as_i64().unwrap();
        let record = app.store.list_pats(account_id).await.unwrap().remove(0);
        assert_eq!(record.last_used_at, Some(NOW));

        // Revoked through the page: refused from then on.
        let csrf = app.csrf(&dev, "/account/tokens").await;
        let res = app.post(&dev, &format!("/account/tokens/{}/revoke", record.id), &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let res = get(&app, &token, "/api/v1/me").await;
        assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        problem(res, StatusCode::UNAUTHORIZED).await;

        // Expired, malformed, unknown and missing tokens are refused the same way.
        let expired = PersonalToken::generate();
        app.store
            .create_pat(account_id, "old", &expired, &turnpike_store::Scopes::developer(), Some(NOW), Some(account_id), NOW - 100)
            .await
            .unwrap();
        for bad in [expired.expose(), "tp_pat_short", PersonalToken::generate().expose(), ""] {
            problem(get(&app, bad, "/api/v1/me").await, StatusCode::UNAUTHORIZED).await;
        }
        problem(script().get(app.url("/api/v1/apps")).send().await.unwrap(), StatusCode::UNAUTHORIZED).await;
        let res = script().get(app.url("/api/v1/me")).header(AUTHORIZATION, format!("Basic {}", &token[7..])).send().await.unwrap();
        problem(res, StatusCode::UNAUTHORIZED).await;

        // A bearer request never falls back to the session: a logged-in browser with a bad
        // token is refused.
        let res = dev.get(app.url("/api/v1/me")).header(AUTHORIZATION, format!("Bearer {token}")).send().await.unwrap();
        problem(res, StatusCode::UNAUTHORIZED).await;
        // Another developer cannot revoke Ada's token through the page.
        let bob = app.developer("bob@example.com").await;
        let csrf = app.csrf(&bob, "/account/tokens").await;
        let fresh = token_via_page(&app, &dev, "second").await;
        let fresh_id = app.store.list_pats(account_id).await.unwrap()[0].id;
        let res = app.post(&bob, &format!("/account/tokens/{fresh_id}/revoke"), &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        json_ok(get(&app, &fresh, "/api/v1/me").await, StatusCode::OK).await;
    }
}

#[tokio::test]
async fn session_callers_need_the_csrf_header_to_write() {
    for (app, _) in each("api_session_csrf").await {
        let dev = app.developer("ada@example.com").await;
        let me = json_ok(dev.get(app.url("/api/v1/me")).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(me["auth"], "session");
        let account_id = me["id"].as_i64().unwrap();

        // No header, or a wrong one, or a foreign Origin: refused by the CSRF guard with a
        // problem document, nothing created.
        let res = dev.post(app.url("/api/v1/apps")).json(&json!({"name": "One"})).send().await.unwrap();
        assert_eq!(problem(res, StatusCode::FORBIDDEN).await["type"], "urn:turnpike:problem:csrf");
        let res =
            dev.post(app.url("/api/v1/apps")).header("x-csrf-token", "0".repeat(64)).json(&json!({"name": "One"})).send().await.unwrap();
        problem(res, StatusCode::FORBIDDEN).await;
        let csrf = app.csrf(&dev, "/account/tokens").await;
        let res = dev
            .post(app.url("/api/v1/apps"))
            .header("x-csrf-token", &csrf)
            .header("origin", "https://evil.example")
            .json(&json!({"name": "One"}))
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::FORBIDDEN).await;
        let res = dev.delete(app.url("/api/v1/apps/1")).send().await.unwrap();
        problem(res, StatusCode::FORBIDDEN).await;
        assert!(app.store.list_apps(account_id).await.unwrap().is_empty());

        // The session's token in the header: accepted.
        let res = dev.post(app.url("/api/v1/apps")).header("x-csrf-token", &csrf).json(&json!({"name": "One"})).send().await.unwrap();
        let created = json_ok(res, StatusCode::CREATED).await;
        assert_eq!(created["name"], "One");

        // A cookie plus a bearer token still needs the header (the cookie is ambient authority).
        let token = token_via_page(&app, &dev, "t").await;
        let res = dev
            .post(app.url("/api/v1/apps"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .json(&json!({"name": "Two"}))
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::FORBIDDEN).await;
        // A bearer token without a cookie needs none.
        json_ok(post(&app, &token, "/api/v1/apps", json!({"name": "Two"})).await, StatusCode::CREATED).await;
        assert_eq!(app.store.list_apps(account_id).await.unwrap().len(), 2);

        // Neither cookie nor token: 401 problem, for reads and writes alike.
        problem(browser().get(app.url("/api/v1/apps")).send().await.unwrap(), StatusCode::UNAUTHORIZED).await;
        let res = script().post(app.url("/api/v1/apps")).json(&json!({"name": "Three"})).send().await.unwrap();
        problem(res, StatusCode::UNAUTHORIZED).await;
        assert_eq!(app.store.list_apps(account_id).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn another_developers_apps_keys_and_usage_are_not_found() {
    for (app, _) in each("api_isolation").await {
        seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let (_, ada) = developer(&app, "ada@example.com").await;
        let (_, bob) = developer(&app, "bob@example.com").await;
        let a_app =
            json_ok(post(&app, &ada, "/api/v1/apps", json!({"name": "Ada's"})).await, StatusCode::CREATED).await["id"].as_i64().unwrap();
        let a_key = json_ok(post(&app, &ada, &format!("/api/v1/apps/{a_app}/keys"), json!({"name": "k"})).await, StatusCode::CREATED).await;
        let a_key_id = a_key["key"]["id"].as_i64().unwrap();
        let b_app =
            json_ok(post(&app, &bob, "/api/v1/apps", json!({"name": "Bob's"})).await, StatusCode::CREATED).await["id"].as_i64().unwrap();

        let m = reqwest::Method::GET;
        let cases: Vec<(reqwest::Method, String, Option<Value>)> = vec![
            (m.clone(), format!("/api/v1/apps/{a_app}"), None),
            (reqwest::Method::PATCH, format!("/api/v1/apps/{a_app}"), Some(json!({"name": "mine now"}))),
            (reqwest::Method::DELETE, format!("/api/v1/apps/{a_app}"), None),
            (m.clone(), format!("/api/v1/apps/{a_app}/keys"), None),
            (reqwest::Method::POST, format!("/api/v1/apps/{a_app}/keys"), Some(json!({"name": "stolen"}))),
            (reqwest::Method::POST, format!("/api/v1/apps/{a_app}/keys/{a_key_id}/revoke"), None),
            // Ada's key under Bob's own app.
            (reqwest::Method::POST, format!("/api/v1/apps/{b_app}/keys/{a_key_id}/revoke"), None),
            (m.clone(), format!("/api/v1/apps/{a_app}/subscriptions"), None),
            (m.clone(), format!("/api/v1/apps/{a_app}/usage"), None),
            (m.clone(), format!("/api/v1/apps/{a_app}/keys/{a_key_id}/usage"), None),
            (m.clone(), format!("/api/v1/apps/{b_app}/keys/{a_key_id}/usage"), None),
            (m.clone(), "/api/v1/apps/999999/usage".to_owned(), None),
        ];
        for (method, path, body) in cases {
            let res = call(&app, &bob, method.clone(), &path, body).await;
            let p = problem(res, StatusCode::NOT_FOUND).await;
            assert!(!p.to_string().contains("Ada"), "{method} {path}: {p}");
        }

        // Nothing of Ada's changed.
        let apps = json_ok(get(&app, &ada, "/api/v1/apps").await, StatusCode::OK).await;
        assert_eq!(apps, json!([{"id": a_app, "name": "Ada's", "created_at": NOW}]));
        let keys = json_ok(get(&app, &ada, &format!("/api/v1/apps/{a_app}/keys")).await, StatusCode::OK).await;
        assert_eq!(keys.as_array().unwrap().len(), 1);
        assert_eq!(keys[0]["status"], "active");
        let bob_apps = json_ok(get(&app, &bob, "/api/v1/apps").await, StatusCode::OK).await;
        assert_eq!(bob_apps.as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn bad_requests_are_problem_documents_and_change_nothing() {
    for (app, _) in each("api_problems").await {
        let (_, token) = developer(&app, "ada@example.com").await;
        let app_id =
            json_ok(post(&app, &token, "/api/v1/apps", json!({"name": "Keep"})).await, StatusCode::CREATED).await["id"].as_i64().unwrap();
        let raw = |path: &str, content_type: &str, body: &'static str| {
            script()
                .post(app.url(path))
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .header(CONTENT_TYPE, content_type.to_owned())
                .body(body)
                .send()
        };

        problem(raw("/api/v1/apps", "application/json", "{\"name\": ").await.unwrap(), StatusCode::BAD_REQUEST).await;
        problem(raw("/api/v1/apps", "text/plain", "{\"name\": \"x\"}").await.unwrap(), StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        problem(raw("/api/v1/apps", "application/json", "{\"name\": 42}").await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
        problem(raw("/api/v1/apps", "application/json", "{}").await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
        problem(raw("/api/v1/apps", "application/json", "[]").await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
        let p = problem(post(&app, &token, "/api/v1/apps", json!({"name": "   "})).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["errors"][0]["field"], "name", "{p}");
        let p = problem(post(&app, &token, "/api/v1/apps", json!({"name": "x".repeat(81)})).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["errors"][0]["field"], "name");
        problem(post(&app, &token, "/api/v1/apps", json!({"name": "Keep"})).await, StatusCode::CONFLICT).await;
        problem(post(&app, &token, &format!("/api/v1/apps/{app_id}/keys"), json!({"name": ""})).await, StatusCode::UNPROCESSABLE_ENTITY)
            .await;
        let app_path = format!("/api/v1/apps/{app_id}");
        let patch = |body: Value| call(&app, &token, reqwest::Method::PATCH, &app_path, Some(body));
        problem(patch(json!({"name": "a\u{0}b"})).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        problem(patch(json!({"title": "no name"})).await, StatusCode::UNPROCESSABLE_ENTITY).await;

        // Ids and paths that cannot exist, methods that are not supported.
        problem(get(&app, &token, "/api/v1/apps/abc").await, StatusCode::NOT_FOUND).await;
        problem(get(&app, &token, "/api/v1/apps/99999999999999999999999").await, StatusCode::NOT_FOUND).await;
        problem(get(&app, &token, "/api/v1/nothing-here").await, StatusCode::NOT_FOUND).await;
        problem(call(&app, &token, reqwest::Method::PUT, "/api/v1/apps", None).await, StatusCode::METHOD_NOT_ALLOWED).await;

        // Usage ranges.
        problem(get(&app, &token, &format!("/api/v1/apps/{app_id}/usage?from=yesterday")).await, StatusCode::BAD_REQUEST).await;
        let p = problem(get(&app, &token, &format!("/api/v1/apps/{app_id}/usage?from=100&to=50")).await, StatusCode::UNPROCESSABLE_ENTITY)
            .await;
        assert_eq!(p["errors"][0]["field"], "to");
        let p =
            problem(get(&app, &token, &format!("/api/v1/apps/{app_id}/usage?from=-5&to=0")).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["errors"].as_array().unwrap().len(), 1, "{p}");

        // Nothing changed.
        let apps = json_ok(get(&app, &token, "/api/v1/apps").await, StatusCode::OK).await;
        assert_eq!(apps, json!([{"id": app_id, "name": "Keep", "created_at": NOW}]));
        assert!(app.store.list_keys(app_id).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn smuggled_role_plan_and_quota_fields_are_ignored() {
    for (app, _) in each("api_smuggling").await {
        let (_, plan_id) = seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let (_, token) = developer(&app, "ada@example.com").await;
        let (_, other) = developer(&app, "bob@example.com").await;
        let bob_id = json_ok(get(&app, &other, "/api/v1/me").await, StatusCode::OK).await["id"].as_i64().unwrap();
        let body = json!({
            "name": "Sneaky", "role": "admin", "plan": "enterprise", "plan_id": plan_id + 100, "quota": 1_000_000_000,
            "monthly_quota": null, "account_id": bob_id, "status": "active", "id": 1
        });
        let created = json_ok(post(&app, &token, "/api/v1/apps", body.clone()).await, StatusCode::CREATED).await;
        let app_id = created["id"].as_i64().unwrap();
        let renamed = call(
            &app,
            &token,
            reqwest::Method::PATCH,
            &format!("/api/v1/apps/{app_id}"),
            Some(json!({"name": "Sneakier", "role": "admin"})),
        )
        .await;
        json_ok(renamed, StatusCode::OK).await;
        let key = post(&app, &token, &format!("/api/v1/apps/{app_id}/keys"), json!({"name": "k", "status": "suspended", "quota": 5})).await;
        let key = json_ok(key, StatusCode::CREATED).await;
        assert_eq!(key["key"]["status"], "active");

        let me = json_ok(get(&app, &token, "/api/v1/me").await, StatusCode::OK).await;
        assert_eq!(me["role"], "developer");
        let owner = app.store.get_app(me["id"].as_i64().unwrap(), app_id).await.expect("the app is the caller's");
        assert_eq!(owner.name, "Sneakier");
        assert!(app.store.list_apps(bob_id).await.unwrap().is_empty());
        let subs = json_ok(get(&app, &token, &format!("/api/v1/apps/{app_id}/subscriptions")).await, StatusCode::OK).await;
        assert_eq!(subs.as_array().unwrap().len(), 1);
        assert_eq!(subs[0]["plan_id"], plan_id);
        assert_eq!(subs[0]["monthly_quota"], 1000);
        // Admin-only pages stay closed.
        let res = script().get(app.url("/admin")).header(AUTHORIZATION, format!("Bearer {token}")).send().await.unwrap();
        assert_ne!(res.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn keys_created_through_the_api_pass_the_gateway_lookup_and_usage_adds_up() {
    for (app, _) in each("api_keys_usage").await {
        let (api_id, plan_id) = seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        seed_api(&app.store, "draft", "Draft", Visibility::Draft).await;
        let (_, token) = developer(&app, "ada@example.com").await;
        let app_id =
            json_ok(post(&app, &token, "/api/v1/apps", json!({"name": "Bot"})).await, StatusCode::CREATED).await["id"].as_i64().unwrap();

        let res = post(&app, &token, &format!("/api/v1/apps/{app_id}/keys"), json!({"name": "  production "})).await;
        assert_eq!(res.headers()["cache-control"], "no-store");
        let created = json_ok(res, StatusCode::CREATED).await;
        let secret = created["secret"].as_str().unwrap().to_owned();
        let key = ApiKey::parse(&secret).expect("a well-formed key");
        let auth = app.store.key_auth(&key.hash()).await.unwrap().expect("stored by hash");
        assert_eq!((auth.app_id, auth.status), (app_id, KeyStatus::Active));
        assert_eq!(created["key"]["name"], "production");
        assert_eq!(created["key"]["prefix"], key.display_prefix());
        let key_id = auth.key_id;

        // Listed without the secret.
        let res = get(&app, &token, &format!("/api/v1/apps/{app_id}/keys")).await;
        let text = res.text().await.unwrap();
        assert!(!text.contains(&secret));
        assert!(text.contains(&key.display_prefix()));

        // Catalog: the public API with its plan; the draft is absent and not found.
        let apis = json_ok(script().get(app.url("/api/v1/apis")).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(apis.as_array().unwrap().len(), 1);
        assert_eq!(apis[0]["slug"], "echo");
        assert_eq!(apis[0]["plans"][0]["id"], plan_id);
        json_ok(script().get(app.url("/api/v1/apis/echo")).send().await.unwrap(), StatusCode::OK).await;
        problem(script().get(app.url("/api/v1/apis/draft")).send().await.unwrap(), StatusCode::NOT_FOUND).await;

        // Usage: counters for two hours of this month, one of last month (outside the range).
        let subs = json_ok(get(&app, &token, &format!("/api/v1/apps/{app_id}/subscriptions")).await, StatusCode::OK).await;
        let sub_id = subs[0]["id"].as_i64().unwrap();
        assert_eq!(subs[0]["api_id"], api_id);
        assert_eq!(subs[0]["plan_slug"], "free");
        let row = |hour: i64, admitted: i64, ok: i64, client: i64, server: i64| UsageRow {
            key_id,
            api_id,
            subscription_id: sub_id,
            hour,
            admitted,
            status_2xx: ok,
            status_4xx: client,
            status_5xx: server,
            ..UsageRow::default()
        };
        let h = hour_start(NOW);
        app.store
            .upsert_usage("redis", &[row(h, 40, 35, 4, 1), row(h - 3600, 10, 10, 0, 0), row(h - 40 * 86_400, 7, 7, 0, 0)], NOW)
            .await
            .unwrap();
        let usage = json_ok(get(&app, &token, &format!("/api/v1/apps/{app_id}/usage")).await, StatusCode::OK).await;
        assert_eq!(usage["totals"], json!({"calls": 50, "status_2xx": 45, "status_3xx": 0, "status_4xx": 4, "status_5xx": 1}));
        assert_eq!(usage["keys"][0]["key_id"], key_id);
        assert_eq!(usage["keys"][0]["calls"], 50);
        // The quota counts the billing period, which starts at the subscription's anchor (this
        // hour): the hour before it is in the month's usage but not in the period.
        let quota = &usage["quotas"][0];
        assert_eq!(quota["period_start"], h);
        assert_eq!((quota["quota"].as_i64(), quota["used"].as_i64(), quota["left"].as_i64()), (Some(1000), Some(40), Some(960)), "{quota}");
        // An explicit range: only the older hour.
        let path = format!("/api/v1/apps/{app_id}/usage?from={}&to={}", h - 3600, h);
        let usage = json_ok(get(&app, &token, &path).await, StatusCode::OK).await;
        assert_eq!(usage["totals"]["calls"], 10);
        // The key alone.
        let path = format!("/api/v1/apps/{app_id}/keys/{key_id}/usage");
        let usage = json_ok(get(&app, &token, &path).await, StatusCode::OK).await;
        assert_eq!(
            (usage["calls"].as_i64(), usage["status_4xx"].as_i64(), usage["name"].as_str()),
            (Some(50), Some(4), Some("production"))
        );
        problem(get(&app, &token, &format!("/api/v1/apps/{app_id}/keys/{}/usage", key_id + 1)).await, StatusCode::NOT_FOUND).await;

        // Revoked through the API: the lookup sees it.
        let revoked =
            json_ok(post(&app, &token, &format!("/api/v1/apps/{app_id}/keys/{key_id}/revoke"), json!({})).await, StatusCode::OK).await;
        assert_eq!(revoked["status"], "revoked");
        assert_eq!(app.store.key_auth(&key.hash()).await.unwrap().unwrap().status, KeyStatus::Revoked);

        // Rename and delete: the deleted app's key is gone from the lookup.
        let res = call(&app, &token, reqwest::Method::PATCH, &format!("/api/v1/apps/{app_id}"), Some(json!({"name": "Bot 2"}))).await;
        assert_eq!(json_ok(res, StatusCode::OK).await["name"], "Bot 2");
        // An app with metered usage is kept for billing: 409, nothing deleted.
        let res = call(&app, &token, reqwest::Method::DELETE, &format!("/api/v1/apps/{app_id}"), None).await;
        problem(res, StatusCode::CONFLICT).await;
        json_ok(get(&app, &token, &format!("/api/v1/apps/{app_id}")).await, StatusCode::OK).await;
        // One without any: deleted with its key.
        let spare = json_ok(post(&app, &token, "/api/v1/apps", json!({"name": "Spare"})).await, StatusCode::CREATED).await;
        let spare_id = spare["id"].as_i64().unwrap();
        let spare_key =
            json_ok(post(&app, &token, &format!("/api/v1/apps/{spare_id}/keys"), json!({"name": "k"})).await, StatusCode::CREATED).await;
        let spare_hash = ApiKey::parse(spare_key["secret"].as_str().unwrap()).unwrap().hash();
        assert!(app.store.key_auth(&spare_hash).await.unwrap().is_some());
        let res = call(&app, &token, reqwest::Method::DELETE, &format!("/api/v1/apps/{spare_id}"), None).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        problem(get(&app, &token, &format!("/api/v1/apps/{spare_id}")).await, StatusCode::NOT_FOUND).await;
        assert!(app.store.key_auth(&spare_hash).await.unwrap().is_none());
        let audit = app.store.recent_audit(50).await.unwrap();
        for action in ["app.create", "key.create", "key.revoke", "app.rename", "app.delete"] {
            assert!(audit.iter().any(|e| e.action == action), "{action}");
        }
        assert!(audit.iter().all(|e| !e.detail.contains(&secret)));
    }
}

#[tokio::test]
async fn docs_page_renders_the_spec_with_vendored_swagger_ui() {
    for (app, _) in each("api_docs").await {
        let res = browser().get(app.url("/api/docs")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        for asset in ["/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/vendor/swagger-ui/swagger-ui.css", "/static/api/docs.js"] {
            assert!(html.contains(asset), "{asset}");
            let res = browser().get(app.url(asset)).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{asset}");
        }
        assert!(!html.contains("<script>"), "no inline scripts under the CSP");
        assert!(!html.contains("https://"), "nothing from a CDN");
        let spec = json_ok(browser().get(app.url("/api/openapi.json")).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    }
}

/// The generated OpenAPI document equals the reviewed snapshot. After an intended change:
/// `UPDATE_SNAPSHOTS=1 cargo test -p turnpike-portal --test it api::openapi_document_matches_the_snapshot`.
#[test]
fn openapi_document_matches_the_snapshot() {
    let generated = turnpike_portal::api::openapi_json();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &generated).expect("write snapshot");
        return;
    }
    let stored = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    if stored != generated {
        let line = stored.lines().zip(generated.lines()).position(|(a, b)| a != b).map_or_else(
            || "at the end".to_owned(),
            |i| {
                format!(
                    "first difference at line {}:\n  snapshot:  {}\n  generated: {}",
                    i + 1,
                    stored.lines().nth(i).unwrap_or(""),
                    generated.lines().nth(i).unwrap_or("")
                )
            },
        );
        panic!(
            "The OpenAPI document of /api/v1 changed ({line}).\nIf the change is intended, review it and update the snapshot with:\n  \
             UPDATE_SNAPSHOTS=1 cargo test -p turnpike-portal --test it api::openapi_document_matches_the_snapshot\n\
             and commit portal/tests/snapshots/openapi.json."
        );
    }
    // Every operation documents its problem responses, and authenticated ones their 401.
    let spec: Value = serde_json::from_str(&generated).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("500"), "{method} {path}");
            let public = op.get("security").is_some_and(|s| s == &json!([{}]));
            assert!(public || responses.contains_key("401"), "{method} {path}");
            for (status, r) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(r["content"]["application/problem+json"].is_object(), "{method} {path} {status}");
                }
            }
        }
    }
}

#[tokio::test]
async fn the_token_form_refuses_bad_input_and_creates_nothing() {
    for (app, url) in each("api_token_form").await {
        let dev = app.developer("ada@example.com").await;
        let csrf = app.csrf(&dev, "/account/tokens").await;
        for (name, days) in [("", "90"), ("   ", "90"), (&*"x".repeat(81), "90"), ("ok", "7"), ("ok", "forever")] {
            let res = app.post(&dev, "/account/tokens", &[("csrf", &csrf), ("name", name), ("expires_in_days", days)]).await;
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name:?} {days:?}");
            let html = res.text().await.unwrap();
            assert!(html.contains(r#"class="field-error""#), "{html}");
            assert!(element_text(&html, "new-token").is_none());
        }
        // Without the CSRF token: refused.
        let res = app.post(&dev, "/account/tokens", &[("name", "x"), ("expires_in_days", "90")]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(stored_token_rows(&url).await.is_empty());
        // Logged out: to the login page.
        let res = browser().get(app.url("/account/tokens")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        // "Never" expires.
        let res = app.post(&dev, "/account/tokens", &[("csrf", &csrf), ("name", "ci"), ("expires_in_days", "0")]).await;
        assert_eq!(res.status(), StatusCode::OK);
        let me = json_ok(dev.get(app.url("/api/v1/me")).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(app.store.list_pats(me["id"].as_i64().unwrap()).await.unwrap()[0].expires_at, None);
    }
}
