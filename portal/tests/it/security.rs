use reqwest::StatusCode;

use crate::helpers::{browser, each};

#[tokio::test]
async fn posts_without_a_valid_csrf_token_are_refused_and_change_nothing() {
    for app in each("csrf").await {
        let dev = app.developer("ada@example.com").await;
        let good = app.csrf(&dev, "/dashboard").await;
        let cases: [(&str, Vec<(&str, &str)>); 3] = [
            ("missing", vec![("name", "Bot")]),
            ("wrong", vec![("csrf", "00"), ("name", "Bot")]),
            ("empty", vec![("csrf", ""), ("name", "Bot")]),
        ];
        for (case, form) in &cases {
            let res = app.post(&dev, "/apps", form).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{case}");
            assert!(res.text().await.unwrap().contains("Your form expired, please retry"), "{case}");
        }
        // The right token from a foreign page is refused too.
        let res = dev
            .post(app.url("/apps"))
            .header("origin", "https://evil.example")
            .form(&[("csrf", good.as_str()), ("name", "Bot")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        // A signup without a session has no token to match.
        let res = app.post(&browser(), "/signup", &[("email", "eve@example.com"), ("password", "long enough password")]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);

        assert_eq!(app.store.count_accounts().await.unwrap(), 1);
        let html = app.get(&dev, "/dashboard").await.text().await.unwrap();
        assert!(html.contains("No apps yet"));

        // The same form with the token and a same-origin Origin works.
        let res = dev
            .post(app.url("/apps"))
            .header("origin", app.base.as_str())
            .form(&[("csrf", good.as_str()), ("name", "Bot")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_assets_are_embedded() {
    for app in each("headers").await {
        let client = browser();
        for path in ["/", "/signup", "/no/such/page", "/static/turnpike.css"] {
            let res = app.get(&client, path).await;
            let h = res.headers();
            assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(h["x-frame-options"], "DENY", "{path}");
            assert_eq!(h["referrer-policy"], "same-origin", "{path}");
            let csp = h["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        }
        let res = app.get(&client, "/static/turnpike.css").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
        assert!(res.headers()["cache-control"].to_str().unwrap().contains("max-age="));
        assert!(res.text().await.unwrap().contains("--primary"));
        let res = app.get(&client, "/static/turnpike.js").await;
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
        assert_eq!(app.get(&client, "/static/nope.css").await.status(), StatusCode::NOT_FOUND);

        // Pages load nothing from elsewhere and run no inline script.
        let html = app.get(&client, "/signup").await.text().await.unwrap();
        assert!(!html.contains("http://") && !html.contains("https://"), "no external URLs");
        assert!(!html.contains("<script>") && !html.contains("style="), "no inline script or style");
    }
}

/// Anonymous and developer requests cannot make the portal do large work: listing pages read no
/// OpenAPI document, the docs' rewritten document is made once per stored version, and only an
/// administrator's session lets the CSRF guard read a 16 MiB upload.
#[tokio::test]
async fn listings_read_no_documents_the_rewrite_is_cached_per_version_and_big_bodies_need_an_admin() {
    for app in each("anonymous_work").await {
        let (api_id, _) = crate::helpers::seed_api(&app.store, "docs", "Docs", turnpike_store::Visibility::Public).await;
        let api = app.store.get_api(api_id).await.unwrap();
        let settings = turnpike_store::ApiSettings {
            slug: api.slug.clone(),
            name: api.name.clone(),
            description: api.description.clone(),
            route_prefix: api.route_prefix.clone(),
            host: api.host.clone(),
            upstreams: api.upstreams.clone(),
            visibility: api.visibility,
            allow_query_key: api.allow_query_key,
            lifecycle: app.store.api_lifecycle(api_id).await.unwrap(),
        };
        let doc = |title: &str| format!(r#"{{"openapi":"3.1.0","info":{{"title":"{title}","version":"1"}},"paths":{{}}}}"#);
        app.store.update_api(api_id, &settings, Some(&doc("First")), crate::helpers::NOW).await.unwrap();
        let listed = app.store.list_apis().await.unwrap();
        let listed = listed.iter().find(|a| a.id == api_id).unwrap();
        assert_eq!(listed.openapi.as_deref(), Some(""), "a list knows there is a document without reading it");
        assert_eq!(app.store.api_document(api_id).await.unwrap(), Some(doc("First")));

        let anon = browser();
        let title = |v: serde_json::Value| v["info"]["title"].as_str().unwrap_or_default().to_owned();
        let get = || async { app.get(&anon, "/apis/docs/openapi.gateway.json").await.json::<serde_json::Value>().await.unwrap() };
        assert_eq!(title(get().await), "First");
        assert_eq!(title(get().await), "First", "served again (from the cache)");
        // A new upload in the same second is a new version: never the stale rendering.
        app.store.update_api(api_id, &settings, Some(&doc("Second version")), crate::helpers::NOW).await.unwrap();
        assert_eq!(title(get().await), "Second version");

        // A multipart body to the admin console: anonymous visitors (no session token) are refused
        // before the body is read, developers are held to the small form limit (413).
        let big = vec![b'x'; 256 * 1024];
        let multipart = |csrf: &str| {
            let mut body = format!("--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"spec\"; filename=\"a.json\"\r\n\r\n").into_bytes();
            body.extend_from_slice(&big);
            body.extend_from_slice(b"\r\n--XyZ--\r\n");
            body
        };
        let send = |client: &reqwest::Client, csrf: &str| {
            client.post(app.url("/admin/apis")).header("content-type", "multipart/form-data; boundary=XyZ").body(multipart(csrf)).send()
        };
        assert_eq!(send(&anon, "none").await.unwrap().status(), StatusCode::FORBIDDEN);
        let dev = app.developer("ada@example.com").await;
        let csrf = app.csrf(&dev, "/dashboard").await;
        assert_eq!(send(&dev, &csrf).await.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
