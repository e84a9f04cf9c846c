//! Every status the gateway answers itself, over real sockets, on each counter backend.

use std::time::Duration;

use turnpike_testkit::TestDb;

use crate::upstreams::{self, Behaviour};
use crate::{system_clock, CounterBackend, TestApp};

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/problem+json", "status {status}");
    let v: serde_json::Value = r.json().await.unwrap();
    (status, v["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_statuses_402_403_413_431_502_504() {
    for counters in CounterBackend::each("gateway_statuses").await {
        let db = TestDb::sqlite().await;
        let app = TestApp::start_with(&db, &counters, system_clock(), |c| {
            c.max_body_bytes = 1024;
            c.upstream_timeout_ms = 300;
        })
        .await;
        let slow = upstreams::start(Behaviour::Slow(Duration::from_secs(3))).await;
        let refused = upstreams::refused().await;
        app.publish("slow", &[(&format!("http://{slow}"), 1)]).await;
        app.publish("down", &[(&format!("http://{refused}"), 1)]).await;
        let (key, key_id, app_id) = app.developer_key("s@example.com").await;
        let k = key.expose();
        let h = &app.http;

        // 200 baseline, then 413 by declared length and by a streamed (chunked) body.
        assert_eq!(h.post(app.gw("/echo/x")).bearer_auth(k).body(vec![b'a'; 1000]).send().await.unwrap().status(), 200);
        assert_eq!(
            code(h.post(app.gw("/echo/x")).bearer_auth(k).body(vec![b'a'; 5000]).send().await.unwrap()).await,
            (413, "body_too_large".into())
        );
        let chunks = futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b'b'; 500])));
        let r = h.post(app.gw("/echo/x")).bearer_auth(k).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
        assert_eq!(code(r).await, (413, "body_too_large".into()));

        // 431: hyper refuses oversized request headers before any phase runs.
        // A fresh connection: the previous one was closed mid-body by the 413.
        let fresh = reqwest::Client::new();
        let r = fresh.get(app.gw("/echo/x")).bearer_auth(k).header("x-big", "a".repeat(70 * 1024)).send().await.unwrap();
        assert_eq!(r.status(), 431);

        // 502 (refused) and 504 (slow past the timeout), promptly.
        let t = std::time::Instant::now();
        assert_eq!(code(h.get(app.gw("/down/x")).bearer_auth(k).send().await.unwrap()).await, (502, "bad_gateway".into()));
        assert_eq!(code(h.get(app.gw("/slow/x")).bearer_auth(k).send().await.unwrap()).await, (504, "gateway_timeout".into()));
        assert!(t.elapsed() < Duration::from_secs(3), "answered before the slow upstream would have");

        // 403 for an API the app is not subscribed to (a draft's sibling: create a public API after
        // the app was created, so the default subscription does not exist).
        let subs_before = app.store.list_subscriptions(app_id).await.unwrap().len();
        assert_eq!(subs_before, 3, "echo, slow, down");
        app.publish("later", &[("http://127.0.0.1:1", 1)]).await;
        assert_eq!(code(h.get(app.gw("/later/x")).bearer_auth(k).send().await.unwrap()).await, (403, "not_subscribed".into()));

        // 402 once the subscription is past due; back to 200 once paid.
        let echo_sub = app.store.list_subscriptions(app_id).await.unwrap().into_iter().find(|s| s.plan_id == 1).unwrap();
        app.store.set_subscription_status(echo_sub.id, "past_due", 0).await.unwrap();
        app.gateway.follow().await.unwrap();
        let r = h.get(app.gw("/echo/x")).bearer_auth(k).send().await.unwrap();
        let v: serde_json::Value = {
            assert_eq!(r.status(), 402);
            r.json().await.unwrap()
        };
        assert_eq!(v["code"], "payment_required");
        assert!(v["billing_url"].as_str().unwrap().ends_with("/billing"));
        app.store.set_subscription_status(echo_sub.id, "active", 0).await.unwrap();
        app.gateway.follow().await.unwrap();
        assert_eq!(h.get(app.gw("/echo/x")).bearer_auth(k).send().await.unwrap().status(), 200);

        // Metering: admitted are echo 200, the chunked 413 (admitted, then its body overflowed),
        // 502, 504 and the final 200. Refused before admission: the declared-length 413, 431, 403,
        // 402.
        app.gateway.flush().await.unwrap();
        let total = app.store.key_usage_total(key_id).await.unwrap();
        assert_eq!(total.admitted, 5, "{total:?}");
        assert_eq!(total.errors, 3, "413 + 502 + 504 recorded as errors: {total:?}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_weights_hold_within_three_points_over_10k_requests() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start(&db, &CounterBackend::Local, system_clock()).await;
    let a = upstreams::start(Behaviour::Named("stable")).await;
    let b = upstreams::start(Behaviour::Named("canary")).await;
    app.publish("split", &[(&format!("http://{a}"), 90), (&format!("http://{b}"), 10)]).await;
    let (key, _, _) = app.developer_key("c@example.com").await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    for w in 0..16 {
        let (h, url, k, tx) = (app.http.clone(), app.gw("/split/x"), key.expose().to_owned(), tx.clone());
        tokio::spawn(async move {
            for _ in 0..10_000 / 16 + usize::from(w < 10_000 % 16) {
                let body = h.get(&url).bearer_auth(&k).send().await.unwrap().text().await.unwrap();
                tx.send(body == "canary").await.unwrap();
            }
        });
    }
    drop(tx);
    let (mut n, mut canary) = (0, 0);
    while let Some(is_canary) = rx.recv().await {
        n += 1;
        canary += usize::from(is_canary);
    }
    assert_eq!(n, 10_000);
    let pct = canary as f64 * 100.0 / n as f64;
    assert!((7.0..=13.0).contains(&pct), "canary share {pct:.2}% (want 10 ± 3)");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_target_is_ejected_after_three_failures_and_probed_back() {
    let db = TestDb::sqlite().await;
    let clock = std::sync::Arc::new(turnpike_store::clock::ManualClock::at(1_790_000_000));
    let app = TestApp::start(&db, &CounterBackend::Local, clock.clone()).await;
    let good = upstreams::start(Behaviour::Named("healthy")).await;
    let dead = upstreams::refused().await;
    app.publish("pool", &[(&format!("http://{good}"), 1), (&format!("http://{dead}"), 1)]).await;
    let (key, _, _) = app.developer_key("eject@example.com").await;
    let round = |n: usize| {
        let (h, url, k) = (app.http.clone(), app.gw("/pool/x"), key.expose().to_owned());
        let clock = clock.clone();
        async move {
            let mut bad = 0;
            for _ in 0..n {
                // A free-plan burst is 100k here; still, keep the stopped clock moving a little.
                clock.advance_micros(1);
                let st = h.get(&url).bearer_auth(&k).send().await.unwrap().status();
                if st == 502 {
                    bad += 1;
                } else {
                    assert_eq!(st, 200);
                }
            }
            bad
        }
    };
    assert_eq!(round(60).await, 3, "exactly three failures eject the dead target");
    // After the cooldown one probe goes to it, fails, and it is ejected again at once.
    clock.advance_micros(10_000_001);
    assert_eq!(round(60).await, 1, "one probe after the cooldown");
    app.stop().await;
}

/// Read an HTTP/1.1 response head byte by byte (the connection may be taken over after it).
async fn read_head(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "connection closed early: {}", String::from_utf8_lossy(&head));
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_pass_through() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::sqlite().await;
    let app = TestApp::start(&db, &CounterBackend::Local, system_clock()).await;
    let (up, _) = upstreams::start_upgrade_echo().await;
    app.publish("ws", &[(&format!("http://{up}"), 1)]).await;
    let (key, key_id, _) = app.developer_key("ws@example.com").await;
    let addr = app.gateway_url.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "GET /ws/chat HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        key.expose()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for msg in [&b"ping"[..], b"a second message"] {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(got, msg);
    }
    drop(s);
    app.gateway.flush().await.unwrap();
    let t = app.store.key_usage_total(key_id).await.unwrap();
    assert_eq!((t.admitted, t.errors), (1, 0), "the upgrade is one admitted, successful request");
    app.stop().await;
}

/// Issue 11: any `Upgrade:` protocol used to be tunnelled after authentication, and after the
/// 101 nothing was limited or metered (an h2c upgrade carries any number of requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_other_than_websocket_are_refused_and_not_forwarded() {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::sqlite().await;
    let app = TestApp::start(&db, &CounterBackend::Local, system_clock()).await;
    let (up, seen) = upstreams::start_upgrade_echo().await;
    app.publish("ws", &[(&format!("http://{up}"), 1)]).await;
    let (key, key_id, _) = app.developer_key("h2c@example.com").await;
    let addr = app.gateway_url.trim_start_matches("http://").to_owned();
    let ws = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
    let cases = [
        "GET / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n".to_owned(),
        "GET / HTTP/1.1\r\nUpgrade: TLS/1.0\r\n".to_owned(),
        "GET / HTTP/1.1\r\nUpgrade: foo\r\n".to_owned(),
        "GET / HTTP/1.1\r\nUpgrade: websocket, h2c\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            .to_owned(),
        format!("GET / HTTP/1.1\r\n{ws}"),
        format!("GET / HTTP/1.1\r\n{ws}Sec-WebSocket-Key: not-16-bytes\r\n"),
        format!("POST / HTTP/1.1\r\n{ws}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n"),
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n".to_owned(),
    ];
    for start in cases {
        let start = start.replacen(" / ", " /ws/x ", 1);
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let req = format!("{start}Host: {addr}\r\nAuthorization: Bearer {}\r\nConnection: Upgrade\r\n\r\n", key.expose());
        s.write_all(req.as_bytes()).await.unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("http/1.1 400"), "{start}: {head}");
        assert!(head.contains("content-type: application/problem+json"), "{head}");
        let len: usize = crate::between(&head, "content-length: ", "\r\n").expect("content-length").parse().unwrap();
        let mut body = vec![0u8; len];
        tokio::io::AsyncReadExt::read_exact(&mut s, &mut body).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("\"code\":\"upgrade_refused\""), "{start}");
    }
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing reached the upstream");
    app.gateway.flush().await.unwrap();
    let t = app.store.key_usage_total(key_id).await.unwrap();
    assert_eq!(t.admitted, 0, "a refused upgrade is not admitted");
    app.stop().await;
}
