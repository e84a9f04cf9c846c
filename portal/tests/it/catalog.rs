use reqwest::StatusCode;
use turnpike_store::Visibility;

use crate::helpers::{browser, each, seed_api, unescape, GATEWAY_URL};

#[tokio::test]
async fn the_catalog_lists_public_apis_with_their_plans() {
    for app in each("catalog").await {
        seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        seed_api(&app.store, "hidden", "Hidden draft", Visibility::Draft).await;
        let client = browser();
        let res = app.get(&client, "/").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().get("set-cookie").is_none(), "anonymous visitors get no session");
        let html = res.text().await.unwrap();
        assert!(html.contains(r#"href="/apis/echo""#));
        assert!(
            html.contains(r#"<span class="plan-price">Free</span><span class="plan-meta">10 req/s · 1,000 requests/month</span>"#),
            "{html}"
        );
        assert!(!html.contains("Hidden draft"));

        let html = app.get(&client, "/apis/echo").await.text().await.unwrap();
        assert!(html.contains(&format!("{GATEWAY_URL}/echo")));
        assert!(unescape(&html).contains(&format!("curl -H \"Authorization: Bearer <your key>\" {GATEWAY_URL}/echo/hello")), "{html}");
        assert!(html.contains(r#"href="/apis/echo/openapi.json""#));

        let res = app.get(&client, "/apis/echo/openapi.json").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert!(res.text().await.unwrap().starts_with(r#"{"openapi":"3.1.0""#));

        for path in ["/apis/hidden", "/apis/hidden/openapi.json", "/apis/nope", "/no/such/page"] {
            let res = app.get(&client, path).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(res.text().await.unwrap().contains("Page not found"), "{path}");
        }
    }
}
