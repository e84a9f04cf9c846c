//! Usage alerts and owners' webhooks, on both databases: quota emails at 80 % and 100 % exactly
//! once per period however many workers sweep and across a restart (traffic through the real
//! gateway); webhooks signed, retried with backoff and logged, against a local receiver that fails
//! twice before it accepts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use sha2::Sha256;
use turnpike::alerts::{deliver_webhooks, sweep_alerts, webhook_client, MAX_ATTEMPTS};
use turnpike_store::clock::{ManualClock, SharedClock};
use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{Audit, Role as AccountRole};
use turnpike_testkit::TestDb;

use crate::{CounterBackend, TestApp};

const T0: i64 = 1_785_000_000; // 2026-07-25

async fn quota_emails(app: &TestApp, to: &str) -> Vec<String> {
    let all = app.store.emails_to(to).await.unwrap();
    all.into_iter().filter(|m| m.kind == "alert_quota").map(|m| m.subject).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_alerts_go_out_once_per_threshold_and_period_with_two_workers_and_a_restart() {
    for db in TestDb::each("quota_alerts_once").await {
        let manual = Arc::new(ManualClock::at(T0));
        let clock: SharedClock = manual.clone();
        let mut app = TestApp::start(&db, &CounterBackend::Local, clock.clone()).await;
        let echo = app.store.list_apis().await.unwrap().into_iter().find(|a| a.slug == "echo").unwrap().upstreams[0].url.clone();
        let plan = turnpike_testkit::default_plan("metered", 100, 100, Some(10));
        turnpike_testkit::publish(&app.store, "metered", "Metered", &[(&echo, 1)], turnpike_store::Visibility::Public, &plan, T0).await;
        let hook = app
            .store
            .create_webhook("http://127.0.0.1:9/none", "s", "quota.threshold_reached", &Audit::new(None, "webhook.create", "", ""), T0)
            .await
            .unwrap();
        app.gateway.follow().await.unwrap();
        let who = "quota@example.com";
        let (key, _, _) = app.developer_key(who).await;

        async fn call(app: &TestApp, key: &ApiKey, n: usize) {
            for _ in 0..n {
                let r = app.http.get(app.gw("/metered/x")).header("x-api-key", key.expose()).send().await.unwrap();
                assert_eq!(r.status(), 200);
            }
            app.gateway.flush().await.unwrap();
        }
        // Two workers sweep at once after every step.
        let sweep_twice = |app: &TestApp| {
            let (a, b, now) = (app.store.clone(), app.store.clone(), clock.now());
            async move {
                let (x, y) = tokio::join!(sweep_alerts(&a, "http://portal", now), sweep_alerts(&b, "http://portal", now));
                x.unwrap() + y.unwrap()
            }
        };

        call(&app, &key, 7).await;
        assert_eq!(sweep_twice(&app).await, 0, "{}: 70 % crosses nothing", db.backend());
        assert!(quota_emails(&app, who).await.is_empty());

        call(&app, &key, 1).await;
        assert_eq!(sweep_twice(&app).await, 1, "{}: one of the two workers sends the 80 % alert", db.backend());
        let mails = quota_emails(&app, who).await;
        assert_eq!(mails.len(), 1);
        assert!(mails[0].contains("80%") && mails[0].contains("Metered"), "{mails:?}");

        // A restart between the two thresholds.
        call(&app, &key, 2).await;
        app.stop().await;
        app = TestApp::start(&db, &CounterBackend::Local, clock.clone()).await;
        sweep_twice(&app).await;
        sweep_twice(&app).await;
        let mails = quota_emails(&app, who).await;
        assert_eq!(mails.len(), 2, "{}: {mails:?}", db.backend());
        assert!(mails[1].contains("100%"), "{mails:?}");
        let body = &app.store.emails_to(who).await.unwrap().into_iter().rfind(|m| m.kind == "alert_quota").unwrap().body;
        assert!(body.contains("10 of the 10 requests") && body.contains("refused (429)"), "{body}");

        // The next period starts from zero and alerts again.
        manual.set(T0 + 32 * 86_400);
        call(&app, &key, 9).await;
        sweep_twice(&app).await;
        let mails = quota_emails(&app, who).await;
        assert_eq!(mails.len(), 3, "{}: {mails:?}", db.backend());
        assert!(mails[2].contains("80%"));
        // Each alert raised one webhook event.
        assert_eq!(app.store.webhook_deliveries(hook, 10).await.unwrap().len(), 3);
        app.stop().await;
    }
}

/// Receives webhooks: answers 500 to the first `fail` requests, then 200; keeps what it got.
async fn receiver(fail: usize) -> (SocketAddr, Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr = crate::upstreams::serve(move |req| {
        let log = log.clone();
        async move {
            let headers = req.headers().clone();
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let n = {
                let mut l = log.lock().unwrap();
                l.push((headers, body));
                l.len()
            };
            let mut resp = http::Response::new(http_body_util::Full::new(Bytes::from_static(b"ok")));
            if n <= fail {
                *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            }
            resp
        }
    })
    .await;
    (addr, seen)
}

/// The signature's time when `header` signs `body` with `secret` (an HMAC computed here, not by
/// the code under test).
fn verify(secret: &str, header: &str, body: &[u8]) -> Option<i64> {
    let (t, v1) = header.split_once(",v1=")?;
    let t = t.strip_prefix("t=")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&hex::decode(v1).ok()?).ok()?;
    t.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_with_backoff_and_logged() {
    for db in TestDb::each("webhooks_retried").await {
        let s = &db.store;
        let mut now = T0;
        let (addr, seen) = receiver(2).await;
        let admin = Audit::new(None, "webhook.create", "", "");
        let hook = s.create_webhook(&format!("http://{addr}/hooks"), "whsec_test", "key.created", &admin, now).await.unwrap();
        // Nothing listens on port 9 (discard): every attempt fails to connect.
        let dead = s.create_webhook("http://127.0.0.1:9/", "x", "*", &admin, now).await.unwrap();

        let acc = s.create_account(&Email::parse("hooks@example.com").unwrap(), "x", AccountRole::Developer, now).await.unwrap();
        let app = s.create_app(acc.id, "app", now).await.unwrap();
        s.mark_email_verified(acc.id, now).await.unwrap();
        let key =
            s.create_key_as(acc.id, app.id, "k", &ApiKey::generate(), Audit::new(Some(acc.id), "key.create", "", ""), now).await.unwrap();
        s.revoke_key_audited(app.id, key.id, now, Some(Audit::new(Some(acc.id), "key.revoke", format!("key:{}", key.id), "")))
            .await
            .unwrap();
        let client = webhook_client().unwrap();

        // Attempt 1: 500. Not due again at the same instant.
        assert_eq!(deliver_webhooks(s, &client, now).await.unwrap(), 3, "{}: key.created to both, key.revoked to `*`", db.backend());
        assert_eq!(deliver_webhooks(s, &client, now).await.unwrap(), 0, "nothing due until the backoff ends");
        let log = s.webhook_deliveries(hook, 10).await.unwrap();
        assert_eq!(log.len(), 1, "only the subscribed event type: {log:?}");
        assert_eq!((log[0].status.as_str(), log[0].attempts, log[0].last_status), ("pending", 1, Some(500)));
        assert!((now + 30..=now + 33).contains(&log[0].next_attempt_at), "{log:?}");

        // Attempt 2 after the first backoff: 500 again, the backoff doubles.
        now = log[0].next_attempt_at;
        deliver_webhooks(s, &client, now).await.unwrap();
        let log = s.webhook_deliveries(hook, 10).await.unwrap();
        assert_eq!((log[0].attempts, log[0].last_status), (2, Some(500)));
        assert!((now + 60..=now + 66).contains(&log[0].next_attempt_at), "{log:?}");

        // Attempt 3: delivered.
        now = log[0].next_attempt_at;
        deliver_webhooks(s, &client, now).await.unwrap();
        let log = s.webhook_deliveries(hook, 10).await.unwrap();
        assert_eq!(
            (log[0].status.as_str(), log[0].attempts, log[0].last_status, log[0].delivered_at),
            ("delivered", 3, Some(200), Some(now))
        );

        // The receiver saw the same event three times, each signed at its attempt's time.
        let got = seen.lock().unwrap().clone();
        assert_eq!(got.len(), 3);
        let ids: Vec<_> = got.iter().map(|(h, _)| h["turnpike-event-id"].clone()).collect();
        assert!(ids.iter().all(|i| *i == ids[0]));
        for (h, body) in &got {
            assert_eq!(h["turnpike-event-type"], "key.created");
            let t = verify("whsec_test", h["turnpike-signature"].to_str().unwrap(), body).expect("signed with the endpoint's secret");
            assert!((T0..=now).contains(&t));
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["type"], "key.created");
        }
        assert_eq!(verify("wrong", got[0].0["turnpike-signature"].to_str().unwrap(), &got[0].1), None);

        // The dead endpoint gives up after MAX_ATTEMPTS, each attempt logged.
        for _ in 0..MAX_ATTEMPTS {
            now += 4_000;
            deliver_webhooks(s, &client, now).await.unwrap();
        }
        let log = s.webhook_deliveries(dead, 10).await.unwrap();
        assert_eq!(log.len(), 2);
        for d in &log {
            assert_eq!((d.status.as_str(), d.attempts), ("failed", MAX_ATTEMPTS), "{d:?}");
            assert!(d.last_error.as_deref().unwrap_or_default().contains("request failed"), "{d:?}");
        }
        assert_eq!(seen.lock().unwrap().len(), 3, "a delivered event is not sent again");
    }
}
