//! Stripe routes of the portal against the fake Stripe server: who may check out what, what is
//! refused before Stripe is called, failures of Stripe itself, webhook payload checks, and 404s
//! when Stripe is not configured.
//!
//! A Stripe-enabled portal is started on its own port over the same database as the helpers'
//! portal; sessions live in the database and cookies ignore ports, so a developer logged in through
//! the helpers is logged in on both.

use reqwest::StatusCode;
use turnpike_store::{NewPlan, Store, Visibility};
use turnpike_testkit::fake_stripe::{event, signature, FakeStripe};

use crate::helpers::{self, browser, location, TestApp, NOW, PUBLIC_URL};

const SECRET_KEY: &str = "sk_test_portal";
const WEBHOOK_SECRET: &str = "whsec_portal";

async fn stripe_portal(store: &Store, api_base: &str, secret_key: &str) -> (String, tokio::task::JoinHandle<()>) {
    helpers::stripe_portal(store, api_base, secret_key, WEBHOOK_SECRET).await
}

/// A paid plan on a new public API; returns (free plan id, paid plan id).
async fn paid_api(store: &Store, slug: &str, visibility: Visibility) -> (i64, i64) {
    let (api_id, free) = helpers::seed_api(store, slug, slug, visibility).await;
    let paid = store
        .create_plan(
            api_id,
            &NewPlan {
                slug: "pro".into(),
                name: "Pro".into(),
                rate_per_second: 50,
                burst: 100,
                monthly_quota: None,
                currency: "eur".into(),
                flat_price_minor: 0,
                unit_price_minor_per_1000: 25,
                is_default: false,
            },
            NOW,
        )
        .await
        .unwrap();
    (free, paid.id)
}

async fn checkout(client: &reqwest::Client, base: &str, csrf: &str, app_id: &str, plan_id: &str) -> reqwest::Response {
    client.post(format!("{base}/billing/checkout")).form(&[("csrf", csrf), ("app_id", app_id), ("plan_id", plan_id)]).send().await.unwrap()
}

/// The flash shown on the next page.
async fn next_flash(app: &TestApp, client: &reqwest::Client) -> String {
    helpers::unescape(&app.get(client, "/dashboard").await.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_only_for_own_apps_and_paid_plans_and_stripe_is_not_called_otherwise() {
    for app in helpers::each("stripe_checkout_rules").await {
        let fake = FakeStripe::start(SECRET_KEY).await;
        let (base, _server) = stripe_portal(&app.store, &fake.base, SECRET_KEY).await;
        let (free, paid) = paid_api(&app.store, "weather", Visibility::Public).await;
        let (_, draft_paid) = paid_api(&app.store, "secret", Visibility::Draft).await;
        let (_, private_paid) = paid_api(&app.store, "hidden", Visibility::Private).await;
        let alice = app.developer("alice@example.com").await;
        let alice_app = app.create_app(&alice, "alice app").await;
        let bob = app.developer("bob@example.com").await;
        let bob_csrf = app.csrf(&bob, "/dashboard").await;
        let csrf = app.csrf(&alice, "/dashboard").await;

        // Refusals: back to /billing with a readable message, and no request reached Stripe.
        let cases = [
            (&bob, bob_csrf.as_str(), alice_app.to_string(), paid.to_string(), "That app does not exist."),
            (&alice, csrf.as_str(), alice_app.to_string(), free.to_string(), "is free: no payment is needed."),
            (&alice, csrf.as_str(), alice_app.to_string(), draft_paid.to_string(), "That plan does not exist."),
            // A private API the app is not on: refused like the catalog's Subscribe refuses it.
            (&alice, csrf.as_str(), alice_app.to_string(), private_paid.to_string(), "That plan does not exist."),
            (&alice, csrf.as_str(), alice_app.to_string(), "9999".into(), "That plan does not exist."),
            (&alice, csrf.as_str(), "x".into(), paid.to_string(), "Choose an app and a plan"),
        ];
        for (client, token, app_id, plan_id, msg) in cases {
            let r = checkout(client, &base, token, &app_id, &plan_id).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{msg}");
            assert_eq!(location(&r), "/billing", "{msg}");
            assert!(next_flash(&app, client).await.contains(msg), "flash {msg}");
        }
        // No CSRF token: the guard refuses; logged out: the login page.
        let r = alice
            .post(format!("{base}/billing/checkout"))
            .form(&[("app_id", alice_app.to_string()), ("plan_id", paid.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let anon = browser();
        let anon_csrf = app.csrf(&anon, "/login").await;
        let r = checkout(&anon, &base, &anon_csrf, &alice_app.to_string(), &paid.to_string()).await;
        assert_eq!(location(&r), "/login");
        assert!(fake.requests().is_empty(), "nothing was sent to Stripe: {:?}", fake.requests());
        assert_eq!(app.store.stripe_customer(1).await.unwrap(), None);

        // GET /billing/portal creates nothing: without a customer it sends the developer back.
        let r = alice.get(format!("{base}/billing/portal")).send().await.unwrap();
        assert_eq!(location(&r), "/billing");
        assert!(next_flash(&app, &alice).await.contains("subscribe to a paid plan first"));
        assert!(fake.requests().is_empty());

        // A usage-priced plan (flat 0, per-1000 > 0) is paid: checkout goes to Stripe.
        let r = checkout(&alice, &base, &csrf, &alice_app.to_string(), &paid.to_string()).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(location(&r).starts_with("https://checkout.stripe.test/c/pay/cs_test_"), "{}", location(&r));
        let cs = &fake.requests_to("/v1/checkout/sessions")[0];
        // The plan's catalogue Price: the base fee a month (0 for a usage-only plan; its usage is
        // pushed as invoice items), in the plan's currency.
        let price = fake.object(cs.field("line_items[0][price]").expect("a catalogue Price")).expect("the Price exists at Stripe");
        assert_eq!((price["currency"].as_str(), price["unit_amount"].as_i64()), (Some("eur"), Some(0)), "{price}");
        assert_eq!(cs.field("success_url"), Some(format!("{PUBLIC_URL}/billing?checkout=success").as_str()));
        assert_eq!(cs.field("cancel_url"), Some(format!("{PUBLIC_URL}/billing?checkout=canceled").as_str()));
        // Now GET /billing/portal works too.
        let r = alice.get(format!("{base}/billing/portal")).send().await.unwrap();
        assert!(location(&r).starts_with("https://billing.stripe.test/p/session/"));
        assert_eq!(fake.requests_to("/v1/billing_portal/sessions")[0].field("return_url"), Some(format!("{PUBLIC_URL}/billing").as_str()));
        assert_eq!(fake.created("customer").len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stripe_leaves_a_message_and_stores_nothing() {
    for app in helpers::each("stripe_failing").await {
        // The fake refuses this key (401), as Stripe would a revoked one.
        let fake = FakeStripe::start(SECRET_KEY).await;
        let (base, _server) = stripe_portal(&app.store, &fake.base, "sk_test_revoked").await;
        let (_, paid) = paid_api(&app.store, "weather", Visibility::Public).await;
        let dev = app.developer("dev@example.com").await;
        let app_id = app.create_app(&dev, "app").await;
        let csrf = app.csrf(&dev, "/dashboard").await;
        let r = checkout(&dev, &base, &csrf, &app_id.to_string(), &paid.to_string()).await;
        assert_eq!(location(&r), "/billing");
        let page = next_flash(&app, &dev).await;
        assert!(page.contains("The payment provider is not answering"), "{page}");
        assert!(!page.contains("sk_test_revoked"));
        assert_eq!(fake.requests().len(), 1);
        assert!(!fake.requests()[0].authorized);
        let account =
            app.store.find_account_by_email(&turnpike_store::domain::Email::parse("dev@example.com").unwrap()).await.unwrap().unwrap().0;
        assert_eq!(app.store.stripe_customer(account.id).await.unwrap(), None, "no customer stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_payloads_are_checked_after_the_signature() {
    for app in helpers::each("stripe_webhook_payloads").await {
        let fake = FakeStripe::start(SECRET_KEY).await;
        let (base, _server) = stripe_portal(&app.store, &fake.base, SECRET_KEY).await;
        let http = reqwest::Client::new();
        let post =
            |body: Vec<u8>, sig: String| http.post(format!("{base}/webhooks/stripe")).header("stripe-signature", sig).body(body).send();

        // Signed, but not an event: 400 problem+json.
        let body = b"{\"hello\": 1}".to_vec();
        let r = post(body.clone(), signature(WEBHOOK_SECRET, &body, NOW)).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        // A timestamp 301 s in the future is outside the tolerance too.
        let ev = event("evt_future", "invoice.paid", NOW, serde_json::json!({"subscription": "sub_x"}));
        assert_eq!(post(ev.clone(), signature(WEBHOOK_SECRET, &ev, NOW + 301)).await.unwrap().status(), StatusCode::BAD_REQUEST);
        assert_eq!(app.store.stripe_event_outcome("evt_future").await.unwrap(), None);
        // An event type Turnpike ignores, and an invoice for an unknown subscription: 200, recorded.
        let ev = event("evt_other", "charge.refunded", NOW, serde_json::json!({"id": "ch_1"}));
        let r = post(ev.clone(), signature(WEBHOOK_SECRET, &ev, NOW)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["outcome"], "unmatched");
        let ev = event("evt_unknown_sub", "invoice.paid", NOW, serde_json::json!({"subscription": "sub_nobody"}));
        assert_eq!(post(ev.clone(), signature(WEBHOOK_SECRET, &ev, NOW)).await.unwrap().status(), StatusCode::OK);
        assert_eq!(app.store.stripe_event_outcome("evt_unknown_sub").await.unwrap().as_deref(), Some("unmatched"));
        // Webhooks need no session or CSRF token, and a webhook never calls Stripe.
        assert!(fake.requests().is_empty());

        // A Checkout paid by an asynchronous method (SEPA, bank transfer) completes `unpaid`: the
        // plan waits for `checkout.session.async_payment_succeeded`.
        let (_, paid) = paid_api(&app.store, "weather", Visibility::Public).await;
        let dev = app.developer("sepa@example.com").await;
        let app_id = app.create_app(&dev, "sepa app").await;
        let session = |status: &str| {
            serde_json::json!({"id": "cs_test_sepa", "object": "checkout.session", "mode": "subscription", "customer": "cus_sepa",
                               "subscription": "sub_sepa", "payment_status": status,
                               "metadata": {"app_id": app_id.to_string(), "plan_id": paid.to_string()}})
        };
        let on_paid =
            || async { app.store.list_subscriptions(app_id).await.unwrap().iter().any(|s| s.plan_id == paid && s.status == "active") };
        let ev = event("evt_sepa_completed", "checkout.session.completed", NOW, session("unpaid"));
        let r = post(ev.clone(), signature(WEBHOOK_SECRET, &ev, NOW)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["outcome"], "unmatched");
        assert!(!on_paid().await, "not active before the money arrives");
        let ev = event("evt_sepa_failed", "checkout.session.async_payment_failed", NOW + 1, session("unpaid"));
        assert_eq!(post(ev.clone(), signature(WEBHOOK_SECRET, &ev, NOW)).await.unwrap().status(), StatusCode::OK);
        assert!(!on_paid().await, "a failed payment activates nothing");
        let ev = event("evt_sepa_paid", "checkout.session.async_payment_succeeded", NOW + 2, session("paid"));
        let r = post(ev.clone(), signature(WEBHOOK_SECRET, &ev, NOW)).await.unwrap();
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["outcome"], "applied");
        assert!(on_paid().await, "active once paid");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stripe_every_stripe_route_is_404() {
    for app in helpers::each("stripe_off").await {
        let dev = app.developer("dev@example.com").await;
        let csrf = app.csrf(&dev, "/dashboard").await;
        let r = app.post(&dev, "/billing/checkout", &[("csrf", &csrf), ("app_id", "1"), ("plan_id", "1")]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.get(&dev, "/billing/portal").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.post(&dev, "/billing/portal", &[("csrf", &csrf)]).await.status(), StatusCode::NOT_FOUND);
        let body = b"{}".to_vec();
        let r = reqwest::Client::new()
            .post(app.url("/webhooks/stripe"))
            .header("stripe-signature", signature(WEBHOOK_SECRET, &body, NOW))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
