//! Stripe end to end: the real portal and gateway over sockets, a fake Stripe on loopback (never
//! the network), signed webhooks, the grace worker and the injected clock; on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use turnpike_store::clock::{Clock, ManualClock};
use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::NewPlan;
use turnpike_testkit::fake_stripe::{event, signature, FakeStripe};
use turnpike_testkit::TestDb;

use crate::{csrf, CounterBackend, TestApp};

const T0: i64 = 1_790_000_000;
const SECRET_KEY: &str = "sk_test_turnpike";
const WEBHOOK_SECRET: &str = "whsec_test_turnpike";

struct Setup {
    app: TestApp,
    fake: FakeStripe,
    clock: Arc<ManualClock>,
    portal: reqwest::Client,
    account_id: i64,
    app_id: i64,
    pro_plan: i64,
    key: String,
}

impl Setup {
    fn p(&self, path: &str) -> String {
        format!("{}{}", self.app.portal_url, path)
    }

    /// Deliver `payload` to the webhook with a signature made at `sig_time` (None: no header).
    async fn deliver(&self, payload: &[u8], secret: &str, sig_time: Option<i64>) -> (u16, Value) {
        let mut req = self.app.http.post(self.p("/webhooks/stripe")).header("content-type", "application/json").body(payload.to_vec());
        if let Some(t) = sig_time {
            req = req.header("stripe-signature", signature(secret, payload, t));
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A correctly signed delivery, now.
    async fn send(&self, payload: &[u8]) -> (u16, Value) {
        self.deliver(payload, WEBHOOK_SECRET, Some(self.clock.now())).await
    }

    /// `path` as a logged-in admin (made on first use), with its status asserted 200.
    async fn admin_get(&self, path: &str) -> String {
        const EMAIL: &str = "owner@example.com";
        const PASSWORD: &str = "an admin's long password";
        let admin = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        if self.app.store.find_account_by_email(&Email::parse(EMAIL).unwrap()).await.unwrap().is_none() {
            turnpike::seed::create_admin(&self.app.store, EMAIL, Some(PASSWORD), self.clock.now()).await.unwrap();
        }
        let form = admin.get(self.p("/login")).send().await.unwrap().text().await.unwrap();
        let r = admin
            .post(self.p("/login"))
            .form(&[("csrf", csrf(&form).as_str()), ("email", EMAIL), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "the admin logs in");
        let r = admin.get(self.p(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    }

    async fn gateway_get(&self) -> reqwest::Response {
        self.app.http.get(self.app.gw("/echo/x")).bearer_auth(&self.key).send().await.unwrap()
    }

    /// Poll the gateway (gateways follow the change log; nothing here forces a reload) until
    /// `done` holds, for up to 5 s.
    async fn until(&self, what: &str, done: impl Fn(&reqwest::Response) -> bool) -> reqwest::Response {
        let started = Instant::now();
        loop {
            let r = self.gateway_get().await;
            if done(&r) {
                return r;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "{what}: still {} {:?}", r.status(), r.headers().get("ratelimit-policy"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn sub_id(&self) -> i64 {
        let subs = self.app.store.list_subscriptions(self.app_id).await.unwrap();
        subs.into_iter().find(|s| s.plan_id == self.pro_plan).expect("on the pro plan").id
    }
}

/// Minor units of USD as the pages show them.
fn usd(minor: i64) -> String {
    turnpike_billing::Money::from_stored(minor, "usd").format()
}

fn policy(r: &reqwest::Response) -> String {
    r.headers().get("ratelimit-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// A Stripe-enabled Turnpike with the seeded echo API plus a paid "pro" plan, a signed-up
/// developer with one app and key (on the free plan).
async fn setup(db: &TestDb, email: &str) -> Setup {
    let fake = FakeStripe::start(SECRET_KEY).await;
    let clock = Arc::new(ManualClock::at(T0));
    let base = fake.base.clone();
    let app = TestApp::start_with(db, &CounterBackend::Local, clock.clone(), |c| {
        c.stripe_secret_key = Some(SECRET_KEY.into());
        c.stripe_webhook_secret = Some(WEBHOOK_SECRET.into());
        c.stripe_api_base = Some(base);
        c.billing_grace_hours = 1;
    })
    .await;
    let echo = app.store.get_api_by_slug("echo").await.unwrap();
    let pro = app
        .store
        .create_plan(
            echo.id,
            &NewPlan {
                slug: "pro".into(),
                name: "Pro".into(),
                rate_per_second: 50,
                burst: 150,
                monthly_quota: Some(100_000),
                currency: "usd".into(),
                flat_price_minor: 2900,
                unit_price_minor_per_1000: 10,
                is_default: false,
            },
            T0,
        )
        .await
        .unwrap();

    let portal = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let p = |path: &str| format!("{}{}", app.portal_url, path);
    let form = portal.get(p("/signup")).send().await.unwrap().text().await.unwrap();
    let r = portal
        .post(p("/signup"))
        .form(&[("email", email), ("password", "a long enough password"), ("csrf", &csrf(&form))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "signup answers \"check your email\"");
    // Confirm the emailed verification link, which logs in.
    let mail = app.store.emails_to(email).await.unwrap();
    let link = mail
        .iter()
        .rev()
        .find_map(|m| m.body.split_whitespace().find(|w| w.starts_with(&p("/verify-email?token="))).map(str::to_owned))
        .expect("a verification link was mailed");
    let confirm = portal.get(&link).send().await.unwrap().text().await.unwrap();
    let token = link.split_once("token=").unwrap().1;
    // Not logged in: the account's password confirms that the mailbox's owner made the account.
    let form = [("token", token), ("csrf", &csrf(&confirm)), ("password", "a long enough password")];
    let r = portal.post(p("/verify-email")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303, "confirming logs in");
    let dash = portal.get(p("/dashboard")).send().await.unwrap().text().await.unwrap();
    let r = portal.post(p("/apps")).form(&[("name", "paid app"), ("csrf", &csrf(&dash))]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let app_id: i64 = r.headers()["location"].to_str().unwrap().trim_start_matches("/apps/").parse().unwrap();
    let email_ = turnpike_store::domain::Email::parse(email).unwrap();
    let account_id = app.store.find_account_by_email(&email_).await.unwrap().expect("signed up").0.id;
    let key = ApiKey::generate();
    app.store.create_key(app_id, "k", &key, T0).await.unwrap();
    let s = Setup { app, fake, clock, portal, account_id, app_id, pro_plan: pro.id, key: key.expose().to_owned() };
    let r = s.until("key known, free plan", |r| r.status() == 200).await;
    assert!(policy(&r).starts_with("\"burst\";q=20;w=2"), "free plan limits: {}", policy(&r));
    s
}

fn checkout_completed(id: &str, created: i64, app_id: i64, plan_id: i64) -> Vec<u8> {
    event(
        id,
        "checkout.session.completed",
        created,
        json!({"id": "cs_test_000002", "object": "checkout.session", "mode": "subscription", "customer": "cus_000001",
               "subscription": "sub_pro_1", "payment_status": "paid",
               "metadata": {"app_id": app_id.to_string(), "plan_id": plan_id.to_string()}}),
    )
}

fn invoice(id: &str, kind: &str, created: i64) -> Vec<u8> {
    // The 2025+ API shape: the subscription sits under parent.subscription_details.
    event(
        id,
        kind,
        created,
        json!({"id": format!("in_{id}"), "object": "invoice", "customer": "cus_000001",
               "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_pro_1", "metadata": {}}}}),
    )
}

async fn checkout_to_grace_to_402_and_back(db: TestDb) {
    let s = setup(&db, "payer@example.com").await;

    // Checkout: 303 to Stripe's hosted page, customer created once with the account-derived key.
    let dash = s.portal.get(s.p("/dashboard")).send().await.unwrap().text().await.unwrap();
    let token = csrf(&dash);
    let form = [("app_id", s.app_id.to_string()), ("plan_id", s.pro_plan.to_string()), ("csrf", token.clone())];
    let r = s.portal.post(s.p("/billing/checkout")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "https://checkout.stripe.test/c/pay/cs_test_000001");
    // A double click in the same second: the same session (idempotent replay), no second customer.
    let r = s.portal.post(s.p("/billing/checkout")).form(&form).send().await.unwrap();
    assert_eq!(r.headers()["location"], "https://checkout.stripe.test/c/pay/cs_test_000001");
    let customers = s.fake.requests_to("/v1/customers");
    assert_eq!(customers.len(), 1, "the customer id is stored after the first call");
    assert_eq!(customers[0].idempotency_key.as_deref(), Some(format!("tp-customer-{}", s.account_id).as_str()));
    assert_eq!(customers[0].field("email"), Some("payer@example.com"));
    let sessions = s.fake.requests_to("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 2);
    let want_key = format!("tp-checkout-{}-{}-{}-{T0}", s.account_id, s.app_id, s.pro_plan);
    assert!(sessions.iter().all(|r| r.idempotency_key.as_deref() == Some(want_key.as_str()) && r.authorized));
    let cs = &sessions[0];
    assert_eq!(cs.field("mode"), Some("subscription"));
    assert_eq!(cs.field("customer"), Some("cus_000001"));
    assert_eq!(cs.field("metadata[app_id]"), Some(s.app_id.to_string().as_str()));
    assert_eq!(cs.field("metadata[plan_id]"), Some(s.pro_plan.to_string().as_str()));
    assert_eq!(cs.field("subscription_data[metadata][app_id]"), Some(s.app_id.to_string().as_str()));
    // Checkout sells the catalogue's Price of the plan's current version, not ad-hoc price_data.
    let price = s.fake.objects("price").into_iter().find(|p| p["lookup_key"] == format!("turnpike_plan_{}_v0", s.pro_plan)).unwrap();
    assert_eq!(cs.field("line_items[0][price]"), price["id"].as_str());
    assert_eq!((price["unit_amount"].as_i64(), price["currency"].as_str()), (Some(2900), Some("usd")));
    assert_eq!(price["recurring"]["interval"], "month");
    assert_eq!(s.fake.created("checkout.session").len(), 1, "the replay created nothing");
    // Nothing changed locally yet: still the free plan.
    assert!(policy(&s.gateway_get().await).starts_with("\"burst\";q=20;"));

    // checkout.session.completed → active on Pro; the gateway applies Pro's limits by itself.
    let (st, v) = s.send(&checkout_completed("evt_checkout", T0 + 1, s.app_id, s.pro_plan)).await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")));
    let r = s.until("pro limits", |r| policy(r).starts_with("\"burst\";q=150;w=3")).await;
    assert_eq!(r.status(), 200);
    let sub = s.sub_id().await;
    let state = s.app.store.stripe_subscription_state(sub).await.unwrap().unwrap();
    assert_eq!(state.stripe_subscription_id.as_deref(), Some("sub_pro_1"));
    assert_eq!(state.customer_id.as_deref(), Some("cus_000001"));

    // A second checkout for the plan the app already pays for is refused before Stripe is called.
    let r = s.portal.post(s.p("/billing/checkout")).form(&form).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/billing");
    let page = s.portal.get(s.p("/dashboard")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("is already on Pro"), "flash shown");
    assert_eq!(s.fake.requests_to("/v1/checkout/sessions").len(), 2);

    // Customer Portal: 303 to Stripe, no new customer.
    let r = s.portal.post(s.p("/billing/portal")).form(&[("csrf", token.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("https://billing.stripe.test/p/session/bps_"));
    let portal_req = &s.fake.requests_to("/v1/billing_portal/sessions")[0];
    assert_eq!(portal_req.field("customer"), Some("cus_000001"));
    assert_eq!(s.fake.created("customer").len(), 1);

    // invoice.payment_failed → grace: still served, for longer than a worker tick.
    s.clock.set(T0 + 10);
    let (st, v) = s.send(&invoice("evt_fail", "invoice.payment_failed", T0 + 10)).await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")));
    let state = s.app.store.stripe_subscription_state(sub).await.unwrap().unwrap();
    assert_eq!((state.past_due_since, state.grace_until), (Some(T0 + 10), Some(T0 + 10 + 3600)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.gateway_get().await.status(), 200, "served during the grace period");
    s.clock.set(T0 + 10 + 3599);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.gateway_get().await.status(), 200, "one second before the grace ends");

    // Grace over: the worker flips the subscription and the gateway answers 402 with a link to pay.
    s.clock.set(T0 + 10 + 3600);
    let r = s.until("402 after the grace", |r| r.status() == 402).await;
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "payment_required");
    assert!(v["billing_url"].as_str().unwrap().ends_with("/billing"));
    assert_eq!(s.app.store.list_subscriptions(s.app_id).await.unwrap().iter().find(|x| x.id == sub).unwrap().status, "past_due");
    let audit = s.app.store.recent_audit(50).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "stripe.grace_ended" && a.target == format!("subscription:{sub}")));
    assert!(audit.iter().all(|a| !a.detail.contains(SECRET_KEY) && !a.detail.contains(WEBHOOK_SECRET)));

    // invoice.paid → served again within seconds.
    let (st, v) = s.send(&invoice("evt_paid", "invoice.paid", T0 + 3700)).await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")));
    let r = s.until("200 after invoice.paid", |r| r.status() == 200).await;
    assert!(policy(&r).starts_with("\"burst\";q=150;"));
    let state = s.app.store.stripe_subscription_state(sub).await.unwrap().unwrap();
    assert_eq!((state.past_due_since, state.grace_until, state.last_event_created), (None, None, T0 + 3700));

    // An older event arriving after a newer one is ignored (200, nothing changes).
    let before = s.app.store.latest_change().await.unwrap();
    let (st, v) = s.send(&invoice("evt_late_fail", "invoice.payment_failed", T0 + 3650)).await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("stale")));
    let state = s.app.store.stripe_subscription_state(sub).await.unwrap().unwrap();
    assert_eq!((state.grace_until, state.last_event_created), (None, T0 + 3700));
    assert_eq!(s.app.store.latest_change().await.unwrap(), before);
    // The same for an old checkout event replanning the app.
    let (_, v) = s.send(&checkout_completed("evt_old_checkout", T0, s.app_id, 1)).await;
    assert_eq!(v["outcome"], "stale");
    assert_eq!(s.sub_id().await, sub, "still on pro");
    // A redelivery of an applied event is a duplicate.
    let (st, v) = s.send(&invoice("evt_paid", "invoice.paid", T0 + 3700)).await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("duplicate")));
    assert_eq!(s.app.store.latest_change().await.unwrap(), before);

    // At the period's end the worker finalizes the invoice and pushes its usage amount to Stripe
    // once, with the documented idempotency key.
    let anchor = s.app.store.list_subscriptions(s.app_id).await.unwrap().iter().find(|x| x.id == sub).unwrap().billing_anchor;
    let period = turnpike_store::period::monthly_period(anchor, s.clock.now());
    s.clock.set(period.end + 5);
    turnpike_ledger::finalize_due(&s.app.store, s.clock.now()).await.unwrap();
    let invoice =
        s.app.store.all_invoices().await.unwrap().into_iter().find(|i| i.subscription_id == sub).expect("an invoice for the period");
    let usage_minor: i64 =
        s.app.store.invoice_lines(invoice.id).await.unwrap().iter().filter(|l| l.kind == "usage").map(|l| l.amount_minor).sum();
    let started = std::time::Instant::now();
    while s.fake.requests_with("POST", "/v1/invoiceitems").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the worker never pushed the usage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Another worker tick and another finalization run push nothing more.
    turnpike_ledger::finalize_due(&s.app.store, s.clock.now()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let items = s.fake.requests_with("POST", "/v1/invoiceitems");
    assert_eq!(items.len(), 1, "one push per subscription and period");
    assert_eq!(items[0].idempotency_key.as_deref(), Some(format!("tp-usage-{sub}-{}", period.start).as_str()));
    let amount = usage_minor.to_string();
    assert_eq!((items[0].field("customer"), items[0].field("amount")), (Some("cus_000001"), Some(amount.as_str())));
    assert!(s.app.store.stripe_usage_push(sub, period.start).await.unwrap().is_some());

    // customer.subscription.deleted → canceled: the gateway stops serving the paid plan.
    let deleted = event("evt_deleted", "customer.subscription.deleted", T0 + 4000, json!({"id": "sub_pro_1", "object": "subscription"}));
    let (_, v) = s.send(&deleted).await;
    assert_eq!(v["outcome"], "applied");
    s.until("canceled", |r| r.status() != 200).await;
    assert_eq!(s.app.store.list_subscriptions(s.app_id).await.unwrap().iter().find(|x| x.id == sub).unwrap().status, "canceled");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_checkout_webhook_grace_402_and_payment_restore_access() {
    for db in TestDb::each("stripe_checkout_grace").await {
        println!("backend: {}", db.backend());
        checkout_to_grace_to_402_and_back(db).await;
    }
}

async fn bad_deliveries_and_concurrent_duplicates(db: TestDb) {
    let s = setup(&db, "concurrent@example.com").await;
    let store = &s.app.store;
    let paid = checkout_completed("evt_once", T0, s.app_id, s.pro_plan);

    // Refused with 400 problem+json, nothing recorded or changed: a wrong secret, no header, a
    // timestamp 301 s old, and a body altered after signing.
    let before = store.latest_change().await.unwrap();
    for (what, secret, t) in
        [("wrong secret", "whsec_wrong", Some(T0)), ("missing header", WEBHOOK_SECRET, None), ("stale", WEBHOOK_SECRET, Some(T0 - 301))]
    {
        let (st, v) = s.deliver(&paid, secret, t).await;
        assert_eq!(st, 400, "{what}");
        assert_eq!(v["status"], 400, "{what}: problem+json body");
    }
    let mut tampered = paid.clone();
    let sig = signature(WEBHOOK_SECRET, &paid, T0);
    let n = tampered.len();
    tampered[n - 3] = b' ';
    let r = s.app.http.post(s.p("/webhooks/stripe")).header("stripe-signature", sig).body(tampered).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(store.stripe_event_outcome("evt_once").await.unwrap(), None, "not recorded");
    assert_eq!(store.latest_change().await.unwrap(), before, "no change records");
    assert!(policy(&s.gateway_get().await).starts_with("\"burst\";q=20;"), "still the free plan");
    // 300 s old is still inside the tolerance (checked last, so it is applied below only once).

    // The same event delivered 10 times at once changes state once.
    let sig = signature(WEBHOOK_SECRET, &paid, T0 - 300);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (h, url, body, sig) = (s.app.http.clone(), s.p("/webhooks/stripe"), paid.clone(), sig.clone());
        tasks.push(tokio::spawn(async move {
            let r = h.post(url).header("stripe-signature", sig).body(body).send().await.unwrap();
            let st = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (st, v["outcome"].as_str().unwrap_or_default().to_owned())
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert!(outcomes.iter().all(|(st, _)| *st == 200), "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|(_, o)| o == "applied").count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|(_, o)| o == "duplicate").count(), 9, "{outcomes:?}");
    assert_eq!(store.latest_change().await.unwrap() - before, 1, "exactly one change record");
    let audited = store.recent_audit(100).await.unwrap();
    assert_eq!(audited.iter().filter(|a| a.action == "stripe.checkout.session.completed").count(), 1, "exactly one audit row");
    assert_eq!(audited.iter().find(|a| a.action == "stripe.checkout.session.completed").unwrap().target, "stripe_event:evt_once");
    assert_eq!(store.stripe_event_outcome("evt_once").await.unwrap().as_deref(), Some("applied"));
    s.until("pro limits", |r| policy(r).starts_with("\"burst\";q=150;")).await;
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_webhooks_refuse_bad_signatures_and_apply_concurrent_duplicates_once() {
    for db in TestDb::each("stripe_webhook_refusals").await {
        println!("backend: {}", db.backend());
        bad_deliveries_and_concurrent_duplicates(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stripe_configured_the_routes_are_404() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start(&db, &CounterBackend::Local, Arc::new(ManualClock::at(T0))).await;
    let body = checkout_completed("evt_x", T0, 1, 1);
    let r = app
        .http
        .post(format!("{}/webhooks/stripe", app.portal_url))
        .header("stripe-signature", signature(WEBHOOK_SECRET, &body, T0))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(app.http.get(format!("{}/billing/portal", app.portal_url)).send().await.unwrap().status(), 404);
    app.stop().await;
}

// ------------------------------------------------------------------ issue #16: Stripe as a mirror

/// A bridge on the same fake, for driving the worker's steps directly (the running worker does
/// the same every second; both are idempotent, which these tests rely on and check).
fn bridge(s: &Setup) -> turnpike_stripe::Stripe {
    turnpike_stripe::Stripe::new(turnpike_stripe::StripeSettings {
        secret_key: SECRET_KEY.into(),
        webhook_secret: WEBHOOK_SECRET.into(),
        api_base: Some(s.fake.base.clone()),
        grace_seconds: 3600,
        portal_url: s.app.portal_url.clone(),
    })
    .unwrap()
}

/// A cheaper paid plan on the echo API, with its own limits.
async fn basic_plan(s: &Setup) -> i64 {
    let echo = s.app.store.get_api_by_slug("echo").await.unwrap();
    let plan = NewPlan {
        slug: "basic".into(),
        name: "Basic".into(),
        rate_per_second: 10,
        burst: 40,
        monthly_quota: Some(10_000),
        currency: "usd".into(),
        flat_price_minor: 900,
        unit_price_minor_per_1000: 10,
        is_default: false,
    };
    s.app.store.create_plan(echo.id, &plan, T0).await.unwrap().id
}

/// Through the portal's Checkout and the fake's hosted page to an active Pro subscription that
/// Stripe holds; returns (local subscription, Stripe subscription).
async fn subscribe_through_checkout(s: &Setup) -> (i64, String) {
    let dash = s.portal.get(s.p("/dashboard")).send().await.unwrap().text().await.unwrap();
    let form = [("app_id", s.app_id.to_string()), ("plan_id", s.pro_plan.to_string()), ("csrf", csrf(&dash))];
    let r = s.portal.post(s.p("/billing/checkout")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let session_id = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let session = s.fake.complete_checkout(&session_id, "paid");
    let stripe_sub = session["subscription"].as_str().unwrap().to_owned();
    let (_, v) = s.send(&event("evt_checkout_done", "checkout.session.completed", s.clock.now(), session)).await;
    assert_eq!(v["outcome"], "applied");
    s.app.gateway.follow().await.unwrap();
    assert!(policy(&s.gateway_get().await).starts_with("\"burst\";q=150;"), "pro limits");
    (s.sub_id().await, stripe_sub)
}

async fn portal_cancel_reaches_stripe_once(db: TestDb) {
    let s = setup(&db, "cancel@example.com").await;
    let stripe = bridge(&s);
    let (sub, stripe_sub) = subscribe_through_checkout(&s).await;
    let path = format!("/v1/subscriptions/{stripe_sub}");
    assert_eq!(s.fake.object(&stripe_sub).unwrap()["status"], "active");

    // Cancel at the period end in the portal: Stripe is told cancel_at_period_end, once.
    let page = s.portal.get(s.p("/billing")).send().await.unwrap().text().await.unwrap();
    let r = s
        .portal
        .post(s.p(&format!("/billing/subscriptions/{sub}/cancel")))
        .form(&[("when", "period_end"), ("csrf", &csrf(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let rev = s.app.store.get_subscription(sub).await.unwrap().revision;
    turnpike::stripe_sync_step(&s.app.store, &stripe, s.clock.now()).await;
    assert_eq!(s.fake.object(&stripe_sub).unwrap()["cancel_at_period_end"], true);
    let updates = s.fake.requests_with("POST", &path);
    assert!(!updates.is_empty());
    let want = format!("tp-sub-{sub}-r{rev}");
    assert!(updates.iter().all(|r| r.idempotency_key.as_deref() == Some(want.as_str()) && r.field("cancel_at_period_end") == Some("true")));
    assert_eq!(s.fake.created("subscription.update").len(), 1, "applied once at Stripe (other requests were replays)");
    assert_eq!(s.app.store.stripe_pushed_revision(sub).await.unwrap(), Some(rev));

    // Stripe's echo of that push changes nothing locally.
    let before = s.app.store.latest_change().await.unwrap();
    let echo = s.fake.object(&stripe_sub).unwrap();
    s.clock.set(T0 + 20);
    let (_, v) = s.send(&event("evt_echo", "customer.subscription.updated", T0 + 20, echo)).await;
    assert_eq!(v["outcome"], "applied");
    assert_eq!(s.app.store.latest_change().await.unwrap(), before, "an echo is not a change");

    // Cancel now: one DELETE at Stripe; more sync steps and the deleted webhook send nothing more.
    let page = s.portal.get(s.p("/billing")).send().await.unwrap().text().await.unwrap();
    let r = s
        .portal
        .post(s.p(&format!("/billing/subscriptions/{sub}/cancel")))
        .form(&[("when", "now"), ("csrf", &csrf(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(s.app.store.get_subscription(sub).await.unwrap().status, "canceled");
    let rev = s.app.store.get_subscription(sub).await.unwrap().revision;
    for _ in 0..3 {
        turnpike::stripe_sync_step(&s.app.store, &stripe, s.clock.now()).await;
    }
    assert_eq!(s.fake.object(&stripe_sub).unwrap()["status"], "canceled");
    assert_eq!(s.fake.created("subscription.canceled").len(), 1, "Stripe subscription canceled exactly once");
    let deletes = s.fake.requests_with("DELETE", &path);
    let want = format!("tp-sub-{sub}-r{rev}");
    assert!(deletes.iter().all(|r| r.idempotency_key.as_deref() == Some(want.as_str())), "one key: {deletes:?}");
    let n = s.fake.requests().len();
    let deleted = s.fake.object(&stripe_sub).unwrap();
    let (_, v) = s.send(&event("evt_deleted_echo", "customer.subscription.deleted", T0 + 30, deleted)).await;
    assert_eq!(v["outcome"], "applied");
    turnpike::stripe_sync_step(&s.app.store, &stripe, s.clock.now()).await;
    assert_eq!(s.fake.requests().len(), n, "nothing more is sent to Stripe");

    // A crash after Stripe answered but before the mirror was recorded: the re-sent request has
    // the same key, and Stripe (the fake, like Stripe) replays its answer without acting again.
    let replay = s
        .app
        .http
        .delete(format!("{}v1/subscriptions/{stripe_sub}", s.fake.base))
        .bearer_auth(SECRET_KEY)
        .header("idempotency-key", &want)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(s.fake.created("subscription.canceled").len(), 1);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_portal_cancel_cancels_the_stripe_subscription_exactly_once() {
    for db in TestDb::each("stripe_cancel_sync").await {
        println!("backend: {}", db.backend());
        portal_cancel_reaches_stripe_once(db).await;
    }
}

async fn customer_portal_downgrade_reaches_the_gateway(db: TestDb) {
    let s = setup(&db, "downgrade@example.com").await;
    let basic = basic_plan(&s).await;
    let stripe = bridge(&s);
    let (sub, stripe_sub) = subscribe_through_checkout(&s).await;
    turnpike_stripe::sync_catalogue(&s.app.store, &stripe, s.clock.now()).await.unwrap();

    // The developer switches to Basic in Stripe's Customer Portal; Stripe sends the update.
    let updated = s.fake.portal_switch_price(&stripe_sub, &turnpike_stripe::lookup_key(basic, 0));
    s.clock.set(T0 + 50);
    let payload = event("evt_portal_downgrade", "customer.subscription.updated", T0 + 50, updated.clone());
    let older = event("evt_portal_older", "customer.subscription.updated", T0 + 40, updated.clone());
    let before = s.app.store.latest_change().await.unwrap();

    // Ten concurrent deliveries of the same event, plus an older one delivered late.
    once(&storm(&s, &payload).await, "applied");
    let (_, v) = s.send(&older).await;
    assert_eq!(v["outcome"], "stale");
    assert_eq!(s.app.store.latest_change().await.unwrap() - before, 1, "one change record");

    // The gateway's own follower (every `follow_interval_ms`: 250 ms by default) picks the change
    // up from the change log and applies Basic's limits; nothing here forces a reload.
    let r = s.until("basic limits", |r| policy(r).starts_with("\"burst\";q=40;")).await;
    assert_eq!(r.status(), 200);
    let local = s.app.store.get_subscription(sub).await.unwrap();
    assert_eq!((local.plan_id, local.status.as_str()), (basic, "active"));

    // Nothing is pushed back to Stripe: it already holds this.
    let n = s.fake.requests_with("POST", &format!("/v1/subscriptions/{stripe_sub}")).len();
    turnpike::stripe_sync_step(&s.app.store, &stripe, s.clock.now()).await;
    assert_eq!(s.fake.requests_with("POST", &format!("/v1/subscriptions/{stripe_sub}")).len(), n);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_customer_portal_downgrade_changes_the_gateway_limits() {
    for db in TestDb::each("stripe_portal_downgrade").await {
        println!("backend: {}", db.backend());
        customer_portal_downgrade_reaches_the_gateway(db).await;
    }
}

async fn catalogue_is_mirrored_without_duplicates(db: TestDb) {
    let s = setup(&db, "catalogue@example.com").await;
    let basic = basic_plan(&s).await;
    let stripe = bridge(&s);
    let now = s.clock.now();
    // Twice in a row, and a third time concurrently with itself (the worker runs it too).
    for _ in 0..2 {
        turnpike_stripe::sync_catalogue(&s.app.store, &stripe, now).await.unwrap();
    }
    let (a, b) = tokio::join!(
        turnpike_stripe::sync_catalogue(&s.app.store, &stripe, now),
        turnpike_stripe::sync_catalogue(&s.app.store, &stripe, now)
    );
    a.unwrap();
    b.unwrap();
    let products = s.fake.objects("product");
    let prices = s.fake.objects("price");
    let mut keys: Vec<String> = prices.iter().map(|p| p["lookup_key"].as_str().unwrap().to_owned()).collect();
    keys.sort();
    let mut want = vec![turnpike_stripe::lookup_key(s.pro_plan, 0), turnpike_stripe::lookup_key(basic, 0)];
    want.sort();
    assert_eq!(keys, want, "one Price per paid plan version");
    assert_eq!(products.len(), 2, "one Product per paid plan: {products:?}");
    assert_eq!(s.fake.created("product").len(), 2);
    assert_eq!(s.fake.created("price").len(), 2);
    let basic_price = prices.iter().find(|p| p["lookup_key"] == turnpike_stripe::lookup_key(basic, 0)).unwrap();
    assert_eq!(basic_price["product"], turnpike_stripe::product_id(basic));
    assert_eq!(basic_price["unit_amount"], 900);
    assert_eq!(basic_price["metadata"]["turnpike_plan_id"], basic.to_string());

    // A new price version: a new Price, the old one archived (kept for existing subscriptions).
    let price = turnpike_store::NewPlanPrice {
        currency: "usd".into(),
        pricing: r#"{"model":"flat","amount":1200}"#.into(),
        trial_days: 0,
        billable: "admitted_non_5xx".into(),
        base_fee: 1200,
        monthly_quota: None,
    };
    let v = s.app.store.set_plan_price(basic, &price, now + 1).await.unwrap().version;
    for _ in 0..2 {
        let done = turnpike_stripe::sync_catalogue(&s.app.store, &stripe, now + 2).await.unwrap();
        assert_eq!(done.prices, 2);
    }
    let old = s.fake.objects("price").into_iter().find(|p| p["lookup_key"] == turnpike_stripe::lookup_key(basic, 0)).unwrap();
    assert_eq!(old["active"], false, "superseded version archived");
    let new = s.fake.objects("price").into_iter().find(|p| p["lookup_key"] == turnpike_stripe::lookup_key(basic, v)).unwrap();
    assert_eq!((new["active"].as_bool(), new["unit_amount"].as_i64()), (Some(true), Some(1200)));
    assert_eq!(s.fake.created("price").len(), 3);
    assert_eq!(s.fake.created("product").len(), 2, "the new version reuses the plan's Product");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_catalogue_sync_twice_creates_no_duplicate_product_or_price() {
    for db in TestDb::each("stripe_catalogue").await {
        println!("backend: {}", db.backend());
        catalogue_is_mirrored_without_duplicates(db).await;
    }
}

/// Finalize the current period and wait (on the store, not on time) until the worker pushed its
/// usage; then Stripe's billing cycle puts it on an invoice. `crashed_before_record`: Stripe
/// already holds the push (an earlier attempt whose answer was lost, its idempotency key expired),
/// so the worker must find it instead of creating a second item.
async fn close_period(s: &Setup, sub: i64, crashed_before_record: bool) -> turnpike_store::period::Period {
    let anchor = s.app.store.get_subscription(sub).await.unwrap().billing_anchor;
    let period = turnpike_store::period::monthly_period(anchor, s.clock.now());
    let earlier = if crashed_before_record {
        let form = [
            ("customer", "cus_000001".to_owned()),
            ("currency", "usd".to_owned()),
            ("amount", "0".to_owned()),
            ("metadata[subscription_id]", sub.to_string()),
            ("metadata[period_start]", period.start.to_string()),
        ];
        let r = s.app.http.post(format!("{}v1/invoiceitems", s.fake.base)).bearer_auth(SECRET_KEY).form(&form).send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        Some(v["id"].as_str().unwrap().to_owned())
    } else {
        None
    };
    let pushed = s.fake.requests_with("POST", "/v1/invoiceitems").len();
    s.app.gateway.flush().await.unwrap();
    s.clock.set(period.end + 5);
    turnpike_ledger::finalize_due(&s.app.store, s.clock.now()).await.unwrap();
    let started = Instant::now();
    while s.app.store.stripe_usage_push(sub, period.start).await.unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(10), "the worker never pushed the usage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let push = s.app.store.stripe_usage_push(sub, period.start).await.unwrap().unwrap();
    match earlier {
        Some(id) => {
            assert_eq!(s.fake.requests_with("POST", "/v1/invoiceitems").len(), pushed, "found at Stripe, not created again");
            assert_eq!(push.stripe_item_id, id);
        }
        None => assert_eq!(s.fake.requests_with("POST", "/v1/invoiceitems").len(), pushed + 1),
    }
    assert_eq!(s.fake.invoice_pending_items().len(), 1);
    period
}

async fn drift_is_checked_against_stripes_invoices(db: TestDb) {
    let s = setup(&db, "drift@example.com").await;
    let stripe = bridge(&s);
    let (sub, _) = subscribe_through_checkout(&s).await;
    // Some metered traffic in the first month, none in the second.
    for _ in 0..5 {
        assert_eq!(s.gateway_get().await.status(), 200);
    }
    let first = close_period(&s, sub, false).await;
    let second = close_period(&s, sub, true).await;

    // The seeded two-month scenario: Stripe holds exactly what Turnpike invoiced.
    let report = turnpike_stripe::drift_against_stripe(&s.app.store, &stripe, 0, i64::MAX).await.unwrap();
    assert_eq!((report.checked, report.drift.as_slice()), (2, &[][..]), "{report:?}");

    // Someone edits the first month's line at Stripe: exactly that subscription and period.
    let invoices = s.fake.objects("invoice");
    let first_invoice = invoices
        .iter()
        .find(|i| i["lines"]["data"][0]["metadata"]["period_start"].as_str() == Some(first.start.to_string().as_str()))
        .expect("the first month's invoice at Stripe");
    let turnpike_minor = first_invoice["lines"]["data"][0]["amount"].as_i64().unwrap();
    s.fake.edit_object(first_invoice["id"].as_str().unwrap(), |i| i["lines"]["data"][0]["amount"] = json!(turnpike_minor + 777));
    let report = turnpike_stripe::drift_against_stripe(&s.app.store, &stripe, 0, i64::MAX).await.unwrap();
    assert_eq!(report.checked, 2);
    let named: Vec<_> =
        report.drift.iter().map(|d| (d.subscription_id, d.period_start, d.period_end, d.turnpike_minor, d.stripe_minor)).collect();
    assert_eq!(named, vec![(sub, first.start, first.end, turnpike_minor, Some(turnpike_minor + 777))]);
    assert_eq!((report.drift[0].currency.as_str(), report.drift[0].email.as_str()), ("usd", "drift@example.com"));

    // The admin's reconciliation page runs the same check and names the same subscription, period
    // and both amounts; so does the command line.
    let page = s.admin_get("/admin/reports/stripe").await;
    assert!(page.contains("1 of 2 invoices differ"), "{page}");
    let row = page.split("<tr id=\"drift-").nth(1).expect("a drift row");
    assert!(row.starts_with(&format!("{sub}-{}", first.start)), "{row}");
    for amount in [usd(turnpike_minor), usd(turnpike_minor + 777), usd(777)] {
        assert!(row.contains(&amount), "{amount} in {row}");
    }
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_turnpike"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TURNPIKE_")) {
        cli.env_remove(k);
    }
    let cli = cli
        .args(["--config", "/nonexistent/turnpike.toml", "admin", "stripe-drift"])
        .env("TURNPIKE_DATABASE_URL", db.url.as_str())
        .env("TURNPIKE_STRIPE_SECRET_KEY", SECRET_KEY)
        .env("TURNPIKE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("TURNPIKE_STRIPE_API_BASE", &s.fake.base)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(cli.status.code(), Some(1), "drift exits 1: {out} {}", String::from_utf8_lossy(&cli.stderr));
    assert!(out.contains(&format!("subscription {sub} (paid app, drift@example.com) period [{}, {})", first.start, first.end)), "{out}");
    assert!(out.contains(&format!("Turnpike {turnpike_minor} usd, Stripe {}", turnpike_minor + 777)), "{out}");
    assert!(out.contains("1 of 2 invoices differ from Stripe"), "{out}");
    // Only the second month asked about: no drift there.
    let report = turnpike_stripe::drift_against_stripe(&s.app.store, &stripe, second.start, second.end).await.unwrap();
    assert_eq!((report.checked, report.drift.len()), (1, 0));
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_drift_check_reads_stripes_invoices_and_names_the_edited_one() {
    for db in TestDb::each("stripe_drift").await {
        println!("backend: {}", db.backend());
        drift_is_checked_against_stripes_invoices(db).await;
    }
}

/// Deliver `payload` ten times at once (signed now); the outcomes, in completion order.
async fn storm(s: &Setup, payload: &[u8]) -> Vec<String> {
    let sig = signature(WEBHOOK_SECRET, payload, s.clock.now());
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (h, url, body, sig) = (s.app.http.clone(), s.p("/webhooks/stripe"), payload.to_vec(), sig.clone());
        tasks.push(tokio::spawn(async move {
            let r = h.post(url).header("stripe-signature", sig).body(body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            v["outcome"].as_str().unwrap_or_default().to_owned()
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    outcomes
}

/// One delivery did `first`, the nine others were duplicates.
fn once(outcomes: &[String], first: &str) {
    assert_eq!(outcomes.iter().filter(|o| *o == first).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "duplicate").count(), 9, "{outcomes:?}");
}

async fn async_payments_sca_and_refunds(db: TestDb) {
    let s = setup(&db, "async@example.com").await;
    let email = "async@example.com";

    // A SEPA debit: Checkout completes unpaid. Not active until the payment succeeds.
    let dash = s.portal.get(s.p("/dashboard")).send().await.unwrap().text().await.unwrap();
    let form = [("app_id", s.app_id.to_string()), ("plan_id", s.pro_plan.to_string()), ("csrf", csrf(&dash))];
    let r = s.portal.post(s.p("/billing/checkout")).form(&form).send().await.unwrap();
    let session_id = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let pending = s.fake.complete_checkout(&session_id, "unpaid");
    let before = s.app.store.latest_change().await.unwrap();
    once(&storm(&s, &event("evt_cs_unpaid", "checkout.session.completed", T0 + 1, pending.clone())).await, "unmatched");
    assert_eq!(s.app.store.latest_change().await.unwrap(), before, "nothing changed");
    s.app.gateway.follow().await.unwrap();
    assert!(policy(&s.gateway_get().await).starts_with("\"burst\";q=20;"), "still the free plan while the debit is pending");
    // A failed asynchronous payment (of another session) activates nothing either.
    let mut failed = pending.clone();
    failed["id"] = json!("cs_test_other");
    once(&storm(&s, &event("evt_cs_failed", "checkout.session.async_payment_failed", T0 + 2, failed)).await, "unmatched");
    assert_eq!(s.app.store.latest_change().await.unwrap(), before);
    // The debit clears.
    let mut paid = pending;
    paid["payment_status"] = json!("paid");
    once(&storm(&s, &event("evt_cs_paid", "checkout.session.async_payment_succeeded", T0 + 3, paid)).await, "applied");
    s.app.gateway.follow().await.unwrap();
    assert!(policy(&s.gateway_get().await).starts_with("\"burst\";q=150;"), "pro once paid");
    assert_eq!(s.app.store.latest_change().await.unwrap() - before, 1);

    // SCA: the renewal needs the developer's authentication: one email with the hosted link.
    let sca = json!({"id": "in_sca_1", "object": "invoice", "customer": "cus_000001", "status": "open",
                     "hosted_invoice_url": "https://invoice.stripe.test/i/in_sca_1"});
    once(&storm(&s, &event("evt_sca", "invoice.payment_action_required", T0 + 4, sca)).await, "applied");
    let mails: Vec<_> =
        s.app.store.emails_to(email).await.unwrap().into_iter().filter(|m| m.subject.contains("Confirm your payment")).collect();
    assert_eq!(mails.len(), 1, "one email for ten deliveries");
    assert!(mails[0].body.contains("https://invoice.stripe.test/i/in_sca_1"), "{}", mails[0].body);

    // Refunds: the later (larger, cumulative) report first, the earlier one after it.
    let refund = |amount: i64| {
        json!({"id": "ch_1", "object": "charge", "customer": "cus_000001", "currency": "usd",
                                      "amount": 2900, "amount_refunded": amount, "refunded": amount == 2900})
    };
    once(&storm(&s, &event("evt_refund_full", "charge.refunded", T0 + 6, refund(2900))).await, "applied");
    once(&storm(&s, &event("evt_refund_part", "charge.refunded", T0 + 5, refund(1000))).await, "stale");
    let totals = s.app.store.stripe_refund_totals(0, i64::MAX).await.unwrap();
    assert_eq!(totals, vec![turnpike_store::StripeRefundTotal { currency: "usd".into(), refunded: 2900, charges: 1 }]);

    // Credit notes: what a note takes off beyond its refund (that part came as charge.refunded).
    // cn_1: 1,500 of which 500 refunded → 1,000 credited. cn_2 is voided; its `created` arrives
    // late and must not bring it back.
    let note = |id: &str, total: i64, refunded: i64, status: &str| {
        json!({"id": id, "object": "credit_note", "customer": "cus_000001", "currency": "usd", "created": T0 + 7,
               "total": total, "status": status, "type": "post_payment",
               "refunds": [{"amount_refunded": refunded, "refund": "re_1", "type": "refund"}]})
    };
    once(&storm(&s, &event("evt_cn_1", "credit_note.created", T0 + 7, note("cn_1", 1500, 500, "issued"))).await, "applied");
    once(&storm(&s, &event("evt_cn_2_void", "credit_note.voided", T0 + 9, note("cn_2", 800, 0, "void"))).await, "applied");
    once(&storm(&s, &event("evt_cn_2", "credit_note.created", T0 + 8, note("cn_2", 800, 0, "issued"))).await, "stale");
    let credits = s.app.store.stripe_credit_totals(0, i64::MAX).await.unwrap();
    assert_eq!(credits, vec![turnpike_store::StripeCreditTotal { currency: "usd".into(), credited: 1000, notes: 1 }]);
    s.clock.set(T0 + 60);
    let revenue = s.admin_get("/admin/reports").await;
    assert!(revenue.contains(&format!("id=\"refunded-USD\">{}<", usd(2900))), "refunds on the revenue page");
    assert!(revenue.contains(&format!("id=\"credited-USD\">{}<", usd(1000))), "credit notes on the revenue page");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_async_payments_sca_emails_and_refunds_apply_once_under_duplicate_storms() {
    for db in TestDb::each("stripe_async_sca_refund").await {
        println!("backend: {}", db.backend());
        async_payments_sca_and_refunds(db).await;
    }
}

async fn plan_changes_reach_stripe_with_turnpikes_proration(db: TestDb) {
    let s = setup(&db, "planchange@example.com").await;
    let basic = basic_plan(&s).await;
    let echo = s.app.store.get_api_by_slug("echo").await.unwrap();
    let max_plan = NewPlan {
        slug: "max".into(),
        name: "Max".into(),
        rate_per_second: 100,
        burst: 300,
        monthly_quota: None,
        currency: "usd".into(),
        flat_price_minor: 9900,
        unit_price_minor_per_1000: 5,
        is_default: false,
    };
    let max = s.app.store.create_plan(echo.id, &max_plan, T0).await.unwrap().id;
    let stripe = bridge(&s);
    let (sub, stripe_sub) = subscribe_through_checkout(&s).await;
    let price_of = |plan: i64| {
        let k = turnpike_stripe::lookup_key(plan, 0);
        s.fake.objects("price").into_iter().find(|p| p["lookup_key"] == k.as_str()).map(|p| p["id"].clone())
    };

    // Upgrade (what the portal's plan change does through the ledger): pushed at once, prorated.
    s.clock.set(T0 + 100);
    assert_eq!(turnpike_ledger::change_plan(&s.app.store, sub, max, s.clock.now()).await.unwrap(), turnpike_ledger::ChangeOutcome::Now);
    let rev = s.app.store.get_subscription(sub).await.unwrap().revision;
    turnpike::stripe_sync_step(&s.app.store, &stripe, s.clock.now()).await;
    let at_stripe = s.fake.object(&stripe_sub).unwrap();
    assert_eq!(at_stripe["items"]["data"][0]["price"]["id"], price_of(max).unwrap());
    assert_eq!(at_stripe["turnpike_fake_last_proration_behavior"], "create_prorations");
    let posts = s.fake.requests_with("POST", &format!("/v1/subscriptions/{stripe_sub}"));
    let want = format!("tp-sub-{sub}-r{rev}");
    assert!(posts.iter().all(|r| r.idempotency_key.as_deref() == Some(want.as_str())), "{posts:?}");
    assert!(posts.iter().all(|r| r.field("items[0][id]") == at_stripe["items"]["data"][0]["id"].as_str()));

    // Downgrade to a paid plan: Turnpike waits for the period end, so Stripe hears of it then,
    // unprorated.
    let outcome = turnpike_ledger::change_plan(&s.app.store, sub, basic, s.clock.now()).await.unwrap();
    assert!(matches!(outcome, turnpike_ledger::ChangeOutcome::AtPeriodEnd(_)), "{outcome:?}");
    turnpike::stripe_sync_step(&s.app.store, &stripe, s.clock.now()).await;
    assert_eq!(s.fake.object(&stripe_sub).unwrap()["items"]["data"][0]["price"]["id"], price_of(max).unwrap(), "not yet");
    let anchor = s.app.store.get_subscription(sub).await.unwrap().billing_anchor;
    let period = turnpike_store::period::monthly_period(anchor, s.clock.now());
    s.clock.set(period.end + 5);
    turnpike_ledger::finalize_due(&s.app.store, s.clock.now()).await.unwrap();
    assert_eq!(s.app.store.get_subscription(sub).await.unwrap().plan_id, basic);
    turnpike::stripe_sync_step(&s.app.store, &stripe, s.clock.now()).await;
    let at_stripe = s.fake.object(&stripe_sub).unwrap();
    assert_eq!(at_stripe["items"]["data"][0]["price"]["id"], price_of(basic).unwrap());
    assert_eq!(at_stripe["turnpike_fake_last_proration_behavior"], "none");
    assert_eq!(s.fake.created("subscription.update").len(), 2, "two changes, each applied once");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_plan_changes_are_pushed_with_turnpikes_proration() {
    for db in TestDb::each("stripe_plan_change").await {
        println!("backend: {}", db.backend());
        plan_changes_reach_stripe_with_turnpikes_proration(db).await;
    }
}
