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
