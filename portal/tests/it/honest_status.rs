//! What the portal says about an API is what the gateway does with it (issue 12): an API whose
//! stored targets the gateway cannot route is never shown as published or routable, and the API
//! page's quick start calls a real `GET` of its OpenAPI document.

use reqwest::StatusCode;
use turnpike_store::{Role, Visibility};

use crate::helpers::{browser, each, element_text, seed_api, unescape, TestApp, GATEWAY_URL};

/// Overwrite an API's row behind the store's back (older data, direct SQL), bumping `updated_at`
/// as any change does.
async fn set_column(app: &TestApp, slug: &str, column: &str, value: &str) {
    let sql = format!("UPDATE apis SET {column} = $1, updated_at = updated_at + 1 WHERE slug = $2");
    let n = if app.store.backend() == turnpike_store::Backend::Sqlite {
        let pool = sqlx::SqlitePool::connect(&app.db_url).await.unwrap();
        let n = sqlx::query(&sql).bind(value).bind(slug).execute(&pool).await.unwrap().rows_affected();
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
        let n = sqlx::query(&sql).bind(value).bind(slug).execute(&pool).await.unwrap().rows_affected();
        pool.close().await;
        n
    };
    assert_eq!(n, 1, "{slug} updated");
}

#[tokio::test]
async fn an_api_with_unroutable_stored_targets_is_never_shown_as_published() {
    for app in each("honest_status").await {
        let (ok_id, _) = seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let (broken_id, _) = seed_api(&app.store, "broken", "Broken API", Visibility::Public).await;
        seed_api(&app.store, "hidden", "Hidden API", Visibility::Private).await;
        set_column(&app, "broken", "upstreams", r#"[{"url":"ftp://files.example.com/v1","weight":1}]"#).await;
        set_column(&app, "hidden", "upstreams", r#"[{"url":"http://user:pw@10.0.0.5/","weight":1}]"#).await;
        // The gateway's own rule agrees: none of these targets would be routed.
        for api in app.store.list_apis().await.unwrap() {
            let routable = api.upstreams.iter().any(|u| turnpike_store::check_upstream_url(&u.url).is_ok());
            assert_eq!(routable, api.slug == "echo", "{}", api.slug);
        }

        // The admin console: "Not routed" with the reason, never "Published".
        let (adm, _) = app.login_new("root@example.com", Role::Admin).await;
        let html = unescape(&app.get(&adm, "/admin/apis").await.text().await.unwrap());
        let cell = |slug: &str| {
            let open = html.find(&format!(r#"id="routing-{slug}""#)).unwrap_or_else(|| panic!("row of {slug}: {html}"));
            html[open..open + html[open..].find("</td>").unwrap()].to_owned()
        };
        assert!(cell("echo").contains("Published"), "{}", cell("echo"));
        let broken = cell("broken");
        assert!(
            broken.contains("Not routed") && broken.contains("ftp://files.example.com/v1") && !broken.contains("Published"),
            "{broken}"
        );
        let hidden = cell("hidden");
        assert!(hidden.contains("Not routed") && hidden.contains("credentials in the URL are not supported"), "{hidden}");
        let detail = app.get(&adm, &format!("/admin/apis/{broken_id}")).await.text().await.unwrap();
        assert!(element_text(&detail, "not-routed").is_some(), "{detail}");
        let detail = app.get(&adm, &format!("/admin/apis/{ok_id}")).await.text().await.unwrap();
        assert!(element_text(&detail, "not-routed").is_none());

        // The catalog: not listed; its page says unavailable, offers no subscription, no "Try it".
        for client in [browser(), app.developer("dev@example.com").await] {
            let index = app.get(&client, "/").await.text().await.unwrap();
            assert!(index.contains(r#"href="/apis/echo""#) && !index.contains("Broken API"), "{index}");
            let res = app.get(&client, "/apis/broken").await;
            assert_eq!(res.status(), StatusCode::OK);
            let page = res.text().await.unwrap();
            assert_eq!(element_text(&page, "api-status").as_deref(), Some("Unavailable"));
            assert!(element_text(&page, "api-unavailable").is_some(), "{page}");
            for offer in ["Published", r#"id="try-it""#, "swagger-ui-bundle.js", r#"action="/apis/broken/subscribe""#, "ftp://"] {
                assert!(!page.contains(offer), "{offer} on the page of an unroutable API: {page}");
            }
            let page = app.get(&client, "/apis/echo").await.text().await.unwrap();
            assert_eq!(element_text(&page, "api-status").as_deref(), Some("Published"));
            assert!(page.contains(r#"id="try-it""#));
        }
        // An admin is told why.
        let page = unescape(&app.get(&adm, "/apis/broken").await.text().await.unwrap());
        assert!(page.contains("not routed: upstream target 1 (ftp://files.example.com/v1)"), "{page}");

        // The JSON catalog lists it no more than the HTML one does.
        let list: serde_json::Value = browser().get(app.url("/api/v1/apis")).send().await.unwrap().json().await.unwrap();
        let slugs: Vec<&str> = list.as_array().unwrap().iter().filter_map(|a| a["slug"].as_str()).collect();
        assert!(slugs.contains(&"echo") && !slugs.contains(&"broken"), "{slugs:?}");
        // A subscription posted anyway is refused and nothing is subscribed.
        let dev = app.developer("sub@example.com").await;
        let app_id = app.create_app(&dev, "mine").await;
        let plan = app.store.list_plans(broken_id).await.unwrap()[0].id;
        let csrf = app.csrf(&dev, "/dashboard").await;
        let before = format!("{:?}", app.store.list_subscriptions(app_id).await.unwrap());
        let changes = app.store.latest_change().await.unwrap();
        let form = [("csrf", csrf.as_str()), ("app_id", &app_id.to_string()), ("plan_id", &plan.to_string())];
        let r = app.post(&dev, "/apis/broken/subscribe", &form).await;
        assert_eq!(crate::helpers::location(&r), "/apis/broken");
        let page = unescape(&app.get(&dev, "/apis/broken").await.text().await.unwrap());
        assert!(page.contains("This API is unavailable right now"), "the refusal is said: {page}");
        assert_eq!(format!("{:?}", app.store.list_subscriptions(app_id).await.unwrap()), before, "nothing changed");
        assert_eq!(app.store.latest_change().await.unwrap(), changes);
    }
}

#[tokio::test]
async fn the_quick_start_calls_a_real_get_of_the_document() {
    for app in each("quick_start").await {
        seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let client = browser();
        let curl = |html: &str| element_text(html, "curl-example").map(|c| unescape(&c));
        // A document without a GET: the placeholder.
        let html = app.get(&client, "/apis/echo").await.text().await.unwrap();
        assert_eq!(curl(&html), Some(format!("curl -H \"Authorization: Bearer <your key>\" {GATEWAY_URL}/echo/hello")));

        // A small document: its first GET without path parameters.
        let small = r#"{"openapi":"3.0.3","info":{"title":"Echo","version":"1"},"paths":{
            "/messages/{id}":{"get":{"parameters":[{"name":"id","in":"path","required":true,"schema":{"type":"integer","example":17}}]}},
            "/messages":{"post":{"responses":{"201":{"description":"made"}}}},
            "/status":{"get":{"responses":{"200":{"description":"ok"}}}}}}"#;
        set_column(&app, "echo", "openapi", small).await;
        let html = app.get(&client, "/apis/echo").await.text().await.unwrap();
        assert_eq!(curl(&html), Some(format!("curl -H \"Authorization: Bearer <your key>\" \"{GATEWAY_URL}/echo/status\"")));

        // Only GETs with path parameters: filled from the parameter's example.
        set_column(&app, "echo", "openapi", &small.replace(r#""/status":{"get""#, r#""/status":{"put""#)).await;
        let html = app.get(&client, "/apis/echo").await.text().await.unwrap();
        assert_eq!(curl(&html), Some(format!("curl -H \"Authorization: Bearer <your key>\" \"{GATEWAY_URL}/echo/messages/17\"")));

        // A realistic document (the portal's own API description, 49 KB).
        set_column(&app, "echo", "openapi", include_str!("../snapshots/openapi.json")).await;
        let html = app.get(&client, "/apis/echo").await.text().await.unwrap();
        assert_eq!(curl(&html), Some(format!("curl -H \"Authorization: Bearer <your key>\" \"{GATEWAY_URL}/echo/api/v1/admin/apis\"")));
    }
}
