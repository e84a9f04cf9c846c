//! The first journey, through every layer: sign up in the portal, create an app and a key, call
//! the echo API through the gateway, see the call on the dashboard after the meter flush.

use std::time::{Duration, Instant};

use turnpike_store::domain::ApiKey;
use turnpike_testkit::TestDb;

use crate::{between, csrf, system_clock, CounterBackend, TestApp};

async fn journey(db: &TestDb, counters: &CounterBackend) {
    let app = TestApp::start(db, counters, system_clock()).await;
    let portal = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let p = |path: &str| format!("{}{}", app.portal_url, path);

    // The seeded catalog shows the demo API.
    let home = portal.get(p("/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Echo"), "catalog lists the seeded echo API");

    // Sign up.
    let form = portal.get(p("/signup")).send().await.unwrap().text().await.unwrap();
    let r = portal
        .post(p("/signup"))
        .form(&[("email", "dev@example.com"), ("password", "a long enough password"), ("csrf", &csrf(&form))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "signup answers \"check your email\"");
    assert!(r.text().await.unwrap().contains("Check your email"));

    // Follow the verification link the log mailer delivers (the outbox row it logs), confirm.
    let mail = app.store.emails_to("dev@example.com").await.unwrap();
    let link = mail
        .iter()
        .rev()
        .find_map(|m| m.body.split_whitespace().find(|w| w.starts_with(&p("/verify-email?token="))).map(str::to_owned))
        .expect("a verification link was mailed");
    let confirm = portal.get(&link).send().await.unwrap();
    assert_eq!(confirm.status(), 200);
    let confirm = confirm.text().await.unwrap();
    let token = link.split_once("token=").unwrap().1;
    // Not logged in: the account's password confirms that the mailbox's owner made the account.
    let form = [("token", token), ("csrf", &csrf(&confirm)), ("password", "a long enough password")];
    let r = portal.post(p("/verify-email")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303, "confirming logs in");
    assert_eq!(r.headers()["location"], "/dashboard");

    // Create an app and a key.
    let dash = portal.get(p("/dashboard")).send().await.unwrap().text().await.unwrap();
    assert!(dash.contains("dev@example.com"));
    let r = portal.post(p("/apps")).form(&[("name", "My first app"), ("csrf", &csrf(&dash))]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let app_path = r.headers()["location"].to_str().unwrap().to_owned();
    let app_page = portal.get(p(&app_path)).send().await.unwrap().text().await.unwrap();
    let r = portal.post(p(&format!("{app_path}/keys"))).form(&[("name", "laptop"), ("csrf", &csrf(&app_page))]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let secret = between(&page, "id=\"new-api-key\">", "<").expect("key shown once").trim().to_owned();
    ApiKey::parse(&secret).expect("a valid key");
    // Shown once: the app page never contains it again.
    let app_page = portal.get(p(&app_path)).send().await.unwrap().text().await.unwrap();
    assert!(!app_page.contains(&secret));

    // Call through the gateway (retry for up to a second while the key's change propagates).
    let started = Instant::now();
    let resp = loop {
        let r = app.http.get(app.gw("/echo/hello?x=1")).bearer_auth(&secret).send().await.unwrap();
        if r.status() == 200 || started.elapsed() > Duration::from_secs(2) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(resp.status(), 200);
    let rl = resp.headers().get("ratelimit").expect("RateLimit header").to_str().unwrap().to_owned();
    assert!(rl.contains("\"quota\";r=999"), "{rl}");
    assert!(resp.headers().contains_key("ratelimit-policy"));
    let echoed: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(echoed["path"], "/hello");
    assert_eq!(echoed["query"], "x=1");
    assert!(echoed["headers"].get("authorization").is_none(), "credential stripped");

    // A wrong key is refused with problem+json.
    let bad = app.http.get(app.gw("/echo/hello")).bearer_auth("tp_live_wrong").send().await.unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");

    // The dashboard shows the call after the meter flush (every 100 ms here).
    let started = Instant::now();
    loop {
        let dash = portal.get(p("/dashboard")).send().await.unwrap().text().await.unwrap();
        let calls = between(&dash, "id=\"calls-this-month\">", "<").map(str::trim).unwrap_or("").to_owned();
        if calls == "1" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "dashboard still shows {calls:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_sqlite_in_process_counters() {
    let db = TestDb::sqlite().await;
    println!("backend: sqlite + local counters");
    journey(&db, &CounterBackend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_postgres_redis() {
    let Some(db) = TestDb::postgres("journey_postgres_redis").await else { return };
    let Some((url, prefix)) = turnpike_testkit::redis_prefix("journey_postgres_redis").await else { return };
    println!("backend: postgres + redis counters");
    journey(&db, &CounterBackend::Redis { url, prefix }).await;
}
