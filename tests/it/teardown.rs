//! Connection tear-down after an early answer: a client still uploading an oversized body reads
//! the 413 instead of running into a connection reset (RFC 9112 §9.6).

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use turnpike_testkit::TestDb;

use crate::{system_clock, CounterBackend, TestApp};

/// Send `head`, then upload 64 KiB pieces of `piece` the way curl does: between pieces, look
/// for an answer without waiting; stop at the end of the answer's head. A write that fails
/// before the answer was read is the reset the gateway must avoid. Returns the answer's head.
async fn upload_until_answered(addr: &str, head: &str, piece: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let mut sent = 0usize;
    loop {
        match s.try_read(&mut buf) {
            Ok(0) => panic!("connection closed after {sent} body bytes with no answer: {:?}", String::from_utf8_lossy(&answer)),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read failed after {sent} body bytes: {e}"),
        }
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            return String::from_utf8_lossy(&answer[..end]).into_owned();
        }
        assert!(sent < 256 * 1024 * 1024, "no answer after {sent} body bytes");
        match tokio::time::timeout(Duration::from_secs(10), s.write_all(piece)).await {
            Ok(Ok(())) => sent += piece.len(),
            Ok(Err(e)) => panic!("upload failed with `{e}` after {sent} body bytes, before the answer was read"),
            Err(_) => panic!("upload stalled after {sent} body bytes with no answer"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploading_client_reads_the_413_instead_of_a_reset() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start_with(&db, &CounterBackend::Local, system_clock(), |c| c.max_body_bytes = 64 * 1024).await;
    let (key, key_id, _) = app.developer_key("teardown@example.com").await;
    let addr = app.gateway_url.trim_start_matches("http://").to_owned();
    let chunked_piece = [format!("{:x}\r\n", 64 * 1024).into_bytes(), vec![b'a'; 64 * 1024], b"\r\n".to_vec()].concat();
    let raw_piece = vec![b'a'; 64 * 1024];
    for round in 0..3 {
        // A streamed body, cut off by the gateway at the limit while it is being forwarded.
        let head = format!(
            "POST /echo/upload HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
            key.expose()
        );
        let answer = upload_until_answered(&addr, &head, &chunked_piece).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "round {round}, chunked: {answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "round {round}, chunked: {answer}");
        // A declared 1 GiB body, refused from its head while the client sends it without waiting.
        let head = format!(
            "POST /echo/upload HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\nContent-Length: 1073741824\r\n\r\n",
            key.expose()
        );
        let answer = upload_until_answered(&addr, &head, &raw_piece).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "round {round}, content-length: {answer}");
    }
    // The gateway serves on: a normal request right after, and the metering is exact (the
    // streamed bodies were admitted and then cut off; the declared ones were refused unread).
    let r = app.http.get(app.gw("/echo/after")).bearer_auth(key.expose()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.gateway.flush().await.unwrap();
    let total = app.store.key_usage_total(key_id).await.unwrap();
    assert_eq!(total.admitted, 4, "3 streamed 413s + 1 success: {total:?}");
    assert_eq!(total.errors, 3, "{total:?}");
    app.stop().await;
}
