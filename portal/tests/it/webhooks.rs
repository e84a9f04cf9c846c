//! The console's webhooks page: an endpoint is added with a readable refusal for a bad URL or no
//! event (nothing stored), its signing secret is shown once, and it can be removed; both audited.

use reqwest::StatusCode;
use turnpike_store::Role;

use crate::helpers::{csrf_from, each, element_text, location};

#[tokio::test]
async fn owners_add_and_remove_webhook_endpoints_with_readable_refusals() {
    for app in each("admin_webhooks").await {
        let (admin, _) = app.login_new("owner@example.com", Role::Admin).await;
        let page = app.get(&admin, "/admin/webhooks").await.text().await.unwrap();
        let csrf = csrf_from(&page);
        assert!(page.contains("No endpoints yet."));

        // Refused: not an http(s) URL; no event chosen; an unknown event. Nothing stored.
        for (url, event, says) in [
            ("ftp://hooks.example.com/x", "key.created", "scheme"),
            ("https://hooks.example.com/x", "", "Choose at least one event"),
            ("https://hooks.example.com/x", "key.deleted", "Unknown event type"),
        ] {
            let mut form = vec![("csrf", csrf.as_str()), ("url", url)];
            if !event.is_empty() {
                form.push(("events", event));
            }
            let r = app.post(&admin, "/admin/webhooks", &form).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url} {event}");
            let html = r.text().await.unwrap();
            assert!(element_text(&html, "webhook-error").unwrap_or_default().contains(says), "{url} {event}: {html}");
            assert!(app.store.list_webhooks().await.unwrap().is_empty());
        }

        let form =
            [("csrf", csrf.as_str()), ("url", "https://hooks.example.com/tp"), ("events", "key.created"), ("events", "invoice.finalized")];
        let r = app.post(&admin, "/admin/webhooks", &form).await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        let secret = element_text(&html, "webhook-secret").expect("the secret is shown once");
        assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
        let hooks = app.store.list_webhooks().await.unwrap();
        assert_eq!(hooks.len(), 1);
        assert_eq!((hooks[0].url.as_str(), hooks[0].events.as_str()), ("https://hooks.example.com/tp", "key.created,invoice.finalized"));
        // Not shown again.
        let again = app.get(&admin, "/admin/webhooks").await.text().await.unwrap();
        assert!(!again.contains(&secret) && again.contains("https://hooks.example.com/tp"));

        let r = app.post(&admin, &format!("/admin/webhooks/{}/delete", hooks[0].id), &[("csrf", csrf.as_str())]).await;
        assert_eq!(location(&r), "/admin/webhooks");
        assert!(app.store.list_webhooks().await.unwrap().is_empty());
        let actions: Vec<String> = app.store.recent_audit(10).await.unwrap().into_iter().map(|e| e.action).collect();
        assert!(actions.contains(&"webhook.create".to_owned()) && actions.contains(&"webhook.delete".to_owned()), "{actions:?}");
    }
}
