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
