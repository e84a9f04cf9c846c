//! The admin console: the guard on every admin route (enumerated from the router), publishing
//! APIs by uploading OpenAPI documents, plans, suspending developers and keys, the audit log.

use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{AccountStatus, ChangeKind, KeyStatus, Role, Visibility};

use crate::helpers::{browser, csrf_from, each, element_text, location, seed_api, unescape, TestApp, NOW, PASSWORD};

/// A logged-in admin, created in the store (as the CLI does) and logged in through `/login`.
async fn admin(app: &TestApp, email: &str) -> (Client, i64) {
    app.login_new(email, Role::Admin).await
}

/// `/admin/apis/{id}/plans` → `/admin/apis/1/plans`.
fn concrete(path: &str) -> String {
    path.split('/').map(|seg| if seg.starts_with('{') && seg.ends_with('}') { "1" } else { seg }).collect::<Vec<_>>().join("/")
}

async fn send(app: &TestApp, client: &Client, method: &str, path: &str, csrf: &str) -> Response {
    match method {
        "GET" => app.get(client, path).await,
        "POST" => app.post(client, path, &[("csrf", csrf)]).await,
        other => panic!("admin route with method {other}: teach this test to send it"),
    }
}

#[tokio::test]
async fn every_admin_route_refuses_developers_and_sends_visitors_to_log_in() {
    let routes = turnpike_portal::pages::admin_routes();
    let listed = routes.listed().to_vec();
    assert!(listed.len() >= 16, "the console's routes are listed: {listed:?}");
    assert!(listed.contains(&("POST", "/admin/apis/{id}")) && listed.contains(&("GET", "/admin/audit")));
    for app in each("admin_guard").await {
        seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let dev = app.developer("dev@example.com").await;
        let dev_csrf = app.csrf(&dev, "/dashboard").await;
        // An anonymous visitor with a session (and so a valid CSRF token) from the login page.
        let anon = browser();
        let anon_csrf = app.csrf(&anon, "/login").await;
        for (method, path) in &listed {
            let path = concrete(path);
            let res = send(&app, &dev, method, &path, &dev_csrf).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "developer {method} {path}");
            assert!(
                unescape(&res.text().await.unwrap()).contains("You don't have access to this page"),
                "the admin guard's 403, not CSRF's: {method} {path}"
            );
            let res = send(&app, &anon, method, &path, &anon_csrf).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "anonymous {method} {path}");
            assert_eq!(location(&res), "/login", "anonymous {method} {path}");
        }
        // Nothing the refused requests asked for happened.
        assert_eq!(app.store.recent_audit(100).await.unwrap().iter().filter(|e| e.action.starts_with("account.")).count(), 0);

        let (adm, _) = admin(&app, "root@example.com").await;
        let adm_csrf = app.csrf(&adm, "/admin").await;
        for (method, path) in &listed {
            let path = concrete(path);
            let res = send(&app, &adm, method, &path, &adm_csrf).await;
            assert_ne!(res.status(), StatusCode::FORBIDDEN, "admin {method} {path}");
            assert_ne!(location(&res), "/login", "admin {method} {path}");
            assert!(!res.status().is_server_error(), "admin {method} {path}: {}", res.status());
        }
    }
}

/// A `multipart/form-data` body, built by hand: `(name, value)` fields and an optional file.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----turnpike-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    if let Some((filename, bytes)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"openapi\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_multipart(app: &TestApp, client: &Client, path: &str, fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Response {
    let (content_type, body) = multipart(fields, file);
    client.post(app.url(path)).header("content-type", content_type).body(body).send().await.expect("POST multipart")
}

/// The API form's fields with `csrf`, overridden by `extra`.
fn api_fields<'a>(csrf: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("csrf", csrf),
        ("name", "Pets"),
        ("slug", "pets"),
        ("description", "Adopt a pet."),
        ("route_prefix", "/pets/v1"),
        ("host", ""),
        ("upstream_url", "http://127.0.0.1:9/v1"),
        ("upstream_weight", "3"),
        ("upstream_url", "https://pets-b.internal:8443"),
        ("upstream_weight", "1"),
        ("upstream_url", ""),
        ("upstream_weight", ""),
        ("visibility", "public"),
        ("lifecycle", "beta"),
    ];
    for (k, v) in extra {
        match f.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v,
            None => f.push((k, v)),
        }
    }
    f
}

const PETS_YAML: &str = "openapi: 3.1.0
info:
  title: Pet store
  version: '2.4'
  description: Pets to adopt.
paths:
  /pets:
    get:
      summary: List pets
      responses:
        200:
          description: The pets.
  /pets/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses:
        '200': {description: One pet.}
";

#[tokio::test]
async fn publishing_by_uploading_a_spec_lists_the_api_in_the_catalog() {
    for app in each("admin_publish").await {
        let (adm, admin_id) = admin(&app, "root@example.com").await;
        let csrf = app.csrf(&adm, "/admin/apis/new").await;
        let before = app.store.latest_change().await.unwrap();
        let res = post_multipart(&app, &adm, "/admin/apis", &api_fields(&csrf, &[]), Some(("pets.yaml", PETS_YAML.as_bytes()))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", res.text().await.unwrap());
        let loc = location(&res);
        let id: i64 = loc.strip_prefix("/admin/apis/").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("location {loc}"));

        let api = app.store.get_api(id).await.unwrap();
        assert_eq!((api.slug.as_str(), api.visibility, api.route_prefix.as_str()), ("pets", Visibility::Public, "/pets/v1"));
        assert_eq!(
            api.upstreams.iter().map(|u| (u.url.as_str(), u.weight)).collect::<Vec<_>>(),
            [("http://127.0.0.1:9/v1", 3), ("https://pets-b.internal:8443", 1)]
        );
        assert_eq!(app.store.api_lifecycle(id).await.unwrap().as_str(), "beta");
        // Gateways learn of it from the change log.
        let changes = app.store.changes_since(before, 100).await.unwrap();
        assert!(changes.iter().any(|c| c.kind == ChangeKind::Api && c.ref_id == id.to_string()), "{changes:?}");
        let audit = app.store.recent_audit(10).await.unwrap();
        let entry = audit.iter().find(|e| e.action == "api.create").expect("audited");
        assert_eq!((entry.actor_id, entry.target.as_str()), (Some(admin_id), format!("api:{id}").as_str()));
        assert!(entry.detail.contains("3.1.0") && entry.detail.contains("2 operations"), "{}", entry.detail);

        // The catalog lists it and serves the document, as JSON.
        let visitor = browser();
        let html = app.get(&visitor, "/").await.text().await.unwrap();
        assert!(html.contains(r#"href="/apis/pets""#), "{html}");
        let res = app.get(&visitor, "/apis/pets/openapi.json").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/json");
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["info"]["title"], "Pet store");
        assert_eq!(doc["paths"]["/pets"]["get"]["responses"]["200"]["description"], "The pets.");

        // The edit page shows the stored document and the settings.
        let html = app.get(&adm, &loc).await.text().await.unwrap();
        assert!(html.contains(r#"id="spec-summary""#) && html.contains("Pet store"), "{html}");
        assert!(html.contains(r#"value="https://pets-b.internal:8443""#));
        assert!(app.get(&adm, "/admin/apis").await.text().await.unwrap().contains(r#"href="/admin/apis/1""#));

        // Name and description may come from the document.
        let csrf = app.csrf(&adm, "/admin/apis/new").await;
        let fields = api_fields(&csrf, &[("name", ""), ("description", ""), ("slug", "pets2"), ("route_prefix", "/pets/v2")]);
        let res = post_multipart(&app, &adm, "/admin/apis", &fields, Some(("pets.yaml", PETS_YAML.as_bytes()))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let second = app.store.get_api_by_slug("pets2").await.unwrap();
        assert_eq!((second.name.as_str(), second.description.as_str()), ("Pet store", "Pets to adopt."));

        // Editing without a file keeps the document; making it a draft takes it off the catalog.
        let csrf = csrf_from(&html);
        let res = post_multipart(&app, &adm, &loc, &api_fields(&csrf, &[("visibility", "draft"), ("name", "Pets II")]), None).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let api = app.store.get_api(id).await.unwrap();
        assert_eq!((api.name.as_str(), api.visibility), ("Pets II", Visibility::Draft));
        assert!(api.openapi.as_deref().is_some_and(|d| d.contains("Pet store")));
        assert_eq!(app.get(&visitor, "/apis/pets").await.status(), StatusCode::NOT_FOUND);
        assert!(app.store.recent_audit(10).await.unwrap().iter().any(|e| e.action == "api.update" && e.actor_id == Some(admin_id)));
    }
}

#[tokio::test]
async fn invalid_specs_and_fields_show_every_error_and_store_nothing() {
    for app in each("admin_invalid").await {
        let (adm, _) = admin(&app, "root@example.com").await;
        let csrf = app.csrf(&adm, "/admin/apis/new").await;
        let cases: [(&str, &str, &[&str]); 5] = [
            ("swagger 2", "swagger: '2.0'\ninfo: {title: Old, version: '1'}\npaths: {}\n", &["Swagger 2.0"]),
            (
                "openapi 2",
                r#"{"openapi": "2.0", "info": {"title": "Old", "version": "1"}, "paths": {}}"#,
                &["Turnpike accepts OpenAPI 3.0.x and 3.1.x"],
            ),
            ("no paths", "openapi: 3.0.3\ninfo: {title: T, version: '1'}\n", &["`paths` is missing"]),
            ("no title or version", "openapi: 3.0.3\ninfo: {}\npaths: {}\n", &["`info.title` is missing", "`info.version` is missing"]),
            ("broken yaml", "openapi: 3.1.0\ninfo: [unclosed\n", &["not valid YAML"]),
        ];
        for (case, spec, wanted) in cases {
            let res = post_multipart(&app, &adm, "/admin/apis", &api_fields(&csrf, &[]), Some(("spec.yaml", spec.as_bytes()))).await;
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{case}");
            let html = unescape(&res.text().await.unwrap());
            assert!(html.contains("Nothing was saved"), "{case}");
            for w in wanted {
                assert!(html.contains(w), "{case}: {w} in {html}");
            }
            // The typed values come back.
            assert!(html.contains(r#"value="/pets/v1""#), "{case}");
        }
        // Field errors, all at once.
        let mut bad = api_fields(
            &csrf,
            &[("slug", "Not A Slug"), ("route_prefix", "pets"), ("host", "http://x"), ("upstream_url", "ftp://files.example")],
        );
        bad.extend([("upstream_url", "http://ok.example"), ("upstream_weight", "0")]);
        let res = post_multipart(&app, &adm, "/admin/apis", &bad, None).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = unescape(&res.text().await.unwrap());
        for w in [
            "The slug is used in URLs",
            "The route prefix is a path",
            "Enter a host name",
            "Target 1: enter an http:// or https:// URL",
            "Target 4: the weight is a whole number from 1 to 1000",
        ] {
            assert!(html.contains(w), "{w} in {html}");
        }
        let none = api_fields(&csrf, &[("upstream_url", ""), ("upstream_weight", "")]);
        let none: Vec<_> = none.into_iter().filter(|(k, v)| !k.starts_with("upstream") || v.is_empty()).collect();
        let html = post_multipart(&app, &adm, "/admin/apis", &none, None).await.text().await.unwrap();
        assert!(html.contains("Add at least one upstream target"), "{html}");
        assert!(app.store.list_apis().await.unwrap().is_empty(), "nothing stored");
        assert!(app.store.recent_audit(10).await.unwrap().iter().all(|e| !e.action.starts_with("api.")), "nothing audited");

        // An invalid document on an existing API changes nothing, not even the other fields.
        let (id, _) = seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let before = app.store.get_api(id).await.unwrap();
        let fields = api_fields(&csrf, &[("slug", "echo"), ("route_prefix", "/echo"), ("name", "Renamed")]);
        let res = post_multipart(&app, &adm, &format!("/admin/apis/{id}"), &fields, Some(("spec.json", b"{\"openapi\": \"3.1.0\"}"))).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let after = app.store.get_api(id).await.unwrap();
        assert_eq!((after.name, after.openapi, after.updated_at), (before.name, before.openapi, before.updated_at));

        // A slug or a route another API uses is refused.
        let res = post_multipart(&app, &adm, "/admin/apis", &api_fields(&csrf, &[("route_prefix", "/echo")]), None).await;
        assert!(unescape(&res.text().await.unwrap()).contains("Another API already uses this route prefix"));
        let res = post_multipart(&app, &adm, "/admin/apis", &api_fields(&csrf, &[("slug", "echo")]), None).await;
        assert!(unescape(&res.text().await.unwrap()).contains("Another API already uses this slug"));
        assert_eq!(app.store.list_apis().await.unwrap().len(), 1);

        // Without the token, the upload is refused by the CSRF guard.
        let res = post_multipart(&app, &adm, "/admin/apis", &api_fields("wrong", &[]), Some(("pets.yaml", PETS_YAML.as_bytes()))).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.store.list_apis().await.unwrap().len(), 1);
    }
}

/// An OpenAPI 3.0 document of `ops` operations, each with a sizeable schema, as JSON.
fn big_spec(ops: usize) -> Vec<u8> {
    let mut paths = serde_json::Map::new();
    for i in 0..ops {
        let props: serde_json::Map<String, Value> = (0..40)
            .map(|p| {
                (
                    format!("field_{p}"),
                    json!({"type": "string", "description": format!("Field {p} of resource {i}: {}", "lorem ipsum ".repeat(8))}),
                )
            })
            .collect();
        paths.insert(
            format!("/resources{i}/{{id}}"),
            json!({"get": {
                "operationId": format!("getResource{i}"),
                "summary": format!("Fetch resource {i}"),
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object", "properties": props}}}}}
            }}),
        );
    }
    serde_json::to_vec(&json!({"openapi": "3.0.3", "info": {"title": "Big", "version": "1.0.0"}, "paths": paths})).unwrap()
}

#[tokio::test]
async fn a_three_megabyte_spec_with_500_operations_imports() {
    let spec = big_spec(500);
    assert!(spec.len() > 3 * 1024 * 1024, "generated {} bytes", spec.len());
    for app in each("admin_big_spec").await {
        let (adm, _) = admin(&app, "root@example.com").await;
        let (id, _) = seed_api(&app.store, "big", "Big", Visibility::Public).await;
        let csrf = app.csrf(&adm, &format!("/admin/apis/{id}")).await;
        let fields = api_fields(&csrf, &[("slug", "big"), ("route_prefix", "/big"), ("name", "Big")]);
        let res = post_multipart(&app, &adm, &format!("/admin/apis/{id}"), &fields, Some(("big.json", &spec))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", res.text().await.unwrap_or_default());
        let html = app.get(&adm, &format!("/admin/apis/{id}")).await.text().await.unwrap();
        assert!(html.contains("<dt>Operations</dt><dd>500</dd>"), "{html}");
        let doc: Value = app.get(&browser(), "/apis/big/openapi.json").await.json().await.unwrap();
        assert_eq!(doc["paths"].as_object().unwrap().len(), 500);
        assert_eq!(doc, serde_json::from_slice::<Value>(&spec).unwrap());
    }
}

#[tokio::test]
async fn plans_are_added_and_their_limits_edited() {
    for app in each("admin_plans").await {
        let (adm, admin_id) = admin(&app, "root@example.com").await;
        let (api_id, free_id) = seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let page = format!("/admin/apis/{api_id}");
        let csrf = app.csrf(&adm, &page).await;
        let plans = format!("/admin/apis/{api_id}/plans");
        let form = [
            ("csrf", csrf.as_str()),
            ("name", "Pro"),
            ("slug", "pro"),
            ("rate_per_second", "100"),
            ("burst", "200"),
            ("monthly_quota", ""),
            ("is_default", "on"),
        ];
        let res = app.post(&adm, &plans, &form).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let all = app.store.list_plans(api_id).await.unwrap();
        let pro = all.iter().find(|p| p.slug == "pro").expect("created");
        assert_eq!((pro.rate_per_second, pro.burst, pro.monthly_quota, pro.is_default), (100, 200, None, true));
        assert_eq!((pro.flat_price_minor, pro.unit_price_minor_per_1000), (0, 0));
        assert!(!all.iter().find(|p| p.id == free_id).unwrap().is_default, "one default per API");

        // Bad limits: every field's error, nothing stored.
        let bad =
            [("csrf", csrf.as_str()), ("name", ""), ("slug", "Pro!"), ("rate_per_second", "0"), ("burst", "x"), ("monthly_quota", "-5")];
        let res = app.post(&adm, &plans, &bad).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = unescape(&res.text().await.unwrap());
        for w in [
            "Enter a name.",
            "The plan's slug",
            "The rate is a whole number",
            "The burst is a whole number",
            "The monthly quota is a whole number",
        ] {
            assert!(html.contains(w), "{w}");
        }
        assert_eq!(app.store.list_plans(api_id).await.unwrap().len(), 2);

        // Edit the free plan's limits: a 1,000 quota becomes 5,000; it becomes the default again.
        let before = app.store.latest_change().await.unwrap();
        let edit = format!("/admin/plans/{free_id}");
        assert!(app.get(&adm, &edit).await.text().await.unwrap().contains(r#"value="1000""#));
        let form = [
            ("csrf", csrf.as_str()),
            ("name", "Free"),
            ("slug", "free"),
            ("rate_per_second", "5"),
            ("burst", "10"),
            ("monthly_quota", "5,000"),
            ("is_default", "on"),
        ];
        assert_eq!(app.post(&adm, &edit, &form).await.status(), StatusCode::SEE_OTHER);
        let free = app.store.get_plan(free_id).await.unwrap();
        assert_eq!((free.rate_per_second, free.burst, free.monthly_quota, free.is_default), (5, 10, Some(5000), true));
        assert!(!app.store.get_plan(pro.id).await.unwrap().is_default);
        let changes = app.store.changes_since(before, 10).await.unwrap();
        assert!(changes.iter().any(|c| c.kind == ChangeKind::Api && c.ref_id == api_id.to_string()));
        let audit = app.store.recent_audit(10).await.unwrap();
        for action in ["plan.create", "plan.update"] {
            assert!(audit.iter().any(|e| e.action == action && e.actor_id == Some(admin_id)), "{action}");
        }
        assert_eq!(app.get(&adm, "/admin/plans/999").await.status(), StatusCode::NOT_FOUND);

        // The Redis outage policy: fail open for 120 s, shown again on the form; a bad value is
        // refused and changes nothing; empty fails closed again.
        assert_eq!(app.store.plan_failure_policy(free_id).await.unwrap(), None, "fails closed by default");
        let with = |secs: &'static str| {
            [
                ("csrf", csrf.clone()),
                ("name", "Free".to_owned()),
                ("slug", "free".to_owned()),
                ("rate_per_second", "5".to_owned()),
                ("burst", "10".to_owned()),
                ("monthly_quota", "5000".to_owned()),
                ("is_default", "on".to_owned()),
                ("fail_open_seconds", secs.to_owned()),
            ]
        };
        let form = with("120");
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(app.post(&adm, &edit, &form).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.store.plan_failure_policy(free_id).await.unwrap(), Some(120));
        assert!(app
            .get(&adm, &edit)
            .await
            .text()
            .await
            .unwrap()
            .contains(r#"name="fail_open_seconds" type="number" min="1" max="86400" value="120""#));
        for bad in ["0", "86401", "soon"] {
            let form = with(bad);
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let res = app.post(&adm, &edit, &form).await;
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert!(unescape(&res.text().await.unwrap()).contains("Seconds from 1 to 86,400"));
            assert_eq!(app.store.plan_failure_policy(free_id).await.unwrap(), Some(120), "{bad} changed nothing");
        }
        let form = with("");
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(app.post(&adm, &edit, &form).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.store.plan_failure_policy(free_id).await.unwrap(), None);
    }
}

/// Create an app and key as the developer; returns (key id, the secret).
async fn developer_key(app: &TestApp, dev: &Client) -> (i64, String) {
    let app_id = app.create_app(dev, "Shop").await;
    let html = app.create_key(dev, app_id, "prod").await.text().await.unwrap();
    let secret = element_text(&html, "new-api-key").expect("secret shown once");
    let keys = app.store.list_keys(app_id).await.unwrap();
    (keys[0].id, secret)
}

#[tokio::test]
async fn suspending_a_developer_or_a_key_is_refused_by_the_gateways_key_lookup() {
    for app in each("admin_suspend").await {
        let dev = app.developer("ada@example.com").await;
        let (key_id, secret) = developer_key(&app, &dev).await;
        let hash = ApiKey::verify(&secret).expect("valid key");
        let (adm, admin_id) = admin(&app, "root@example.com").await;
        let dev_id = app.store.key_owner(key_id).await.unwrap().1;
        let page = format!("/admin/developers/{dev_id}");
        let html = app.get(&adm, &page).await.text().await.unwrap();
        assert!(html.contains(&format!(r#"action="/admin/keys/{key_id}/suspend""#)), "{html}");
        assert!(!html.contains(&secret), "never the secret");
        let csrf = csrf_from(&html);

        // One key.
        let before = app.store.latest_change().await.unwrap();
        let res = app.post(&adm, &format!("/admin/keys/{key_id}/suspend"), &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let auth = app.store.key_auth(&hash).await.unwrap().unwrap();
        assert_eq!(auth.status, KeyStatus::Suspended, "the gateway's lookup sees the suspension");
        let changes = app.store.changes_since(before, 10).await.unwrap();
        assert!(
            changes.iter().any(|c| c.kind == ChangeKind::Key && c.ref_id == hash.to_hex()),
            "gateways drop the cached key: {changes:?}"
        );
        assert!(app.get(&adm, &page).await.text().await.unwrap().contains(&format!(r#"action="/admin/keys/{key_id}/reactivate""#)));
        // Reactivated, it works again.
        assert_eq!(app.post(&adm, &format!("/admin/keys/{key_id}/reactivate"), &[("csrf", &csrf)]).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.store.key_auth(&hash).await.unwrap().unwrap().status, KeyStatus::Active);

        // The whole account.
        let before = app.store.latest_change().await.unwrap();
        let res = app.post(&adm, &format!("/admin/developers/{dev_id}/suspend"), &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let auth = app.store.key_auth(&hash).await.unwrap().unwrap();
        assert_eq!((auth.status, auth.account_status), (KeyStatus::Active, AccountStatus::Suspended), "the key is refused for its owner");
        let changes = app.store.changes_since(before, 10).await.unwrap();
        assert!(changes.iter().any(|c| c.kind == ChangeKind::Account && c.ref_id == dev_id.to_string()));
        assert_eq!(location(&app.get(&dev, "/dashboard").await), "/login", "the developer's session ends");
        assert!(app.get(&adm, &page).await.text().await.unwrap().contains(r#"id="account-status">suspended<"#));
        app.post(&adm, &format!("/admin/developers/{dev_id}/reactivate"), &[("csrf", &csrf)]).await;
        assert_eq!(app.store.key_auth(&hash).await.unwrap().unwrap().account_status, AccountStatus::Active);

        // Every action audited, by the admin, naming its target, never the secret.
        let audit = app.store.recent_audit(50).await.unwrap();
        for (action, target) in [
            ("key.suspend", format!("key:{key_id}")),
            ("key.reactivate", format!("key:{key_id}")),
            ("account.suspend", format!("account:{dev_id}")),
            ("account.reactivate", format!("account:{dev_id}")),
        ] {
            assert!(audit.iter().any(|e| e.action == action && e.target == target && e.actor_id == Some(admin_id)), "{action} {target}");
        }
        assert!(audit.iter().all(|e| !e.detail.contains(&secret) && !e.detail.contains(PASSWORD)));
        // Admin accounts are not managed as developers.
        assert_eq!(app.get(&adm, &format!("/admin/developers/{admin_id}")).await.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn developers_are_searched_by_email_and_paged() {
    for app in each("admin_devs").await {
        for i in 0..30 {
            let email = Email::parse(&format!("user{i:02}@{}.example", if i % 2 == 0 { "even" } else { "odd" })).unwrap();
            app.store.create_account(&email, "x", Role::Developer, NOW).await.unwrap();
        }
        let (adm, _) = admin(&app, "root@example.com").await;
        let html = app.get(&adm, "/admin").await.text().await.unwrap();
        assert_eq!(element_text(&html, "count-developers").as_deref(), Some("30"), "admins are not counted");
        let page1 = app.get(&adm, "/admin/developers").await.text().await.unwrap();
        assert_eq!(page1.matches(r#"<a href="/admin/developers/"#).count(), 25);
        assert!(page1.contains("user29@odd.example"), "{page1}");
        assert!(!page1.contains(r#"<a href="/admin/developers/1">root@example.com"#));
        assert!(page1.contains(r#"href="/admin/developers?page=2""#));
        let page2 = app.get(&adm, "/admin/developers?page=2").await.text().await.unwrap();
        assert_eq!(page2.matches(r#"<a href="/admin/developers/"#).count(), 5);
        assert!(page2.contains("user00@even.example") && !page2.contains("rel=\"next\""));
        let odd = app.get(&adm, "/admin/developers?q=ODD.example").await.text().await.unwrap();
        assert_eq!(odd.matches(r#"<a href="/admin/developers/"#).count(), 15);
        assert!(!odd.contains("even.example"));
        // LIKE wildcards are searched for literally.
        let none = app.get(&adm, "/admin/developers?q=%25").await.text().await.unwrap();
        assert!(none.contains("No developer"), "{none}");
        assert_eq!(app.get(&adm, "/admin/developers?page=abc").await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn the_audit_log_filters_by_action_and_actor() {
    for app in each("admin_audit").await {
        let (adm, admin_id) = admin(&app, "root@example.com").await;
        for i in 0..30 {
            app.store.audit(Some(admin_id), "key.suspend", &format!("key:{i}"), "", NOW + i).await.unwrap();
        }
        app.store.audit(None, "api.update", "api:1", "by the CLI", NOW).await.unwrap();
        let html = app.get(&adm, "/admin/audit?action=key.suspend").await.text().await.unwrap();
        assert_eq!(html.matches("<code>key.suspend</code>").count(), 25);
        assert!(!html.contains("<code>api.update</code>"));
        assert!(html.contains("page=2"));
        let html = app.get(&adm, "/admin/audit?action=key.suspend&page=2").await.text().await.unwrap();
        assert_eq!(html.matches("<code>key.suspend</code>").count(), 5);
        let html = app.get(&adm, "/admin/audit?action=api.").await.text().await.unwrap();
        assert!(html.contains("by the CLI") && html.contains(">system<") && !html.contains("<code>key.suspend</code>"));
        let html = app.get(&adm, "/admin/audit?actor=root%40example.com&action=").await.text().await.unwrap();
        assert_eq!(html.matches("<code>key.suspend</code>").count(), 25);
        assert!(!html.contains("by the CLI"));
        let html = app.get(&adm, "/admin/audit?actor=nobody%40example.com").await.text().await.unwrap();
        assert!(unescape(&html).contains("No account has the email nobody@example.com") && html.contains("No entries match"));
    }
}
