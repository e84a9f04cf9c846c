//! The admin JSON API and token scopes: every `/api/v1/admin/…` operation of the OpenAPI document
//! (enumerated from it, so a new route is covered without editing this test) refuses developers
//! (token and session), tokens without an admin scope, and writes with `admin:read`; an
//! `admin:write` token acts through the console's own service functions (audited); developer
//! routes refuse tokens without the `developer` scope; only admins get admin scopes.

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use turnpike_store::domain::Email;
use turnpike_store::{AccountStatus, PersonalToken, Role, Scopes, StoreError};

use crate::helpers::{csrf_from, each, seed_api, TestApp, NOW};

/// A token with `scopes` for `account_id` (verified first, as tokens require).
async fn token(app: &TestApp, account_id: i64, scopes: &[&str]) -> String {
    app.store.mark_email_verified(account_id, NOW).await.unwrap();
    let t = PersonalToken::generate();
    let scopes = Scopes::parse(scopes.iter().copied()).unwrap();
    app.store.create_pat(account_id, "t", &t, &scopes, None, Some(account_id), NOW).await.unwrap();
    t.expose().to_owned()
}

/// `/api/v1/admin/apis/{api_id}` → `/api/v1/admin/apis/1`.
fn concrete(path: &str) -> String {
    path.split('/').map(|seg| if seg.starts_with('{') && seg.ends_with('}') { "1" } else { seg }).collect::<Vec<_>>().join("/")
}

async fn call(
    app: &TestApp,
    client: &Client,
    method: &Method,
    path: &str,
    bearer: Option<&str>,
    csrf: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = client.request(method.clone(), app.url(path));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Every admin operation in the document, as (method, concrete path).
fn admin_operations() -> Vec<(Method, String)> {
    let doc: Value = serde_json::from_str(&turnpike_portal::api::openapi_json()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/admin/") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            ops.push((Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), concrete(path)));
        }
    }
    ops
}

async fn audit_rows(app: &TestApp, admin_token: &str) -> usize {
    let (s, page) = call(app, &Client::new(), &Method::GET, "/api/v1/admin/audit?per_page=100", Some(admin_token), None).await;
    assert_eq!(s, StatusCode::OK);
    page["entries"].as_array().unwrap().len()
}

#[tokio::test]
async fn every_admin_operation_refuses_developers_and_scopes_short_of_it() {
    let ops = admin_operations();
    assert!(ops.len() >= 10, "the admin operations are documented: {ops:?}");
    assert!(ops.iter().any(|(m, _)| m == Method::POST) && ops.iter().any(|(m, _)| m == Method::GET));
    for app in each("admin_api_guard").await {
        seed_api(&app.store, "echo", "Echo", turnpike_store::Visibility::Public).await;
        let dev_session = app.developer("dev@example.com").await;
        let dev_csrf = csrf_from(&app.get(&dev_session, "/dashboard").await.text().await.unwrap());
        let dev_id = app.store.find_account_by_email(&Email::parse("dev@example.com").unwrap()).await.unwrap().unwrap().0.id;
        let dev_token = token(&app, dev_id, &["developer"]).await;
        let (_, admin_id) = app.login_new("owner@example.com", Role::Admin).await;
        let admin_dev_only = token(&app, admin_id, &["developer"]).await;
        let reader = token(&app, admin_id, &["admin:read"]).await;
        let writer = token(&app, admin_id, &["admin:write"]).await;
        let before = audit_rows(&app, &reader).await;
        let client = Client::new();
        for (method, path) in &ops {
            let (s, p) = call(&app, &client, method, path, None, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "anonymous {method} {path}: {p}");
            let (s, p) = call(&app, &client, method, path, Some(&dev_token), None).await;
            assert_eq!(
                (s, p["type"].as_str()),
                (StatusCode::FORBIDDEN, Some("urn:turnpike:problem:admin-only")),
                "dev token {method} {path}"
            );
            let (s, p) = call(&app, &dev_session, method, path, None, Some(&dev_csrf)).await;
            assert_eq!(
                (s, p["type"].as_str()),
                (StatusCode::FORBIDDEN, Some("urn:turnpike:problem:admin-only")),
                "dev session {method} {path}"
            );
            let (s, p) = call(&app, &client, method, path, Some(&admin_dev_only), None).await;
            assert_eq!(
                (s, p["type"].as_str()),
                (StatusCode::FORBIDDEN, Some("urn:turnpike:problem:insufficient-scope")),
                "{method} {path}"
            );
            let (s, p) = call(&app, &client, method, path, Some(&reader), None).await;
            if method == Method::GET {
                assert!(s == StatusCode::OK || s == StatusCode::NOT_FOUND, "admin:read {method} {path}: {s} {p}");
            } else {
                assert_eq!(
                    (s, p["type"].as_str()),
                    (StatusCode::FORBIDDEN, Some("urn:turnpike:problem:insufficient-scope")),
                    "{method} {path}"
                );
            }
        }
        // Nothing above changed anything: the audit log is as it was, the developer still active.
        assert_eq!(audit_rows(&app, &reader).await, before);
        assert_eq!(app.store.get_account(dev_id).await.unwrap().status, AccountStatus::Active);

        // An `admin:write` token acts through the console's own rules, audited with its account.
        let path = format!("/api/v1/admin/developers/{dev_id}/suspend");
        assert_eq!(call(&app, &client, &Method::POST, &path, Some(&writer), None).await.0, StatusCode::NO_CONTENT);
        assert_eq!(app.store.get_account(dev_id).await.unwrap().status, AccountStatus::Suspended);
        // …which refuse the developer's own token from now on, and an admin is not a developer.
        assert_eq!(call(&app, &client, &Method::GET, "/api/v1/apps", Some(&dev_token), None).await.0, StatusCode::UNAUTHORIZED);
        let path = format!("/api/v1/admin/developers/{admin_id}/suspend");
        assert_eq!(call(&app, &client, &Method::POST, &path, Some(&writer), None).await.0, StatusCode::NOT_FOUND);
        let (s, page) =
            call(&app, &client, &Method::GET, &format!("/api/v1/admin/audit?action=account.&actor_id={admin_id}"), Some(&reader), None)
                .await;
        assert_eq!(s, StatusCode::OK);
        let entries = page["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{page}");
        assert_eq!(
            (entries[0]["action"].as_str(), entries[0]["target"].as_str()),
            (Some("account.suspend"), Some(format!("account:{dev_id}").as_str()))
        );
        assert_eq!(entries[0]["actor_email"], "owner@example.com");
        let path = format!("/api/v1/admin/developers/{dev_id}/reactivate");
        assert_eq!(call(&app, &client, &Method::POST, &path, Some(&writer), None).await.0, StatusCode::NO_CONTENT);
        assert_eq!(app.store.get_account(dev_id).await.unwrap().status, AccountStatus::Active);

        // One key: suspended, then active again; the answer names whose it is.
        let app_id = app.store.create_app(dev_id, "app", NOW).await.unwrap().id;
        let key = app.store.create_key(app_id, "k", &turnpike_store::domain::ApiKey::generate(), NOW).await.unwrap();
        let (s, c) = call(&app, &client, &Method::POST, &format!("/api/v1/admin/keys/{}/suspend", key.id), Some(&writer), None).await;
        assert_eq!((s, c["changed"].as_bool(), c["account_id"].as_i64()), (StatusCode::OK, Some(true), Some(dev_id)));
        assert_eq!(app.store.get_key(app_id, key.id).await.unwrap().status, turnpike_store::KeyStatus::Suspended);
        let (s, c) = call(&app, &client, &Method::POST, &format!("/api/v1/admin/keys/{}/reactivate", key.id), Some(&writer), None).await;
        assert_eq!((s, c["changed"].as_bool()), (StatusCode::OK, Some(true)));
        assert_eq!(app.store.get_key(app_id, key.id).await.unwrap().status, turnpike_store::KeyStatus::Active);

        // Reads: the developer list (searched) and the APIs with what the gateway routes.
        let (s, devs) = call(&app, &client, &Method::GET, "/api/v1/admin/developers?q=DEV@", Some(&reader), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(devs["developers"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect::<Vec<_>>(), vec![dev_id]);
        let (s, apis) = call(&app, &client, &Method::GET, "/api/v1/admin/apis", Some(&reader), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(apis.as_array().unwrap().iter().map(|a| a["slug"].as_str().unwrap()).collect::<Vec<_>>(), vec!["echo"]);
        let (s, p) = call(&app, &client, &Method::GET, "/api/v1/admin/developers?per_page=500", Some(&reader), None).await;
        assert_eq!((s, p["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("per_page")));
    }
}

#[tokio::test]
async fn developer_routes_need_the_developer_scope_and_only_admins_get_admin_scopes() {
    for app in each("token_scopes").await {
        let dev = app.developer("dev@example.com").await;
        let dev_id = app.store.find_account_by_email(&Email::parse("dev@example.com").unwrap()).await.unwrap().unwrap().0.id;
        let (_, admin_id) = app.login_new("owner@example.com", Role::Admin).await;
        let admin_only = token(&app, admin_id, &["admin:read"]).await;
        let client = Client::new();
        let (s, p) = call(&app, &client, &Method::GET, "/api/v1/apps", Some(&admin_only), None).await;
        assert_eq!((s, p["type"].as_str()), (StatusCode::FORBIDDEN, Some("urn:turnpike:problem:insufficient-scope")));
        let (s, me) = call(&app, &client, &Method::GET, "/api/v1/me", Some(&admin_only), None).await;
        assert_eq!((s, me["scopes"].clone()), (StatusCode::OK, serde_json::json!(["admin:read"])));

        // The store refuses admin scopes for a developer, whoever asks (page, API, CLI).
        let refused =
            app.store.create_pat(dev_id, "x", &PersonalToken::generate(), &Scopes::parse(["admin:read"]).unwrap(), None, None, NOW).await;
        assert!(matches!(refused, Err(StoreError::AdminOnly)), "{refused:?}");
        // The page does not offer them to a developer, and a forged form is refused, storing nothing.
        let page = app.get(&dev, "/account/tokens").await.text().await.unwrap();
        assert!(page.contains("name=\"scope_developer\"") && !page.contains("scope_admin_read"), "developer's form");
        let csrf = csrf_from(&page);
        let form = [("csrf", csrf.as_str()), ("name", "forged"), ("expires_in_days", "30"), ("scope_admin_write", "on")];
        let res = app.post(&dev, "/account/tokens", &form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.text().await.unwrap().contains("Only administrators can give a token admin scopes."));
        assert!(app.store.list_pats(dev_id).await.unwrap().is_empty());
        // The developer's own tokens: `developer` ticked, or none ticked (the default).
        let form = [("csrf", csrf.as_str()), ("name", "ci"), ("expires_in_days", "30"), ("scope_developer", "on")];
        assert_eq!(app.post(&dev, "/account/tokens", &form).await.status(), StatusCode::OK);
        let form = [("csrf", csrf.as_str()), ("name", "none ticked"), ("expires_in_days", "30")];
        assert_eq!(app.post(&dev, "/account/tokens", &form).await.status(), StatusCode::OK);
        let pats = app.store.list_pats(dev_id).await.unwrap();
        assert_eq!(pats.iter().map(|p| p.scopes.as_str()).collect::<Vec<_>>(), vec!["developer", "developer"]);
        let listed = app.get(&dev, "/account/tokens").await.text().await.unwrap();
        assert!(listed.contains("<code class=\"scope\">developer</code>"), "scopes are listed");

        // An admin's page offers the admin scopes and makes such a token.
        let admin = app.login("owner@example.com").await;
        app.store.mark_email_verified(admin_id, NOW).await.unwrap();
        let page = app.get(&admin, "/account/tokens").await.text().await.unwrap();
        assert!(page.contains("name=\"scope_admin_write\""));
        let form =
            [("csrf", csrf_from(&page)), ("name", "ops".into()), ("expires_in_days", "30".into()), ("scope_admin_write", "on".into())];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = app.post(&admin, "/account/tokens", &form).await;
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        let secret = html.split("id=\"new-token\">").nth(1).and_then(|r| r.split('<').next()).unwrap().to_owned();
        assert_eq!(call(&app, &client, &Method::GET, "/api/v1/admin/apis", Some(&secret), None).await.0, StatusCode::OK);
    }
}
