use std::time::Duration;

/// Gateway settings. Defaults suit a laptop; every field can be set from `turnpike.toml`.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Portal base URL, for links in 402 responses.
    pub portal_url: String,
    /// Upstream TCP connect timeout (→ 502).
    pub connect_timeout: Duration,
    /// Time for the upstream to send response headers (→ 504).
    pub response_timeout: Duration,
    /// Time for a client to send request headers (slowloris guard).
    pub header_read_timeout: Duration,
    /// Largest request body accepted (→ 413).
    pub max_body_bytes: u64,
    /// Interval between meter flushes to the database.
    pub flush_interval: Duration,
    /// Interval between change-log polls.
    pub follow_interval: Duration,
    /// How long a resolved key stays cached without a change event (safety net).
    pub key_cache_ttl: Duration,
    /// Largest number of keys cached.
    pub key_cache_capacity: u64,
    /// Longest wait for the database on the request path (a key lookup) once the change
    /// follower has found it failing, and for readiness; then the key's stale cache entry is
    /// served, or 503.
    pub lookup_timeout: Duration,
    /// One JSON access-log line per request.
    pub access_log: bool,
    /// Deadline for in-flight requests on shutdown.
    pub drain_timeout: Duration,
    /// Browser origins allowed to call APIs cross-origin (the portal's "try it"); exact
    /// `scheme://host[:port]` matches. Preflights from them are answered by the gateway.
    pub cors_origins: Vec<http::HeaderValue>,
    /// APIs (by slug) that also accept JWTs, with their verifiers.
    pub jwt: std::collections::HashMap<String, std::sync::Arc<crate::jwt::JwtVerifier>>,
    /// APIs (by slug) whose `https://` targets use their own TLS settings (CA bundle, client
    /// certificate); every other `https://` target uses the webpki roots.
    pub upstream_tls: std::collections::HashMap<String, std::sync::Arc<rustls::ClientConfig>>,
    /// APIs (by slug) with their own `Host` or timeout rule (`[[upstream]]`).
    pub upstream_options: std::collections::HashMap<String, crate::upstream_tls::UpstreamOptions>,
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed (load balancers).
    pub trusted_proxies: std::sync::Arc<turnpike_store::net::TrustedProxies>,
    /// Every connection starts with a PROXY protocol (v1 or v2) header naming the client.
    pub proxy_protocol: bool,
    /// Serve TLS (ALPN h2 + http/1.1) with this replaceable certificate; `None`: plain TCP.
    pub tls: Option<std::sync::Arc<turnpike_tls::ServerTls>>,
    /// W3C Trace Context: continue the client's trace or start one, forward a `traceparent`
    /// naming the gateway's span, and log `trace_id`/`span_id`. Off: the request path never
    /// looks at trace headers (a client's `traceparent` passes through untouched).
    pub trace_context: bool,
    /// Share of the traces the gateway starts that are marked sampled (0.0 to 1.0); a client's
    /// own sampled flag is always kept.
    pub trace_sample_ratio: f64,
    /// Export one span per request through this OTLP exporter (needs `trace_context`).
    pub otlp: Option<crate::otlp::Exporter>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            portal_url: "http://127.0.0.1:8080".into(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_body_bytes: 10 * 1024 * 1024,
            flush_interval: Duration::from_secs(1),
            follow_interval: Duration::from_millis(250),
            key_cache_ttl: Duration::from_secs(60),
            key_cache_capacity: 1_000_000,
            lookup_timeout: Duration::from_secs(1),
            access_log: true,
            drain_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            jwt: std::collections::HashMap::new(),
            upstream_tls: std::collections::HashMap::new(),
            upstream_options: std::collections::HashMap::new(),
            trusted_proxies: Default::default(),
            proxy_protocol: false,
            tls: None,
            trace_context: true,
            trace_sample_ratio: 1.0,
            otlp: None,
        }
    }
}
