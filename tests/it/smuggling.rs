//! Hostile HTTP/1 framing on raw sockets: request-smuggling shapes are refused (400) or handled
//! safely, and the upstream sees exactly one request per request the client was answered 2xx
//! for, never the smuggled one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use turnpike_testkit::TestDb;

use crate::{system_clock, CounterBackend, TestApp};

/// An upstream that records the path of every request it receives.
async fn recording_upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr = crate::upstreams::serve(move |req| {
        let log = log.clone();
        async move {
            let path = req.uri().path().to_owned();
            let _ = req.into_body().collect().await;
            log.lock().unwrap().push(path);
            Response::new(Full::new(Bytes::from_static(b"ok")))
        }
    })
    .await;
    (addr, seen)
}

/// Write `bytes` on a fresh connection and read until the gateway closes it or goes quiet.
async fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(700), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_shapes_are_refused_and_the_upstream_never_sees_a_smuggled_request() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start(&db, &CounterBackend::Local, system_clock()).await;
    let (upstream, seen) = recording_upstream().await;
    app.publish("smug", &[(&format!("http://{upstream}"), 1)]).await;
    let (key, _, _) = app.developer_key("smuggler@example.com").await;
    let k = key.expose();
    let gw = app.gateway_url.trim_start_matches("http://").to_owned();
    let head = |extra: &str| format!("POST /smug/a HTTP/1.1\r\nHost: gw\r\nX-API-Key: {k}\r\n{extra}");
    let smuggled = format!("GET /smug/smuggled HTTP/1.1\r\nHost: gw\r\nX-API-Key: {k}\r\n\r\n");

    let cases: Vec<(&str, String)> = vec![
        ("CL then TE", format!("{}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}", head(""))),
        ("TE then CL", format!("{}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{smuggled}", head(""))),
        ("duplicate conflicting CL", format!("{}Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc{smuggled}", head(""))),
        ("CL with a plus sign", format!("{}Content-Length: +5\r\n\r\nhello{smuggled}", head(""))),
        (
            "chunked on HTTP/1.0",
            format!(
                "POST /smug/a HTTP/1.0\r\nHost: gw\r\nX-API-Key: {k}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        ("TE gzip without chunked", format!("{}Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n{smuggled}", head(""))),
        ("space before the colon", format!("{}Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{smuggled}", head(""))),
        ("vertical tab in TE", format!("{}Transfer-Encoding:\x0bchunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{smuggled}", head(""))),
        ("empty chunk size", format!("{}Transfer-Encoding: chunked\r\n\r\n\r\n\r\n{smuggled}", head(""))),
    ];

    for (name, bytes) in cases {
        let before = seen.lock().unwrap().len();
        let answer = raw(&gw, bytes.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after: Vec<String> = seen.lock().unwrap()[before..].to_vec();
        let ok_answers = answer.matches("HTTP/1.1 200").count();
        let status_line = answer.lines().next().unwrap_or("(connection closed without an answer)").to_owned();
        assert!(
            status_line.starts_with("HTTP/1.1 400") || status_line.starts_with("HTTP/1.0 400") || ok_answers > 0 || answer.is_empty(),
            "{name}: {status_line}"
        );
        assert!(!after.iter().any(|p| p.contains("smuggled")), "{name}: the upstream saw the smuggled request: {after:?}");
        assert_eq!(after.len(), ok_answers.min(1), "{name}: upstream requests {after:?} for answer {status_line:?}");
        println!("{name}: {status_line}; upstream saw {after:?}");
    }

    // A well-formed request on the same gateway still works, exactly once upstream.
    let before = seen.lock().unwrap().len();
    let answer = raw(&gw, format!("{}Content-Length: 5\r\nConnection: close\r\n\r\nhello", head("")).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen.lock().unwrap()[before..].to_vec(), vec!["/a".to_owned()]);
    app.stop().await;
}
