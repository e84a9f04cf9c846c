//! Subscribing an app to a plan from the API's page (`POST /apis/{slug}/subscribe`): an existing
//! app joins an API published after it was created, switches plans through the ledger, and
//! everything that is not the developer's or not published is 404 and changes nothing. With
//! Stripe on, a paid plan goes to Checkout (against the fake Stripe server) and subscribes
//! nothing until the webhook.

use reqwest::{Client, StatusCode};
use turnpike_store::{NewPlan, Store, Visibility};
use turnpike_testkit::fake_stripe::FakeStripe;

use crate::helpers::{self, browser, each, location, seed_api, unescape, TestApp, NOW};

/// An API `slug` with Free (default) and Pro ($10.00/month flat, not default); returns
/// (api id, free plan id, pro plan id).
async fn api_with_pro(store: &Store, slug: &str, visibility: Visibility) -> (i64, i64, i64) {
    let (api, free) = seed_api(store, slug, slug, visibility).await;
    let pro =
        NewPlan { slug: "pro".into(), name: "Pro".into(), is_default: false, flat_price_minor: 1000, ..turnpike_testkit::free_plan() };
    let pro = store.create_plan(api, &pro, NOW).await.unwrap().id;
    (api, free, pro)
}

async fn subscribe(app: &TestApp, client: &Client, base: &str, slug: &str, app_id: i64, plan_id: i64) -> reqwest::Response {
    let csrf = app.csrf(client, "/dashboard").await;
    client
        .post(format!("{base}/apis/{slug}/subscribe"))
        .form(&[("csrf", csrf.as_str()), ("app_id", &app_id.to_string()), ("plan_id", &plan_id.to_string())])
        .send()
        .await
        .unwrap()
}

/// The app's live subscription to `api_id`: (subscription id, plan id).
async fn sub_on(store: &Store, app_id: i64, api_id: i64) -> Option<(i64, i64)> {
    store.list_subscriptions(app_id).await.unwrap().into_iter().find(|s| s.api_id == api_id).map(|s| (s.id, s.plan_id))
}

async fn page(app: &TestApp, client: &Client, path: &str) -> String {
    unescape(&app.get(client, path).await.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_app_subscribes_to_a_later_api_and_switches_plans_through_the_ledger() {
    for app in each("subscribe_later_api").await {
        seed_api(&app.store, "echo", "Echo", Visibility::Public).await;
        let dev = app.developer("ada@example.com").await;
        let app_id = app.create_app(&dev, "first").await;
        // Published after the app was created: the app is not on it.
        let (api, free, pro) = api_with_pro(&app.store, "weather", Visibility::Public).await;
        assert_eq!(sub_on(&app.store, app_id, api).await, None);

        // The page offers the app on every plan.
        let html = page(&app, &dev, "/apis/weather").await;
        assert!(html.contains(r#"<select id="subscribe-app-pro" name="app_id">"#), "{html}");
        assert!(html.contains(&format!(r#"<option value="{app_id}">first</option>"#)), "{html}");
        assert!(html.contains(r#"id="subscribe-pro">Subscribe</button>"#), "{html}");

        // Subscribe to the non-default plan: a new subscription, gateways told, audited.
        let before = app.store.latest_change().await.unwrap();
        let r = subscribe(&app, &dev, &app.base, "weather", app_id, pro).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (sub_id, plan_id) = sub_on(&app.store, app_id, api).await.expect("subscribed");
        assert_eq!(plan_id, pro);
        assert_eq!(location(&r), format!("/billing#sub-{sub_id}"));
        let ent = app.store.entitlements(app_id).await.unwrap();
        assert!(ent.iter().any(|e| e.api_id == api && e.plan_id == pro && e.status == "active"), "{ent:?}");
        let changes = app.store.changes_since(before, 100).await.unwrap();
        assert!(changes.iter().any(|c| c.ref_id == app_id.to_string()), "a change for the app was recorded: {changes:?}");
        let audit = app.store.recent_audit(10).await.unwrap();
        assert!(audit.iter().any(|a| a.action == "subscription.subscribe" && a.target == format!("subscription:{sub_id}")), "{audit:?}");
        assert!(page(&app, &dev, "/billing").await.contains("Subscribed first to Pro."), "flash");

        // The page now says so (the only app is on Pro); Free still offers it.
        let html = page(&app, &dev, "/apis/weather").await;
        assert!(html.contains(r#"id="subscribe-done-pro">Your app is on this plan"#), "{html}");
        assert!(html.contains(r#"id="subscribe-free">Subscribe</button>"#), "{html}");
        // With a second app, the first is listed but disabled under Pro.
        let second = app.create_app(&dev, "second").await;
        let html = page(&app, &dev, "/apis/weather").await;
        assert!(html.contains(&format!(r#"<option value="{app_id}" disabled>first (on this plan)</option>"#)), "{html}");
        assert!(html.contains(&format!(r#"<option value="{second}">second</option>"#)), "{html}");

        // Switching on an API the app is already on is a plan change: same subscription.
        let before = app.store.latest_change().await.unwrap();
        let r = subscribe(&app, &dev, &app.base, "weather", app_id, free).await;
        assert_eq!(location(&r), format!("/billing#sub-{sub_id}"));
        assert_eq!(sub_on(&app.store, app_id, api).await, Some((sub_id, free)));
        assert!(app.store.latest_change().await.unwrap() > before);
        assert_eq!(app.store.list_subscriptions(app_id).await.unwrap().iter().filter(|s| s.api_id == api).count(), 1);
        // The ledger charged Pro's base fee for the time it was held (an adjustment line).
        let html = page(&app, &dev, "/billing").await;
        assert!(html.contains("Pro base fee"), "{html}");
        // Choosing the same plan again changes nothing.
        let r = subscribe(&app, &dev, &app.base, "weather", app_id, free).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(page(&app, &dev, "/billing").await.contains("first is already on Free."));
        assert_eq!(sub_on(&app.store, app_id, api).await, Some((sub_id, free)));

        // A canceled subscription can be taken up again from the page.
        turnpike_ledger::cancel(&app.store, sub_id, false, NOW).await.unwrap();
        let r = subscribe(&app, &dev, &app.base, "weather", app_id, pro).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let s = app.store.get_subscription(sub_id).await.unwrap();
        assert_eq!((s.plan_id, s.status.as_str()), (pro, "active"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_apps_other_apis_plans_drafts_and_missing_tokens_change_nothing() {
    for app in each("subscribe_refusals").await {
        let (api, _free, pro) = api_with_pro(&app.store, "weather", Visibility::Public).await;
        let (_, other_free, _) = api_with_pro(&app.store, "other", Visibility::Public).await;
        let (_, _, draft_pro) = api_with_pro(&app.store, "secret", Visibility::Draft).await;
        let (_, _, private_pro) = api_with_pro(&app.store, "hidden", Visibility::Private).await;

        // Anonymous visitors are invited to sign up; a developer without apps to create one.
        let anon = browser();
        let html = page(&app, &anon, "/apis/weather").await;
        assert!(html.contains(r#"<a class="btn btn-secondary btn-sm" href="/signup" id="subscribe-signup-pro">Sign up to subscribe</a>"#));
        let alice = app.developer("alice@example.com").await;
        let html = page(&app, &alice, "/apis/weather").await;
        assert!(html.contains(r#"<a href="/dashboard" id="subscribe-create-app-pro">Create an app</a> to subscribe"#), "{html}");

        let alice_app = app.create_app(&alice, "alice app").await;
        let bob = app.developer("bob@example.com").await;
        let bob_app = app.create_app(&bob, "bob app").await;
        let snapshot = |app_id: i64| {
            let store = app.store.clone();
            async move {
                let subs = store.list_subscriptions(app_id).await.unwrap();
                subs.into_iter().map(|s| (s.id, s.api_id, s.plan_id, s.status, s.pending_plan_id)).collect::<Vec<_>>()
            }
        };
        let (alice_before, bob_before) = (snapshot(alice_app).await, snapshot(bob_app).await);
        // Both apps came with the Free plan of each public API.
        assert!(alice_before.iter().any(|s| s.1 == api && s.2 != pro), "{alice_before:?}");
        let version = app.store.latest_change().await.unwrap();

        // Someone else's app, an app that does not exist, a plan of another API, a plan that
        // does not exist, a draft or unlisted API, an unknown API: all 404.
        let cases: [(&Client, &str, i64, i64); 8] = [
            (&bob, "weather", alice_app, pro),
            (&alice, "weather", bob_app, pro),
            (&alice, "weather", 9_999, pro),
            (&alice, "weather", alice_app, other_free),
            (&alice, "weather", alice_app, 9_999),
            (&alice, "secret", alice_app, draft_pro),
            (&alice, "hidden", alice_app, private_pro),
            (&alice, "nope", alice_app, pro),
        ];
        for (client, slug, app_id, plan_id) in cases {
            let r = subscribe(&app, client, &app.base, slug, app_id, plan_id).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{slug} app {app_id} plan {plan_id}");
        }
        // No CSRF token: 403. Logged out: the login page.
        let r = alice
            .post(app.url("/apis/weather/subscribe"))
            .form(&[("app_id", alice_app.to_string()), ("plan_id", pro.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let anon_csrf = app.csrf(&anon, "/login").await;
        let form = [("csrf", anon_csrf.as_str()), ("app_id", &alice_app.to_string()), ("plan_id", &pro.to_string())];
        let r = app.post(&anon, "/apis/weather/subscribe", &form).await;
        assert_eq!(location(&r), "/login");
        // A form without an app: back to the page with a message.
        let csrf = app.csrf(&alice, "/dashboard").await;
        let r = app.post(&alice, "/apis/weather/subscribe", &[("csrf", &csrf), ("plan_id", &pro.to_string())]).await;
        assert_eq!(location(&r), "/apis/weather");
        assert!(page(&app, &alice, "/apis/weather").await.contains("Choose an app to subscribe."));

        assert_eq!(snapshot(alice_app).await, alice_before);
        assert_eq!(snapshot(bob_app).await, bob_before);
        assert_eq!(app.store.latest_change().await.unwrap(), version, "nothing recorded for the gateways");
        assert!(!app.store.recent_audit(50).await.unwrap().iter().any(|a| a.action == "subscription.subscribe"));
    }
}

const SECRET_KEY: &str = "sk_test_subscribe";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_stripe_a_paid_plan_goes_to_checkout_and_subscribes_nothing_yet() {
    for app in each("subscribe_stripe").await {
        let fake = FakeStripe::start(SECRET_KEY).await;
        let (base, _server) = helpers::stripe_portal(&app.store, &fake.base, SECRET_KEY, "whsec_subscribe").await;
        let dev = app.developer("dev@example.com").await;
        let app_id = app.create_app(&dev, "mine").await;
        let (api, free, pro) = api_with_pro(&app.store, "weather", Visibility::Public).await;

        // The page says where Pro leads; the billing page offers the customer portal.
        let html = unescape(&dev.get(format!("{base}/apis/weather")).send().await.unwrap().text().await.unwrap());
        assert!(html.contains("Continues to secure payment"), "{html}");
        let billing = dev.get(format!("{base}/billing")).send().await.unwrap().text().await.unwrap();
        assert!(billing.contains(r#"id="manage-payment">Manage payment</button>"#), "{billing}");
        assert!(!page(&app, &dev, "/billing").await.contains("manage-payment"), "no button without Stripe");

        let version = app.store.latest_change().await.unwrap();
        let r = subscribe(&app, &dev, &base, "weather", app_id, pro).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(location(&r).starts_with("https://checkout.stripe.test/c/pay/cs_test_"), "{}", location(&r));
        let cs = &fake.requests_to("/v1/checkout/sessions")[0];
        assert_eq!(cs.field("metadata[app_id]"), Some(app_id.to_string().as_str()));
        assert_eq!(cs.field("metadata[plan_id]"), Some(pro.to_string().as_str()));
        // Checkout sells the plan's catalogue Price (Stripe's own object, found by lookup key).
        let price_id = cs.field("line_items[0][price]").expect("a catalogue Price").to_owned();
        let price = fake.object(&price_id).expect("the Price exists at Stripe");
        assert_eq!(price["unit_amount"], 1000, "{price}");
        // Nothing is subscribed until Stripe's webhook says the checkout completed.
        assert_eq!(sub_on(&app.store, app_id, api).await, None);
        assert_eq!(app.store.latest_change().await.unwrap(), version);

        // A free plan needs no payment: subscribed at once, Stripe not asked.
        let sessions = fake.requests_to("/v1/checkout/sessions").len();
        let r = subscribe(&app, &dev, &base, "weather", app_id, free).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(location(&r).starts_with("/billing#sub-"));
        assert_eq!(sub_on(&app.store, app_id, api).await.map(|s| s.1), Some(free));
        assert_eq!(fake.requests_to("/v1/checkout/sessions").len(), sessions);

        // Back from Checkout.
        let ok = unescape(&dev.get(format!("{base}/billing?checkout=success")).send().await.unwrap().text().await.unwrap());
        assert!(ok.contains("Payment set up — your plan is active in a few seconds"), "{ok}");
        let no = unescape(&dev.get(format!("{base}/billing?checkout=canceled")).send().await.unwrap().text().await.unwrap());
        assert!(no.contains("Checkout canceled"), "{no}");
    }
}
