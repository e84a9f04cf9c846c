//! TLS listeners over real sockets: the gateway and the portal serve HTTPS with a certificate
//! from a test CA, over HTTP/1.1 and HTTP/2 (ALPN); replacing the certificate files reloads them
//! (file watch in-process, SIGHUP on the real binary) so new connections present the new
//! certificate while a request already in flight completes on the old connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{CertificateParams, KeyPair};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use turnpike_testkit::TestDb;

use crate::https::{ca, Ca};
use crate::{system_clock, CounterBackend, TestApp};

/// A certificate for `localhost` signed by `ca`, written as `{stem}.crt` (chain) and `{stem}.key`
/// in `dir` through a rename, the way deployment tools replace files; returns the leaf's DER.
fn issue(ca: &Ca, dir: &Path, stem: &str) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca.cert, &ca.key).unwrap();
    let (crt, k) = files(dir, stem);
    let tmp = dir.join(format!("{stem}.tmp"));
    std::fs::write(&tmp, key.serialize_pem()).unwrap();
    std::fs::rename(&tmp, &k).unwrap();
    std::fs::write(&tmp, format!("{}{}", cert.pem(), ca.cert.pem())).unwrap();
    std::fs::rename(&tmp, &crt).unwrap();
    cert.der().to_vec()
}

fn files(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")))
}

fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("https://").trim_end_matches('/').parse().unwrap()
}

/// One client connection over TLS, trusting only the test CA, with one ALPN protocol.
enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

struct Answer {
    status: u16,
    version: http::Version,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Conn {
    /// Connect and handshake; also returns the leaf certificate the server presented.
    async fn open(addr: SocketAddr, ca: &Ca, alpn: &[u8]) -> (Conn, Vec<u8>) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert.der().clone()).unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.expect("TLS handshake");
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].as_ref().to_vec();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn), "the server agreed to the protocol offered");
        let io = TokioIo::new(tls);
        let conn = if alpn == b"h2" {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.unwrap();
            tokio::spawn(conn);
            Conn::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Conn::H1(send)
        };
        (conn, leaf)
    }

    async fn get(&mut self, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
        let uri = match self {
            Conn::H1(_) => path.to_owned(),
            Conn::H2(_) => format!("https://localhost:{}{path}", addr.port()),
        };
        let mut req = http::Request::get(uri).header("host", format!("localhost:{}", addr.port()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Empty::new()).unwrap();
        let resp = match self {
            Conn::H1(s) => s.send_request(req).await.unwrap(),
            Conn::H2(s) => s.send_request(req).await.unwrap(),
        };
        let (status, version, headers) = (resp.status().as_u16(), resp.version(), resp.headers().clone());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Answer { status, version, headers, body }
    }
}

/// An upstream that tells when a request has arrived and answers it only when released.
async fn held_upstream() -> (SocketAddr, Arc<Notify>, Arc<Notify>) {
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (a, r) = (arrived.clone(), release.clone());
    let addr = crate::upstreams::serve(move |_req| {
        let (a, r) = (a.clone(), r.clone());
        async move {
            a.notify_one();
            r.notified().await;
            http::Response::new(http_body_util::Full::new(Bytes::from_static(b"released")))
        }
    })
    .await;
    (addr, arrived, release)
}

/// Wait (on the reload counter, not on time) until `tls` has reloaded at least `n` times.
async fn reloaded(tls: &turnpike_tls::ServerTls, n: u64) {
    let mut r = tls.reloads();
    let done = r.wait_for(|g| *g >= n);
    tokio::time::timeout(Duration::from_secs(60), done).await.expect("the certificate files were reloaded").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_portal_serve_tls_over_h1_and_h2_and_reload_certificates_without_cutting_a_request() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let gw_leaf = issue(&ca, dir.path(), "gateway");
    let portal_leaf = issue(&ca, dir.path(), "portal");
    let db = TestDb::sqlite().await;
    let (gw_files, portal_files) = (files(dir.path(), "gateway"), files(dir.path(), "portal"));
    let app = TestApp::start_with(&db, &CounterBackend::Local, system_clock(), |c| {
        (c.gateway_tls_cert_file, c.gateway_tls_key_file) = (Some(gw_files.0.clone()), Some(gw_files.1.clone()));
        (c.portal_tls_cert_file, c.portal_tls_key_file) = (Some(portal_files.0.clone()), Some(portal_files.1.clone()));
        c.tls_reload_interval_ms = 25;
    })
    .await;
    assert!(app.gateway_url.starts_with("https://") && app.portal_url.starts_with("https://"), "URLs say https");
    let (gw, portal) = (addr_of(&app.gateway_url), addr_of(&app.portal_url));
    let (up, arrived, release) = held_upstream().await;
    app.publish("held", &[(&format!("http://{up}"), 1)]).await;
    let (key, _, _) = app.developer_key("tls@example.com").await;
    let auth = [("x-api-key", key.expose())];

    // Both protocols on both listeners, with the configured certificate.
    for (alpn, version) in [(&b"http/1.1"[..], http::Version::HTTP_11), (&b"h2"[..], http::Version::HTTP_2)] {
        let (mut c, leaf) = Conn::open(gw, &ca, alpn).await;
        assert_eq!(leaf, gw_leaf);
        let a = c.get(gw, "/echo/hello", &auth).await;
        assert_eq!((a.status, a.version), (200, version), "{}", String::from_utf8_lossy(&a.body));
        let seen: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(seen["headers"]["x-forwarded-proto"], "https", "the upstream learns the client used TLS");
        assert!(seen["headers"]["forwarded"].as_str().unwrap_or_default().contains("proto=https"), "{seen}");

        let (mut c, leaf) = Conn::open(portal, &ca, alpn).await;
        assert_eq!(leaf, portal_leaf);
        let a = c.get(portal, "/login", &[]).await;
        assert_eq!((a.status, a.version), (200, version));
        let cookie = a.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(cookie.starts_with("__Host-turnpike=") && cookie.contains("Secure"), "session cookie over TLS: {cookie:?}");
    }

    // A request in flight on the old certificate...
    let (mut old, leaf) = Conn::open(gw, &ca, b"http/1.1").await;
    assert_eq!(leaf, gw_leaf);
    let key_header = key.expose().to_owned();
    let in_flight = tokio::spawn(async move {
        let a = old.get(gw, "/held/x", &[("x-api-key", &key_header)]).await;
        (a, old)
    });
    arrived.notified().await;

    // ...while the files are replaced: new connections get the new certificate.
    let gw_leaf2 = issue(&ca, dir.path(), "gateway");
    let gateway_tls = app.gateway_tls.clone().unwrap();
    reloaded(&gateway_tls, 1).await;
    assert_eq!(gateway_tls.fingerprint(), fingerprint(&gw_leaf2));
    let (mut fresh, leaf) = Conn::open(gw, &ca, b"h2").await;
    assert_eq!(leaf, gw_leaf2, "a new connection sees the new certificate");
    assert_eq!(fresh.get(gw, "/echo/after", &auth).await.status, 200);

    // The held request completes, and its connection keeps serving.
    release.notify_one();
    let (a, mut old) = in_flight.await.unwrap();
    assert_eq!((a.status, &a.body[..]), (200, &b"released"[..]));
    assert_eq!(old.get(gw, "/echo/again", &auth).await.status, 200);

    // The portal's certificate reloads the same way.
    let portal_leaf2 = issue(&ca, dir.path(), "portal");
    reloaded(app.portal_tls.as_ref().unwrap(), 1).await;
    let (_, leaf) = Conn::open(portal, &ca, b"http/1.1").await;
    assert_eq!(leaf, portal_leaf2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reloads_its_certificate_on_sighup() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let first = issue(&ca, dir.path(), "gateway");
    let (crt, key) = files(dir.path(), "gateway");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnpike"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TURNPIKE_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .arg("gateway")
        .current_dir(dir.path())
        .env("TURNPIKE_DATABASE_URL", format!("sqlite://{}", dir.path().join("tp.db").display()))
        .env("TURNPIKE_GATEWAY_ADDR", "127.0.0.1:0")
        .env("TURNPIKE_METRICS_ADDR", "127.0.0.1:0")
        .env("TURNPIKE_GATEWAY_TLS_CERT_FILE", &crt)
        .env("TURNPIKE_GATEWAY_TLS_KEY_FILE", &key)
        // No file watching: only the signal can reload.
        .env("TURNPIKE_TLS_RELOAD_INTERVAL_MS", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut gateway = None;
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(url) = line.strip_prefix("gateway: ") {
            gateway = Some(addr_of(url.trim()));
        }
        if line == "ready" {
            break;
        }
    }
    let gw = gateway.expect("the binary prints an https:// gateway URL");
    assert_eq!(Conn::open(gw, &ca, b"http/1.1").await.1, first);

    let second = issue(&ca, dir.path(), "gateway");
    // Files replaced, no signal yet: nothing changes (no watcher).
    assert_eq!(Conn::open(gw, &ca, b"http/1.1").await.1, first);
    assert!(Command::new("kill").arg("-HUP").arg(child.id().to_string()).status().unwrap().success());
    // The signal is handled asynchronously: new connections switch once it has been.
    let mut seen = first.clone();
    for _ in 0..600 {
        seen = Conn::open(gw, &ca, b"h2").await.1;
        if seen == second {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fingerprint(&seen), fingerprint(&second), "after SIGHUP new connections see the new certificate");
    assert!(Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
