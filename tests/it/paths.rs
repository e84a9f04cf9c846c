//! Path hygiene over real sockets: what the upstream sees for each spelling of a dot-segment,
//! and which spellings are refused (`400 bad_path`). Requests are written byte for byte: an
//! HTTP client library would resolve the dot-segments itself.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turnpike_testkit::TestDb;

use crate::{system_clock, CounterBackend, TestApp};

/// Send `GET {path}` exactly as written; (status, body).
async fn raw_get(app: &TestApp, path: &str, key: &str) -> (u16, serde_json::Value) {
    let addr = app.gateway_url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // HTTP/1.0: the answer is delimited by the close, never chunked.
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nX-API-Key: {key}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_are_resolved_inside_the_route_or_refused_and_the_upstream_sees_a_clean_path() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start(&db, &CounterBackend::Local, system_clock()).await;
    let echo = app.store.list_apis().await.unwrap().into_iter().find(|a| a.slug == "echo").unwrap().upstreams[0].url.clone();
    // Two APIs on one upstream host, each under its own base path.
    app.publish("a", &[(&format!("{echo}/a-base"), 1)]).await;
    app.publish("b", &[(&format!("{echo}/b-base"), 1)]).await;
    let (key, _, _) = app.developer_key("paths@example.com").await;
    let key = key.expose();

    // Resolved: the upstream sees the clean path under the base path of the API the resolved
    // path routes to (which is the API the request is authenticated and billed against).
    for (path, api, seen) in [
        ("/a/x", "a", "/a-base/x"),
        ("/a/x/../y", "a", "/a-base/y"),
        ("/a/./x/./y", "a", "/a-base/x/y"),
        ("/a/x/%2e%2e/y", "a", "/a-base/y"),
        ("/a/x/%2E./y", "a", "/a-base/y"),
        ("/a/x/.%2e/y", "a", "/a-base/y"),
        ("/a/x/..", "a", "/a-base/"),
        ("//a//x///y", "a", "/a-base/x/y"),
        ("/a/../b/z", "b", "/b-base/z"),
        ("/a/%2e%2e/b/z", "b", "/b-base/z"),
        ("/a/x.json?q=../..", "a", "/a-base/x.json"),
    ] {
        let (status, v) = raw_get(&app, path, key).await;
        assert_eq!(status, 200, "{path}: {v}");
        assert_eq!(v["path"], seen, "{path}");
        assert_eq!(v["headers"]["x-turnpike-api"], api, "{path}");
    }

    // Refused before routing: ambiguous spellings and escapes above the root.
    for path in [
        "/a/../..",
        "/a/../../b-base/z",
        "/a/%2e%2e/%2e%2e/x",
        "/a/..%2f..%2fb/z",
        "/a/..%2F..%2Fb/z",
        "/a/..%5c..%5cb",
        "/a/%252e%252e/b/z",
        "/a/%252e%252e%252fb",
        "/a/x/..;/y",
        "/a/x/..%3b/y",
        "/a/%2e%2e;x=1/b",
        "/a/x%00",
        "/a/%zz",
    ] {
        let (status, v) = raw_get(&app, path, key).await;
        assert_eq!((status, v["code"].as_str()), (400, Some("bad_path")), "{path}: {v}");
    }
    // A raw backslash: refused, by the HTTP parser or by the path check.
    let (status, _) = raw_get(&app, "/a/x\\..\\..\\b", key).await;
    assert_eq!(status, 400);
    app.stop().await;
}
