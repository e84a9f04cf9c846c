use reqwest::StatusCode;
use turnpike_store::clock::hour_start;
use turnpike_store::domain::ApiKey;
use turnpike_store::{KeyStatus, UsageRow, Visibility};

use crate::helpers::{each, element_text, location, seed_api, unescape, GATEWAY_URL, NOW};

#[tokio::test]
async fn a_new_app_gets_the_free_plans_and_a_key_that_the_gateway_accepts() {
    for app in each("app_and_key").await {
        seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        seed_api(&app.store, "secret", "Secret", Visibility::Draft).await;
        let dev = app.developer("ada@example.com").await;
        let app_id = app.create_app(&dev, "Billing bot").await;

        let html = app.get(&dev, &format!("/apps/{app_id}")).await.text().await.unwrap();
        assert!(html.contains("Billing bot"));
        assert!(html.contains(r#"href="/apis/echo">Echo</a>"#), "subscribed to the public API");
        assert!(!html.contains("Secret"), "not to the draft");
        assert!(html.contains("Created “Billing bot”"), "flash shown");
        let again = app.get(&dev, &format!("/apps/{app_id}")).await.text().await.unwrap();
        assert!(!again.contains("Created “Billing bot”"), "flash shown once");

        let res = app.create_key(&dev, app_id, "production").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let html = res.text().await.unwrap();
        let secret = element_text(&html, "new-api-key").expect("key element");
        let key = ApiKey::parse(&secret).expect("a well-formed key");
        let auth = app.store.key_auth(&key.hash()).await.unwrap().expect("key stored by hash");
        assert_eq!(auth.app_id, app_id);
        assert_eq!(auth.status, KeyStatus::Active);
        assert!(unescape(&html).contains(&format!("curl -H \"Authorization: Bearer {secret}\" {GATEWAY_URL}/echo/hello")), "{html}");
        assert!(html.contains("only time the full key is shown"));

        // Afterwards only the prefix is shown, and the secret is not in the audit log.
        let page = app.get(&dev, &format!("/apps/{app_id}")).await.text().await.unwrap();
        assert!(page.contains(&format!("{}…", key.display_prefix())));
        assert!(!page.contains(&secret));
        let audit = app.store.recent_audit(20).await.unwrap();
        assert!(audit.iter().any(|e| e.action == "app.create" && e.target == format!("app:{app_id}")));
        assert!(audit.iter().any(|e| e.action == "key.create" && e.target == format!("key:{}", auth.key_id)));
        assert!(audit.iter().all(|e| !e.detail.contains(&secret) && !e.target.contains(&secret)));
    }
}

#[tokio::test]
async fn revoking_a_key_refuses_it_from_then_on() {
    for app in each("revoke").await {
        let dev = app.developer("ada@example.com").await;
        let app_id = app.create_app(&dev, "Bot").await;
        let (key, key_id) = app.new_key(&dev, app_id, "ci").await;

        let csrf = app.csrf(&dev, &format!("/apps/{app_id}")).await;
        let res = app.post(&dev, &format!("/apps/{app_id}/keys/{key_id}/revoke"), &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), format!("/apps/{app_id}"));
        assert_eq!(app.store.key_auth(&key.hash()).await.unwrap().unwrap().status, KeyStatus::Revoked);
        let page = app.get(&dev, &format!("/apps/{app_id}")).await.text().await.unwrap();
        assert!(page.contains("Key revoked"));
        assert!(!page.contains(&format!("/keys/{key_id}/revoke")), "no revoke button for a revoked key");
        assert!(app.store.recent_audit(20).await.unwrap().iter().any(|e| e.action == "key.revoke"));
    }
}

#[tokio::test]
async fn another_developer_sees_404_for_apps_and_keys_that_are_not_theirs() {
    for app in each("isolation").await {
        let ada = app.developer("ada@example.com").await;
        let app_id = app.create_app(&ada, "Ada's app").await;
        let (key, key_id) = app.new_key(&ada, app_id, "main").await;

        let bob = app.developer("bob@example.com").await;
        let bob_app = app.create_app(&bob, "Bob's app").await;
        let res = app.get(&bob, &format!("/apps/{app_id}")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(!res.text().await.unwrap().contains("Ada's app"));

        let csrf = app.csrf(&bob, "/dashboard").await;
        let res = app.post(&bob, &format!("/apps/{app_id}/keys/{key_id}/revoke"), &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        // Not through Bob's own app either.
        let res = app.post(&bob, &format!("/apps/{bob_app}/keys/{key_id}/revoke"), &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.store.key_auth(&key.hash()).await.unwrap().unwrap().status, KeyStatus::Active);

        let res = app.post(&bob, &format!("/apps/{app_id}/keys"), &[("csrf", &csrf), ("name", "sneaky")]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.store.list_keys(app_id).await.unwrap().len(), 1);

        let res = app.get(&bob, "/apps/not-a-number").await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn app_names_are_validated_and_unique_per_account() {
    for app in each("app_names").await {
        let dev = app.developer("ada@example.com").await;
        let csrf = app.csrf(&dev, "/dashboard").await;
        let long = "x".repeat(81);
        for (name, status, text) in [
            ("   ", StatusCode::UNPROCESSABLE_ENTITY, "Give your app a name."),
            (long.as_str(), StatusCode::UNPROCESSABLE_ENTITY, "Use at most 80 characters"),
        ] {
            let res = app.post(&dev, "/apps", &[("csrf", &csrf), ("name", name)]).await;
            assert_eq!(res.status(), status);
            assert!(res.text().await.unwrap().contains(text));
        }
        let account_id =
            app.store.find_account_by_email(&turnpike_store::domain::Email::parse("ada@example.com").unwrap()).await.unwrap().unwrap().0.id;
        assert!(app.store.list_apps(account_id).await.unwrap().is_empty());

        app.create_app(&dev, "Bot").await;
        let res = app.post(&dev, "/apps", &[("csrf", &csrf), ("name", "Bot")]).await;
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert!(res.text().await.unwrap().contains("You already have an app called “Bot”"));
        assert_eq!(app.store.list_apps(account_id).await.unwrap().len(), 1);

        // Another developer may use the same name.
        let bob = app.developer("bob@example.com").await;
        app.create_app(&bob, "Bot").await;
    }
}

#[tokio::test]
async fn the_dashboard_shows_this_months_calls() {
    for app in each("dashboard_usage").await {
        let (api_id, _) = seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let dev = app.developer("ada@example.com").await;
        let app_id = app.create_app(&dev, "Bot").await;
        let (_, key_id) = app.new_key(&dev, app_id, "main").await;
        let sub = app.store.list_subscriptions(app_id).await.unwrap()[0].id;

        let html = app.get(&dev, "/dashboard").await.text().await.unwrap();
        assert_eq!(element_text(&html, "calls-this-month").as_deref(), Some("0"));

        let row = |hour, admitted, status_5xx| UsageRow {
            key_id,
            api_id,
            subscription_id: sub,
            hour,
            admitted,
            status_5xx,
            ..UsageRow::default()
        };
        // This hour counts; last month does not.
        app.store.upsert_usage("gw1", &[row(hour_start(NOW), 1234, 5), row(hour_start(NOW) - 40 * 86_400, 999, 0)], NOW).await.unwrap();

        let html = app.get(&dev, "/dashboard").await.text().await.unwrap();
        assert_eq!(element_text(&html, "calls-this-month").as_deref(), Some("1234"));
        assert!(html.contains(">1,234</td>"), "per-app calls");
        let page = app.get(&dev, &format!("/apps/{app_id}")).await.text().await.unwrap();
        assert!(page.contains(">1,234</td>"), "per-key calls");
    }
}
