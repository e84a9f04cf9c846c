//! Proxy plumbing for the forward phase: the pooled hyper client, header hygiene, upgrades,
//! CORS answers.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Error type of every body the gateway handles.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The gateway's body type (request and response).
pub type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
/// The upstream client.
pub type UpstreamClient = Client<HttpConnector, BoxBody>;

/// A pooled client with the configured connect timeout. Idle upstream connections close after
/// 60 s: the pool's timer reaps them (without a timer, hyper-util only drops an expired
/// connection when it next checks one out, so a burst left up to 1,024 idle sockets per target
/// open until traffic came back).
pub fn client(connect_timeout: std::time::Duration) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        .build(http)
}

// The names the request path sets or reads on every request, built once: a `&str` name is
// parsed and validated again at each use (issue 14: `HdrName::from_static`, its conversion and
// the `&str` lookups showed ~1,300 instructions per request in callgrind, plus their share of
// `parse_hdr`).
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub(crate) static X_TURNPIKE_CONSUMER: HeaderName = HeaderName::from_static("x-turnpike-consumer");
pub(crate) static X_TURNPIKE_PLAN: HeaderName = HeaderName::from_static("x-turnpike-plan");
pub(crate) static X_TURNPIKE_API: HeaderName = HeaderName::from_static("x-turnpike-api");
pub(crate) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones proxies must not forward.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Remove hop-by-hop headers, including those listed in `Connection`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Most requests and responses carry none of these: one pass over the names first. Issue 14:
    // 3,209 instructions per request (request and response, callgrind) before, 3,043 after; the
    // comparisons of custom names are what is left, a bitmask over standard names would do better.
    if !h.keys().any(|k| k == header::UPGRADE || HOP_BY_HOP.contains(k)) {
        return;
    }
    if h.contains_key(header::CONNECTION) {
        strip_connection_listed(h);
    }
    for n in HOP_BY_HOP.iter() {
        if h.contains_key(n) {
            h.remove(n);
        }
    }
    if h.contains_key(header::UPGRADE) {
        h.remove(header::UPGRADE);
    }
}

fn strip_connection_listed(h: &mut HeaderMap) {
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        h.remove(n);
    }
}

/// What a request asks for on the `Upgrade` axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeAsk {
    /// No upgrade asked (`Connection` does not list `upgrade`; a stray `Upgrade` header is
    /// stripped as hop-by-hop).
    None,
    /// A well-formed RFC 6455 WebSocket opening handshake: tunnelled after admission.
    WebSocket,
    /// Any other protocol (h2c, TLS/1.0, …) or a malformed WebSocket handshake: refused.
    Refused,
}

/// Classify a request's upgrade ask. Only WebSocket may be tunnelled: once the upstream answers
/// 101 the gateway only copies bytes, so a protocol it cannot see into must not reach that point
/// (an `h2c` upgrade would otherwise carry any number of unmetered requests on one admission).
pub fn upgrade_ask(method: &http::Method, version: http::Version, h: &HeaderMap) -> UpgradeAsk {
    if !h.contains_key(header::UPGRADE) {
        return UpgradeAsk::None;
    }
    let asks = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !asks {
        return UpgradeAsk::None;
    }
    if is_websocket_handshake(method, version, h) {
        UpgradeAsk::WebSocket
    } else {
        UpgradeAsk::Refused
    }
}

/// RFC 6455 §4.2.1: `GET`, HTTP/1.1, exactly one `Upgrade: websocket`, `Sec-WebSocket-Version:
/// 13` and a `Sec-WebSocket-Key` that is the base64 encoding of 16 bytes.
fn is_websocket_handshake(method: &http::Method, version: http::Version, h: &HeaderMap) -> bool {
    let one = |name: &str| {
        let mut all = h.get_all(name).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => Some(v.as_bytes()),
            _ => None,
        }
    };
    method == http::Method::GET
        && version == http::Version::HTTP_11
        && one("upgrade").is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"websocket"))
        && one("sec-websocket-version").is_some_and(|v| v.trim_ascii() == b"13")
        && one("sec-websocket-key").is_some_and(|v| is_websocket_key(v.trim_ascii()))
}

/// Base64 (standard alphabet, padded) of exactly 16 bytes: 22 characters, the last of which
/// carries only 2 bits (so is one of `AQgw`), then `==`.
fn is_websocket_key(k: &[u8]) -> bool {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    k.len() == 24 && k[..21].iter().all(b64) && matches!(k[21], b'A' | b'Q' | b'g' | b'w') && &k[22..] == b"=="
}

/// Once both sides have switched protocols, copy bytes both ways until either closes.
pub fn splice(client: hyper::upgrade::OnUpgrade, upstream: Option<hyper::upgrade::OnUpgrade>) {
    let Some(upstream) = upstream else { return };
    tokio::spawn(async move {
        let (Ok(client), Ok(upstream)) = (client.await, upstream.await) else { return };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
}

/// Remove every client-sent `X-Turnpike-*` header: only the gateway may set them.
pub fn strip_trusted(h: &mut HeaderMap) {
    if !h.keys().any(|k| k.as_str().starts_with("x-turnpike-")) {
        return;
    }
    let names: Vec<HeaderName> = h.keys().filter(|k| k.as_str().starts_with("x-turnpike-")).cloned().collect();
    for n in names {
        h.remove(n);
    }
}

/// Who sent a request, for the forwarding headers.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// The TCP peer (appended to `X-Forwarded-For`).
    pub peer_ip: &'a str,
    /// The client as resolved through trusted proxies (`Forwarded: for=`).
    pub client_ip: &'a str,
    /// `https` when the client's connection was TLS, here or at a trusted proxy.
    pub proto: &'static str,
    /// The peer is a trusted proxy: its `Forwarded` header is kept.
    pub trusted_peer: bool,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// `parts` concatenated into one header value: one allocation of the exact size, no `format!`
/// (issue 14: `set_forwarded` cost 5,326 instructions per request in callgrind, inclusive, with
/// two `format!`s, two `HeaderValue::from_str`s and four allocations).
fn joined(parts: &[&[u8]]) -> Option<HeaderValue> {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        v.extend_from_slice(p);
    }
    HeaderValue::from_maybe_shared(Bytes::from(v)).ok()
}

/// Append the peer to `X-Forwarded-For` and set the other forwarding headers. A `Forwarded`
/// header from an untrusted peer is dropped (it would claim any client).
pub fn set_forwarded(h: &mut HeaderMap, hop: &Hop<'_>, host: Option<&HeaderValue>) {
    let peer_ip = hop.peer_ip.as_bytes();
    let xff = match h.get(&X_FORWARDED_FOR).filter(|v| v.to_str().is_ok()) {
        Some(prev) => joined(&[prev.as_bytes(), b", ", peer_ip]),
        None => joined(&[peer_ip]),
    };
    if let Some(v) = xff {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(hop.proto));
    let host_str = host.and_then(|v| v.to_str().ok()).filter(|s| !s.contains(['"', ';', ',']));
    if let Some(host) = host {
        h.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    let client_ip = hop.client_ip.as_bytes();
    let v6 = client_ip.contains(&b':');
    let (open, close): (&[u8], &[u8]) = if v6 { (b"\"[", b"]\"") } else { (b"", b"") };
    let proto = hop.proto.as_bytes();
    let fwd = match host_str {
        Some(hs) => joined(&[b"for=", open, client_ip, close, b";proto=", proto, b";host=\"", hs.as_bytes(), b"\""]),
        None => joined(&[b"for=", open, client_ip, close, b";proto=", proto]),
    };
    if !hop.trusted_peer && h.contains_key(header::FORWARDED) {
        h.remove(header::FORWARDED);
    }
    if let Some(v) = fwd {
        h.append(header::FORWARDED, v);
    }
}

/// The scheme the client used: `https` when it reached this gateway's TLS listener, or when a
/// trusted proxy in front says so (`X-Forwarded-Proto: https`); anyone else's claim is ignored.
pub fn client_proto(h: &HeaderMap, trusted_peer: bool, tls: bool) -> &'static str {
    let says_https = || h.get(&X_FORWARDED_PROTO).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    if tls || (trusted_peer && says_https()) {
        "https"
    } else {
        "http"
    }
}

/// The answer to an allowed origin's CORS preflight: 204, not routed, authenticated or metered.
pub(crate) fn preflight(origin: &HeaderValue, requested_headers: Option<&HeaderValue>) -> http::Response<BoxBody> {
    use http_body_util::BodyExt;
    let mut r = http::Response::new(http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = http::StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        requested_headers.cloned().unwrap_or_else(|| HeaderValue::from_static("authorization, content-type, x-api-key")),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    allow_origin(h, origin.clone());
    r
}

/// Mark a response readable by `origin`, with the gateway's own headers exposed.
pub(crate) fn allow_origin(h: &mut http::HeaderMap, origin: HeaderValue) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("ratelimit, ratelimit-policy, retry-after, x-request-id, content-type"),
    );
    h.append(header::VARY, HeaderValue::from_static("origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn only_a_well_formed_websocket_handshake_may_upgrade() {
        use http::{Method, Version};
        let ws = |extra: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert("sec-websocket-version", HeaderValue::from_static("13"));
            h.insert("sec-websocket-key", HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
            for (k, v) in extra {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let get = |h: &HeaderMap| upgrade_ask(&Method::GET, Version::HTTP_11, h);
        assert_eq!(get(&ws(&[])), UpgradeAsk::WebSocket);
        assert_eq!(get(&ws(&[("upgrade", "WebSocket")])), UpgradeAsk::WebSocket);
        assert_eq!(upgrade_ask(&Method::POST, Version::HTTP_11, &ws(&[])), UpgradeAsk::Refused);
        assert_eq!(upgrade_ask(&Method::GET, Version::HTTP_10, &ws(&[])), UpgradeAsk::Refused);
        for (k, v) in [
            ("upgrade", "h2c"),
            ("upgrade", "TLS/1.0"),
            ("upgrade", "foo"),
            ("upgrade", "websocket, h2c"),
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "short=="),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZR=="),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ="),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25j*Q=="),
        ] {
            assert_eq!(get(&ws(&[(k, v)])), UpgradeAsk::Refused, "{k}: {v}");
        }
        let mut missing = ws(&[]);
        missing.remove("sec-websocket-key");
        assert_eq!(get(&missing), UpgradeAsk::Refused);
        let mut twice = ws(&[]);
        twice.append(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(get(&twice), UpgradeAsk::Refused, "two Upgrade headers");
        // Not asked through Connection: not an upgrade (the header is stripped, nothing tunnelled).
        let mut stray = ws(&[("upgrade", "h2c")]);
        stray.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert_eq!(get(&stray), UpgradeAsk::None);
        assert_eq!(get(&HeaderMap::new()), UpgradeAsk::None);
    }

    #[test]
    fn trusted_headers_from_clients_are_dropped_and_forwarding_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-turnpike-consumer", HeaderValue::from_static("admin"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        strip_trusted(&mut h);
        let hop = Hop { peer_ip: "127.0.0.1", client_ip: "127.0.0.1", proto: "http", trusted_peer: false };
        set_forwarded(&mut h, &hop, Some(&HeaderValue::from_static("gw.example")));
        assert!(!h.contains_key("x-turnpike-consumer"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h[header::FORWARDED], "for=127.0.0.1;proto=http;host=\"gw.example\"");
        assert_eq!(h["x-forwarded-host"], "gw.example");
        assert_eq!(h["x-forwarded-proto"], "http");

        let mut h = HeaderMap::new();
        h.insert(header::FORWARDED, HeaderValue::from_static("for=6.6.6.6"));
        let hop = Hop { peer_ip: "::1", client_ip: "::1", proto: "https", trusted_peer: false };
        set_forwarded(&mut h, &hop, Some(&HeaderValue::from_static("a;b")));
        assert_eq!(h["x-forwarded-for"], "::1");
        let fwd: Vec<_> = h.get_all(header::FORWARDED).iter().collect();
        assert_eq!(fwd, ["for=\"[::1]\";proto=https"]);
    }
}
