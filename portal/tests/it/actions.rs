//! The actions behind both surfaces (`portal::service`): one rule for the HTML page and the JSON
//! API (keys need a verified email), and each change written in the same transaction as its
//! audit row (an audit insert that fails leaves no change behind).

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use turnpike_store::domain::Email;
use turnpike_store::{KeyStatus, Role, Visibility};

use crate::helpers::{each, location, seed_api, unescape, TestApp, NOW};

/// Run `statements` straight on the test database.
async fn exec(url: &str, statements: &[&str]) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        for s in statements {
            sqlx::query(s).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        for s in statements {
            sqlx::query(s).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
}

/// A trigger that makes every insert into `audit_log` fail.
async fn refuse_audit(url: &str) {
    if url.starts_with("sqlite:") {
        exec(url, &["CREATE TRIGGER audit_refused BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit refused'); END"]).await;
    } else {
        exec(
            url,
            &[
                "CREATE FUNCTION audit_refused() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_refused()",
            ],
        )
        .await;
    }
}

async fn allow_audit(url: &str) {
    let drop = if url.starts_with("sqlite:") { "DROP TRIGGER audit_refused" } else { "DROP TRIGGER audit_refused ON audit_log" };
    exec(url, &[drop]).await;
}

/// A JSON call from a logged-in browser, with the session's CSRF token.
async fn api(app: &TestApp, client: &Client, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let csrf = app.csrf(client, "/dashboard").await;
    let mut req = client.request(method, app.url(path)).header("x-csrf-token", csrf);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn creating_keys_requires_a_verified_email_on_the_page_and_the_api() {
    for app in each("actions_verified_keys").await {
        seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let (eve, account_id) = app.login_new("eve@example.com", Role::Developer).await;
        let app_id = app.create_app(&eve, "Eve's app").await;
        let before = app.store.latest_change().await.unwrap();

        // The page: a readable message on the app page, no key.
        let res = app.create_key(&eve, app_id, "main").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), format!("/apps/{app_id}"));
        let html = unescape(&app.get(&eve, &format!("/apps/{app_id}")).await.text().await.unwrap());
        assert!(html.contains("Confirm your email address before creating keys"), "{html}");
        assert!(!html.contains("tp_live_"), "no secret shown");

        // The API: 403 problem+json with its own code, no key.
        let res = api(&app, &eve, reqwest::Method::POST, &format!("/api/v1/apps/{app_id}/keys"), Some(json!({"name": "main"}))).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["type"], "urn:turnpike:problem:email-unverified", "{problem}");
        assert!(problem.get("secret").is_none());

        assert!(app.store.list_keys(app_id).await.unwrap().is_empty());
        assert_eq!(app.store.latest_change().await.unwrap(), before, "nothing told to gateways");

        // Once the address is confirmed, both surfaces create keys.
        app.store.mark_email_verified(account_id, NOW).await.unwrap();
        let eve = app.login("eve@example.com").await;
        assert_eq!(app.create_key(&eve, app_id, "main").await.status(), StatusCode::OK);
        let res = api(&app, &eve, reqwest::Method::POST, &format!("/api/v1/apps/{app_id}/keys"), Some(json!({"name": "ci"}))).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(app.store.list_keys(app_id).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn an_action_whose_audit_row_cannot_be_written_changes_nothing() {
    for app in each("actions_audit_atomic").await {
        let url = app.db_url.clone();
        seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let dev = app.developer("ada@example.com").await;
        let account_id = app.store.find_account_by_email(&Email::parse("ada@example.com").unwrap()).await.unwrap().unwrap().0.id;
        let app_id = app.create_app(&dev, "Bot").await;
        assert_eq!(app.create_key(&dev, app_id, "main").await.status(), StatusCode::OK);
        let key = app.store.list_keys(app_id).await.unwrap().remove(0);
        let audit_rows = app.store.recent_audit(1000).await.unwrap().len();
        let changes = app.store.latest_change().await.unwrap();

        refuse_audit(&url).await;
        let page = |path: String, form: Vec<(&'static str, String)>| {
            let (app, dev) = (&app, &dev);
            async move {
                let csrf = app.csrf(dev, &format!("/apps/{app_id}")).await;
                let mut f: Vec<(&str, String)> = vec![("csrf", csrf)];
                f.extend(form);
                dev.post(app.url(&path)).form(&f).send().await.unwrap().status()
            }
        };
        let failed = StatusCode::INTERNAL_SERVER_ERROR;
        assert_eq!(page(format!("/apps/{app_id}/keys"), vec![("name", "second".into())]).await, failed, "create key (page)");
        let res = api(&app, &dev, reqwest::Method::POST, &format!("/api/v1/apps/{app_id}/keys"), Some(json!({"name": "ci"}))).await;
        assert_eq!(res.status(), failed, "create key (API)");
        assert_eq!(page(format!("/apps/{app_id}/keys/{}/rename", key.id), vec![("name", "renamed".into())]).await, failed);
        assert_eq!(page(format!("/apps/{app_id}/keys/{}/rotate", key.id), vec![("grace", "3600".into())]).await, failed);
        assert_eq!(page(format!("/apps/{app_id}/keys/{}/revoke", key.id), vec![]).await, failed);
        let res = api(&app, &dev, reqwest::Method::POST, &format!("/api/v1/apps/{app_id}/keys/{}/revoke", key.id), None).await;
        assert_eq!(res.status(), failed, "revoke key (API)");
        assert_eq!(page(format!("/apps/{app_id}/rename"), vec![("name", "Renamed".into())]).await, failed);
        assert_eq!(page("/apps".to_owned(), vec![("name", "Second app".into())]).await, failed, "create app (page)");
        let res = api(&app, &dev, reqwest::Method::POST, "/api/v1/apps", Some(json!({"name": "Third"}))).await;
        assert_eq!(res.status(), failed, "create app (API)");
        let res = api(&app, &dev, reqwest::Method::DELETE, &format!("/api/v1/apps/{app_id}"), None).await;
        assert_eq!(res.status(), failed, "delete app (API)");

        // Nothing changed: the same one app with its one key, active, unnamed anew, unexpired,
        // and gateways were told nothing.
        let apps = app.store.list_apps(account_id).await.unwrap();
        assert_eq!(apps.iter().map(|a| (a.id, a.name.as_str())).collect::<Vec<_>>(), [(app_id, "Bot")]);
        let keys = app.store.list_keys(app_id).await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!((keys[0].id, keys[0].name.as_str(), keys[0].status, keys[0].expires_at), (key.id, "main", KeyStatus::Active, None));
        assert_eq!(app.store.latest_change().await.unwrap(), changes);

        // With the audit log writable again the same requests succeed and are audited.
        allow_audit(&url).await;
        assert_eq!(page(format!("/apps/{app_id}/keys/{}/revoke", key.id), vec![]).await, StatusCode::SEE_OTHER);
        assert_eq!(app.store.get_key(app_id, key.id).await.unwrap().status, KeyStatus::Revoked);
        let audit = app.store.recent_audit(1000).await.unwrap();
        assert_eq!(audit.len(), audit_rows + 1);
        assert_eq!((audit[0].action.as_str(), audit[0].target.clone()), ("key.revoke", format!("key:{}", key.id)));
    }
}
