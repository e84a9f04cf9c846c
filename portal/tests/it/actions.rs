//! The actions behind both surfaces (`portal::service`): one rule for the HTML page and the JSON
//! API (keys need a verified email), and each change written in the same transaction as its
//! audit row (an audit insert that fails leaves no change behind).

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use turnpike_store::domain::Email;
use turnpike_store::{KeyStatus, Role, Visibility};

use crate::helpers::{browser, each, location, seed_api, unescape, TestApp, NOW, PASSWORD};

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

/// A `multipart/form-data` body of plain fields (the admin API form's encoding).
fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "----turnpike-actions-boundary";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body.into_bytes())
}

/// Everything the actions below could change, read back for comparison.
async fn snapshot(app: &TestApp, ids: &Ids) -> String {
    let s = &app.store;
    let sub = s.get_subscription(ids.sub).await.unwrap();
    let plans: Vec<_> = s.list_plans(ids.api).await.unwrap().iter().map(|p| (p.slug.clone(), p.rate_per_second, p.is_default)).collect();
    let prices = s.plan_price_history(ids.free).await.unwrap().len();
    let invoice = s.invoice_summary(ids.invoice).await.unwrap().status;
    let dev = s.get_account(ids.dev).await.unwrap();
    let key = s.get_key(ids.app, ids.key).await.unwrap().status;
    let apis: Vec<_> = s.list_apis().await.unwrap().iter().map(|a| (a.slug.clone(), a.name.clone())).collect();
    let pats: Vec<_> = s.list_pats(ids.dev).await.unwrap().iter().map(|p| p.revoked_at).collect();
    let bob = s.find_account_by_email(&Email::parse("bob@example.com").unwrap()).await.unwrap().unwrap().0.email_verified_at;
    let carol = s.find_account_by_email(&Email::parse("carol@example.com").unwrap()).await.unwrap().is_some();
    let moved = s.emails_to("ada.new@example.com").await.unwrap().len();
    format!(
        "{:?}",
        (
            (sub.plan_id, sub.status, sub.revision, sub.cancel_at_period_end, sub.pending_plan_id),
            plans,
            prices,
            invoice,
            (dev.email, dev.status, key),
            apis,
            pats,
            (bob, carol, moved),
            s.recent_audit(1000).await.unwrap().len(),
            s.latest_change().await.unwrap(),
        )
    )
}

struct Ids {
    api: i64,
    free: i64,
    dev: i64,
    app: i64,
    key: i64,
    sub: i64,
    invoice: i64,
}

#[tokio::test]
async fn every_action_whose_audit_row_cannot_be_written_changes_nothing() {
    for app in each("actions_audit_atomic_all").await {
        let url = app.db_url.clone();
        let (api, free) = seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let pro_plan =
            turnpike_store::NewPlan { slug: "pro".into(), name: "Pro".into(), is_default: false, ..turnpike_testkit::free_plan() };
        let pro = app.store.create_plan(api, &pro_plan, NOW).await.unwrap().id;
        let (root, _) = app.login_new("root@example.com", Role::Admin).await;
        let ada = app.developer("ada@example.com").await;
        let dev = app.store.find_account_by_email(&Email::parse("ada@example.com").unwrap()).await.unwrap().unwrap().0.id;
        let app_id = app.create_app(&ada, "Bot").await;
        assert_eq!(app.create_key(&ada, app_id, "main").await.status(), StatusCode::OK);
        let key = app.store.list_keys(app_id).await.unwrap().remove(0).id;
        let sub = app.store.list_subscriptions(app_id).await.unwrap().remove(0).id;
        let token = turnpike_store::PersonalToken::generate();
        let token = app.store.create_pat(dev, "ci", &token, &turnpike_store::Scopes::developer(), None, Some(dev), NOW).await.unwrap().id;
        let post = |client: &'static str, path: String, form: Vec<(&'static str, String)>| {
            let (app, c) = (&app, if client == "root" { &root } else { &ada });
            async move {
                let csrf = app.csrf(c, "/dashboard").await;
                let mut f: Vec<(&str, String)> = vec![("csrf", csrf)];
                f.extend(form);
                c.post(app.url(&path)).form(&f).send().await.unwrap().status()
            }
        };
        let s = |v: &str| v.to_owned();
        // An open invoice: a priced plan of another app, finalized after its first period.
        let other = app.store.create_app(dev, "Billed", NOW).await.unwrap();
        let billed = app.store.subscribe(other.id, pro, NOW).await.unwrap();
        let flat = [("currency", "usd"), ("model", "flat"), ("billable", "admitted"), ("trial_days", "0"), ("base_fee", "10.00")];
        let flat = flat.map(|(k, v)| (k, s(v))).to_vec();
        assert_eq!(post("root", format!("/admin/plans/{pro}/pricing"), flat).await, StatusCode::SEE_OTHER, "priced");
        turnpike_ledger::finalize_subscription(&app.store, billed.id, NOW + 40 * 86_400, &mut Default::default()).await.unwrap();
        let invoice = app.store.all_invoices().await.unwrap().into_iter().find(|i| i.status == "open").expect("an open invoice").id;
        // Bob signed up and holds his verification link, unused.
        assert_eq!(app.signup(&browser(), "bob@example.com", PASSWORD).await.status(), StatusCode::OK);
        let bob_link = app.mailed_link("bob@example.com", "/verify-email?token=").await;
        let ids = Ids { api, free, dev, app: app_id, key, sub, invoice };
        let before = snapshot(&app, &ids).await;

        refuse_audit(&url).await;
        let failed = StatusCode::INTERNAL_SERVER_ERROR;
        // The developer's actions.
        let subscribe = vec![("app_id", app_id.to_string()), ("plan_id", pro.to_string())];
        assert_eq!(post("ada", s("/apis/echo/subscribe"), subscribe).await, failed, "subscribe");
        assert_eq!(post("ada", format!("/billing/subscriptions/{sub}/plan"), vec![("plan_id", pro.to_string())]).await, failed, "plan");
        assert_eq!(post("ada", format!("/billing/subscriptions/{sub}/cancel"), vec![("when", s("now"))]).await, failed, "cancel now");
        let at_end = vec![("when", s("period_end"))];
        assert_eq!(post("ada", format!("/billing/subscriptions/{sub}/cancel"), at_end).await, failed, "cancel at period end");
        assert_eq!(post("ada", format!("/account/tokens/{token}/revoke"), vec![]).await, failed, "token revoke");
        let change = vec![("password", s(PASSWORD)), ("new_email", s("ada.new@example.com"))];
        assert_eq!(post("ada", s("/account/email"), change).await, failed, "email change request");
        assert_eq!(post("ada", s("/account/delete"), vec![("password", s(PASSWORD))]).await, failed, "account delete");
        assert_eq!(app.signup(&browser(), "carol@example.com", PASSWORD).await.status(), failed, "signup");
        assert_eq!(app.confirm_link(&browser(), &bob_link).await.status(), failed, "email verify");
        // The administrator's actions.
        let limits = |slug: &str| {
            [("name", "Team"), ("slug", slug), ("rate_per_second", "7"), ("burst", "9"), ("monthly_quota", ""), ("is_default", "on")]
                .map(|(k, v)| (k, v.to_owned()))
                .to_vec()
        };
        assert_eq!(post("root", format!("/admin/apis/{api}/plans"), limits("team")).await, failed, "plan create");
        assert_eq!(post("root", format!("/admin/plans/{free}"), limits("free")).await, failed, "plan update");
        let price = [("currency", "usd"), ("model", "flat"), ("billable", "admitted_non_5xx"), ("trial_days", "0"), ("base_fee", "12.50")];
        assert_eq!(post("root", format!("/admin/plans/{free}/pricing"), price.map(|(k, v)| (k, s(v))).to_vec()).await, failed, "price");
        assert_eq!(post("root", format!("/admin/invoices/{invoice}/paid"), vec![]).await, failed, "invoice paid");
        assert_eq!(post("root", format!("/admin/invoices/{invoice}/void"), vec![]).await, failed, "invoice void");
        assert_eq!(post("root", format!("/admin/developers/{dev}/suspend"), vec![]).await, failed, "developer suspend");
        assert_eq!(post("root", format!("/admin/keys/{key}/suspend"), vec![]).await, failed, "key suspend");
        for (path, slug) in [(s("/admin/apis"), "pets"), (format!("/admin/apis/{api}"), "echo")] {
            let csrf = app.csrf(&root, "/admin/apis/new").await;
            let fields = [
                ("csrf", csrf.as_str()),
                ("name", "Renamed"),
                ("slug", slug),
                ("description", "Adopt a pet."),
                ("route_prefix", "/pets/v1"),
                ("host", ""),
                ("upstream_url", "http://127.0.0.1:9/v1"),
                ("upstream_weight", "1"),
                ("visibility", "public"),
                ("lifecycle", "beta"),
            ];
            let (content_type, body) = multipart(&fields);
            let res = root.post(app.url(&path)).header("content-type", content_type).body(body).send().await.unwrap();
            assert_eq!(res.status(), failed, "API {path}");
        }

        assert_eq!(snapshot(&app, &ids).await, before, "nothing changed");

        // Writable again, the same requests succeed (so the failures above were the audit's).
        allow_audit(&url).await;
        assert_eq!(post("root", format!("/admin/invoices/{invoice}/void"), vec![]).await, StatusCode::SEE_OTHER);
        assert_eq!(app.store.invoice_summary(invoice).await.unwrap().status, "void");
        assert_eq!(app.confirm_link(&browser(), &bob_link).await.status(), StatusCode::SEE_OTHER);
    }
}
