//! `https://` upstreams over real sockets: a local TLS upstream whose certificate comes from a
//! test CA (rcgen), SNI and Host as the upstream sees them, bodies streamed both ways, h2 when
//! offered, pooled connections, and each TLS failure as `502 upstream_tls`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use turnpike_gateway::upstream_tls::UpstreamSettings;
use turnpike_testkit::TestDb;

use crate::{system_clock, CounterBackend, TestApp};

pub(crate) struct Ca {
    pub(crate) cert: rcgen::Certificate,
    pub(crate) key: KeyPair,
}

pub(crate) fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "Turnpike test CA");
    Ca { cert: p.self_signed(&key).unwrap(), key }
}

/// A leaf certificate for `name`, valid now unless `expired`.
fn leaf(ca: &Ca, name: &str, expired: bool) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
    if expired {
        p.not_before = time::OffsetDateTime::from_unix_timestamp(1_500_000_000).unwrap();
        p.not_after = time::OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
    }
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (vec![cert.der().clone(), ca.cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
}

/// A TLS upstream that answers every request with the request's body (streamed back) and
/// `x-sni`, `x-host`, `x-path`, `x-version` headers; counts completed handshakes.
async fn tls_upstream(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>, h2: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    cfg.alpn_protocols = if h2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let count = handshakes.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (acceptor, count) = (acceptor.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let sni = tls.get_ref().1.server_name().unwrap_or("-").to_owned();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let sni = sni.clone();
                    async move {
                        let host = req
                            .headers()
                            .get("host")
                            .map(|v| v.to_str().unwrap_or("?").to_owned())
                            .or_else(|| req.uri().authority().map(ToString::to_string))
                            .unwrap_or_default();
                        let (path, version) = (req.uri().path().to_owned(), format!("{:?}", req.version()));
                        let mut resp = Response::new(req.into_body());
                        let h = resp.headers_mut();
                        h.insert("x-sni", sni.parse().unwrap());
                        h.insert("x-host", host.parse().unwrap());
                        h.insert("x-path", path.parse().unwrap());
                        h.insert("x-version", version.parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });
    (addr, handshakes)
}

async fn problem_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    (status, v["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_pooled_streamed_and_use_h2_when_offered() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert.pem()).unwrap();
    let (chain, key) = leaf(&ca, "localhost", false);
    let (h2_up, h2_handshakes) = tls_upstream(chain.clone(), key.clone_key(), true).await;
    let (h1_up, h1_handshakes) = tls_upstream(chain, key, false).await;
    let (chain, key) = leaf(&ca, "localhost", true);
    let (expired_up, _) = tls_upstream(chain, key, false).await;
    let (chain, key) = leaf(&ca, "other.test", false);
    let (mismatch_up, _) = tls_upstream(chain, key, false).await;

    let db = TestDb::sqlite().await;
    let with_ca = |api: &str| UpstreamSettings { api: api.into(), ca_file: Some(ca_file.clone()), ..UpstreamSettings::default() };
    let app = TestApp::start_with(&db, &CounterBackend::Local, system_clock(), |c| {
        c.upstream = vec![with_ca("h2"), with_ca("h1"), with_ca("expired"), with_ca("mismatch")];
    })
    .await;
    for (slug, up) in [("h2", h2_up), ("h1", h1_up), ("expired", expired_up), ("mismatch", mismatch_up), ("unknownca", h1_up)] {
        app.publish(slug, &[(&format!("https://localhost:{}/base", up.port()), 1)]).await;
    }
    let (key, _, _) = app.developer_key("tls@example.com").await;

    for (slug, version, port, handshakes) in
        [("h2", "HTTP/2.0", h2_up.port(), &h2_handshakes), ("h1", "HTTP/1.1", h1_up.port(), &h1_handshakes)]
    {
        // SNI and Host are the target's; the base path is kept; a body streams both ways.
        let body: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
        let r = app.http.post(app.gw(&format!("/{slug}/x/y"))).bearer_auth(key.expose()).body(body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{slug}");
        let h = r.headers().clone();
        assert_eq!(h["x-sni"], "localhost", "{slug}");
        assert_eq!(h["x-host"], format!("localhost:{port}").as_str(), "{slug}");
        assert_eq!(h["x-path"], "/base/x/y", "{slug}");
        assert_eq!(h["x-version"], version, "{slug}: h2 exactly when the upstream offers it");
        assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice(), "{slug}");
        // 1,000 sequential requests reuse the pooled connection.
        for _ in 0..1000 {
            let r = app.http.get(app.gw(&format!("/{slug}/z"))).bearer_auth(key.expose()).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        let n = handshakes.load(Ordering::SeqCst);
        assert!(n <= 2, "{slug}: {n} TLS handshakes for 1,001 requests");
    }

    // Unknown CA (the webpki roots do not know the test CA), expired, name mismatch.
    for slug in ["unknownca", "expired", "mismatch"] {
        let r = app.http.get(app.gw(&format!("/{slug}/x"))).bearer_auth(key.expose()).send().await.unwrap();
        assert_eq!(problem_code(r).await, (502, "upstream_tls".to_owned()), "{slug}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_api_upstream_options_pass_the_client_host_and_set_the_timeout() {
    let slow = crate::upstreams::start(crate::upstreams::Behaviour::Slow(std::time::Duration::from_secs(5))).await;
    let db = TestDb::sqlite().await;
    let app = TestApp::start_with(&db, &CounterBackend::Local, system_clock(), |c| {
        c.upstream = vec![
            UpstreamSettings { api: "passhost".into(), pass_client_host: true, ..UpstreamSettings::default() },
            UpstreamSettings { api: "coldstart".into(), timeout_ms: Some(200), ..UpstreamSettings::default() },
        ];
    })
    .await;
    let echo = app.store.list_apis().await.unwrap().into_iter().find(|a| a.slug == "echo").unwrap().upstreams[0].url.clone();
    app.publish("passhost", &[(&echo, 1)]).await;
    app.publish("targethost", &[(&echo, 1)]).await;
    app.publish("coldstart", &[(&format!("http://{slow}"), 1)]).await;
    let (key, _, _) = app.developer_key("opts@example.com").await;
    let host_seen = |slug: &'static str| {
        let (http, url, key) = (app.http.clone(), app.gw(&format!("/{slug}/x")), key.expose().to_owned());
        async move {
            let r = http.get(url).header("host", "api.example.com").header("x-api-key", key).send().await.unwrap();
            let v: serde_json::Value = r.json().await.unwrap();
            v["headers"]["host"].as_str().unwrap_or_default().to_owned()
        }
    };
    assert_eq!(host_seen("passhost").await, "api.example.com", "pass_client_host");
    assert_eq!(host_seen("targethost").await, echo.trim_start_matches("http://"), "default: the target's host");
    // 200 ms for this API (the gateway-wide default is 30 s; the upstream takes 5 s).
    let r = app.http.get(app.gw("/coldstart/x")).header("x-api-key", key.expose()).send().await.unwrap();
    assert_eq!(problem_code(r).await, (504, "gateway_timeout".to_owned()));
    app.stop().await;
}
