//! Trusted proxies: the forwarded client address is believed from a trusted peer and ignored
//! from any other, in the gateway's forwarded headers and in the portal's login throttle.

use turnpike_testkit::TestDb;

use crate::{csrf, system_clock, CounterBackend, TestApp};

/// What the echo upstream was sent for a call carrying these client headers.
async fn forwarded(app: &TestApp, key: &str, headers: &[(&str, &str)]) -> serde_json::Value {
    let mut req = app.http.get(app.gw("/echo/who")).header("x-api-key", key);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json::<serde_json::Value>().await.unwrap()["headers"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_believes_forwarded_headers_only_from_trusted_proxies() {
    let spoof = [("x-forwarded-for", "6.6.6.6, 198.51.100.4"), ("x-forwarded-proto", "https"), ("forwarded", "for=6.6.6.6")];

    // The test client (127.0.0.1) is the trusted balancer: the client is the rightmost
    // untrusted address, and its scheme is believed.
    let db = TestDb::sqlite().await;
    let app = TestApp::start_with(&db, &CounterBackend::Local, system_clock(), |c| c.trusted_proxies = vec!["127.0.0.0/8".into()]).await;
    let (key, _, _) = app.developer_key("lb@example.com").await;
    let h = forwarded(&app, key.expose(), &spoof).await;
    assert_eq!(h["x-forwarded-for"], "6.6.6.6, 198.51.100.4, 127.0.0.1", "the peer is appended");
    assert!(h["forwarded"].as_str().unwrap().starts_with("for=198.51.100.4;proto=https"), "{h}");
    assert_eq!(h["x-forwarded-proto"], "https");
    app.stop().await;

    // Nobody trusted (the default): the same headers from the client prove nothing.
    let db = TestDb::sqlite().await;
    let app = TestApp::start(&db, &CounterBackend::Local, system_clock()).await;
    let (key, _, _) = app.developer_key("direct@example.com").await;
    let h = forwarded(&app, key.expose(), &spoof).await;
    assert!(h["forwarded"].as_str().unwrap().starts_with("for=127.0.0.1;proto=http"), "{h}");
    assert!(!h["forwarded"].as_str().unwrap().contains("6.6.6.6"), "a client-sent Forwarded is dropped: {h}");
    assert_eq!(h["x-forwarded-proto"], "http");
    app.stop().await;
}

/// One client's failed logins must never lock out another client behind the same balancer
/// (before: every client behind it shared the balancer's address and its allowance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_clients_failed_logins_do_not_lock_out_another_behind_the_same_balancer() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start_with(&db, &CounterBackend::Local, system_clock(), |c| c.trusted_proxies = vec!["127.0.0.1".into()]).await;
    // Client A has used its whole per-IP allowance (20 failures in the window).
    let now = app.clock.now();
    let allowance = turnpike_store::Allowance { key: "login:ip:198.51.100.1".into(), max: 20, window: 15 * 60 };
    for _ in 0..20 {
        assert!(app.store.throttle_take(std::slice::from_ref(&allowance), now).await.unwrap().is_ok());
    }
    let browser = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let attempt = |client_ip: &'static str| {
        let browser = browser.clone();
        let portal = app.portal_url.clone();
        async move {
            let form = browser.get(format!("{portal}/login")).send().await.unwrap().text().await.unwrap();
            let r = browser
                .post(format!("{portal}/login"))
                .header("x-forwarded-for", client_ip)
                .form(&[("csrf", csrf(&form).as_str()), ("email", "nobody@example.com"), ("password", "wrong password, long enough")])
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(attempt("198.51.100.1").await, 429, "client A is throttled");
    assert_eq!(attempt("198.51.100.2").await, 401, "client B, behind the same balancer, is not");
    app.stop().await;
}

/// Send `header` then an HTTP/1.0 request on one connection; the response text ("" if closed).
async fn through_proxy_protocol(app: &TestApp, header: &[u8], key: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.gateway_url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(format!("GET /echo/pp HTTP/1.0\r\nHost: {addr}\r\nX-API-Key: {key}\r\n\r\n").as_bytes());
    s.write_all(&bytes).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v1_and_v2_name_the_client_and_a_connection_without_a_header_is_closed() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start_with(&db, &CounterBackend::Local, system_clock(), |c| c.proxy_protocol = true).await;
    let (key, _, _) = app.developer_key("pp@example.com").await;
    let v1 = through_proxy_protocol(&app, b"PROXY TCP4 198.51.100.7 10.0.0.1 5555 8000\r\n", key.expose()).await;
    assert!(v1.starts_with("HTTP/1.0 200") && v1.contains("for=198.51.100.7;proto=http"), "{v1}");
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[0x21, 0x11, 0, 12, 203, 0, 113, 9, 10, 0, 0, 1, 0x15, 0xb3, 0x1f, 0x40]);
    let v2 = through_proxy_protocol(&app, &v2, key.expose()).await;
    assert!(v2.starts_with("HTTP/1.0 200") && v2.contains("for=203.0.113.9;proto=http"), "{v2}");
    assert_eq!(through_proxy_protocol(&app, b"", key.expose()).await, "", "no header: closed unanswered");
    app.stop().await;
}

/// The access log of the real binary names the forwarded client only when the peer is a trusted
/// proxy; otherwise the TCP peer, whatever the client claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_names_the_forwarded_client_only_behind_a_trusted_proxy() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let up = crate::upstreams::start(crate::upstreams::Behaviour::Named("up")).await;
    for (trusted, expected) in [(Some("[\"127.0.0.1\"]"), "198.51.100.4"), (None, "127.0.0.1")] {
        let db = TestDb::sqlite().await;
        let s = &db.store;
        let now = turnpike_store::clock::Clock::now(&turnpike_store::clock::SystemClock);
        let plan = turnpike_testkit::free_plan();
        turnpike_testkit::publish(s, "echo", "Echo", &[(&format!("http://{up}"), 1)], turnpike_store::Visibility::Public, &plan, now).await;
        let acc = s
            .create_account(&turnpike_store::domain::Email::parse("log@example.com").unwrap(), "x", turnpike_store::Role::Developer, now)
            .await
            .unwrap();
        let app_row = s.create_app(acc.id, "app", now).await.unwrap();
        s.subscribe_defaults(app_row.id, now).await.unwrap();
        let key = turnpike_store::domain::ApiKey::generate();
        s.create_key(app_row.id, "k", &key, now).await.unwrap();

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnpike"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TURNPIKE_")) {
            cmd.env_remove(k);
        }
        cmd.arg("gateway")
            .env("TURNPIKE_DATABASE_URL", &db.url)
            .env("TURNPIKE_GATEWAY_ADDR", "127.0.0.1:0")
            .env("TURNPIKE_METRICS_ADDR", "127.0.0.1:0")
            .env("TURNPIKE_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(t) = trusted {
            cmd.env("TURNPIKE_TRUSTED_PROXIES", t);
        }
        let mut child = cmd.spawn().unwrap();
        let mut gateway = None;
        for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("gateway: ") {
                gateway = Some(url.trim().to_owned());
            }
            if line == "ready" {
                break;
            }
        }
        // Every stderr line, as it comes.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let r = reqwest::Client::new()
            .get(format!("{}/echo/x", gateway.expect("the gateway's URL")))
            .header("x-api-key", key.expose())
            .header("x-forwarded-for", "6.6.6.6, 198.51.100.4")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Some(l) = rx.recv().await {
                if l.contains(&id) {
                    return l;
                }
            }
            panic!("stderr closed before the access-log line");
        })
        .await
        .expect("the access-log line is written");
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(entry["client"], expected, "trusted={trusted:?}: {line}");
        assert!(!line.contains("6.6.6.6"), "a spoofed hop never reaches the log: {line}");
        assert!(!line.contains(key.expose()), "the key never reaches the log");
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let _ = child.wait();
    }
}
