//! Configuration: optional `turnpike.toml`, then `TURNPIKE_*` environment variables, typed and
//! validated at start. A bad value stops the process with a message that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// A secret string: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable.
    Text,
}

/// Every setting, with its default. See the README's configuration reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `sqlite:…` (default `sqlite://turnpike.db`) or `postgres://…`.
    pub database_url: Secret,
    /// `redis://…` to share counters between gateways; unset for in-process counters. With
    /// `redis_cluster`, a comma-separated list of seed nodes of the cluster.
    pub redis_url: Option<Secret>,
    /// `redis_url` names Redis Cluster nodes (the rest of the cluster is discovered).
    pub redis_cluster: bool,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// Longest wait for Redis on the request path, milliseconds.
    pub redis_timeout_ms: u64,
    /// Longest wait for the database on the gateway's request path (key lookups) once it has
    /// been seen failing, and for `/readyz`, milliseconds.
    pub database_timeout_ms: u64,
    /// Portal listen address.
    pub portal_addr: SocketAddr,
    /// Gateway listen address.
    pub gateway_addr: SocketAddr,
    /// Metrics and health listen address.
    pub metrics_addr: SocketAddr,
    /// Public URL of the portal (links in emails); default `http://{portal_addr}`.
    pub portal_url: Option<String>,
    /// Public URL of the gateway (shown in the portal); default `http://{gateway_addr}`.
    pub gateway_url: Option<String>,
    /// Built-in demo upstream address ("echo" API), or unset to not run it.
    pub demo_upstream_addr: Option<SocketAddr>,
    /// Seed the demo API, free plan and first admin on an empty database.
    pub seed_demo: bool,
    /// Set the `Secure` flag and the `__Host-` prefix on the session cookie (behind a TLS
    /// balancer; automatic when the portal serves TLS itself).
    pub secure_cookies: bool,
    /// The gateway serves HTTPS (ALPN h2 + http/1.1) with this PEM certificate chain (leaf
    /// first) and `gateway_tls_key_file`; unset: plain HTTP.
    pub gateway_tls_cert_file: Option<PathBuf>,
    /// The PEM private key of `gateway_tls_cert_file`.
    pub gateway_tls_key_file: Option<PathBuf>,
    /// The portal serves HTTPS with this PEM certificate chain and `portal_tls_key_file`.
    pub portal_tls_cert_file: Option<PathBuf>,
    /// The PEM private key of `portal_tls_cert_file`.
    pub portal_tls_key_file: Option<PathBuf>,
    /// How often the TLS certificate files are checked for a change (then reloaded without a
    /// restart), milliseconds; 0: only on SIGHUP.
    pub tls_reload_interval_ms: u64,
    /// Meter flush interval, milliseconds.
    pub flush_interval_ms: u64,
    /// How long after a billing period ends its invoice is finalized, seconds: long enough for
    /// every gateway to have flushed the period's last requests (also after a short Redis or
    /// database outage).
    pub invoice_settle_seconds: u64,
    /// Change-log poll interval, milliseconds.
    pub follow_interval_ms: u64,
    /// Upstream connect timeout, milliseconds.
    pub upstream_connect_timeout_ms: u64,
    /// Upstream response-header timeout, milliseconds.
    pub upstream_timeout_ms: u64,
    /// Time a client has to send its request headers (slowloris guard), milliseconds.
    pub header_read_timeout_ms: u64,
    /// Largest request body, bytes.
    pub max_body_bytes: u64,
    /// One access-log line per gateway request.
    pub access_log: bool,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Drain deadline on shutdown, milliseconds.
    pub drain_timeout_ms: u64,
    /// Async runtime worker threads; unset: one per CPU core. 1 runs a single-threaded runtime.
    pub worker_threads: Option<usize>,
    /// Most API keys the gateway keeps resolved in memory.
    pub key_cache_capacity: u64,
    /// Browser origins allowed to call APIs through the gateway (CORS); default: the portal's
    /// origin, so "try it" works. An empty list turns CORS off.
    pub cors_origins: Option<Vec<String>>,
    /// APIs that also accept JWTs (`[[jwt]]` tables; see the README).
    pub jwt: Vec<turnpike_gateway::jwt::JwtSettings>,
    /// Per-API upstream settings (`[[upstream]]` tables: CA bundle and client certificate for
    /// `https://` targets, `pass_client_host`, `timeout_ms`; see the README).
    pub upstream: Vec<turnpike_gateway::upstream_tls::UpstreamSettings>,
    /// Load balancers and proxies (CIDR blocks or addresses) whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` the gateway and the portal believe; empty: none (the TCP peer is the
    /// client).
    pub trusted_proxies: Vec<String>,
    /// The gateway listener expects a PROXY protocol v1/v2 header on every connection (behind
    /// HAProxy or an AWS NLB with proxy protocol on); connections without one are closed.
    pub proxy_protocol: bool,
    /// Stripe secret key (`sk_…`); with `stripe_webhook_secret` turns Stripe on. Unset: off.
    pub stripe_secret_key: Option<Secret>,
    /// Stripe webhook signing secret (`whsec_…`) for `POST /webhooks/stripe`.
    pub stripe_webhook_secret: Option<Secret>,
    /// Stripe API base URL; unset: `https://api.stripe.com/`. For tests and proxies.
    pub stripe_api_base: Option<String>,
    /// Hours a developer keeps access after a failed payment before keys answer 402.
    pub billing_grace_hours: u64,
    /// SMTP server for the portal's emails, e.g. `smtps://user:pass@mail.example.com` or
    /// `smtp://relay:25`; unset: emails are written to the log (development only).
    pub smtp_url: Option<Secret>,
    /// `From` of the portal's emails.
    pub mail_from: String,
    /// W3C Trace Context in the gateway: continue or start a trace per request, forward a
    /// `traceparent` naming the gateway's span, log `trace_id`/`span_id`. Default on.
    pub trace_context: bool,
    /// Share (0.0 to 1.0) of the traces the gateway starts that are marked sampled; a client's
    /// own sampled flag is always kept.
    pub trace_sample_ratio: f64,
    /// An OpenTelemetry collector's OTLP/HTTP base URL (`http://collector:4318`); spans of gateway
    /// and portal requests are posted to its `/v1/traces`. Unset: no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub otlp_service_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: Secret::from("sqlite://turnpike.db"),
            redis_url: None,
            redis_cluster: false,
            redis_prefix: "tp".into(),
            redis_timeout_ms: 250,
            database_timeout_ms: 1_000,
            portal_addr: ([127, 0, 0, 1], 8080).into(),
            gateway_addr: ([127, 0, 0, 1], 8000).into(),
            metrics_addr: ([127, 0, 0, 1], 9090).into(),
            portal_url: None,
            gateway_url: None,
            demo_upstream_addr: Some(([127, 0, 0, 1], 8001).into()),
            seed_demo: true,
            secure_cookies: false,
            gateway_tls_cert_file: None,
            gateway_tls_key_file: None,
            portal_tls_cert_file: None,
            portal_tls_key_file: None,
            tls_reload_interval_ms: 10_000,
            flush_interval_ms: 1000,
            invoice_settle_seconds: 600,
            follow_interval_ms: 250,
            upstream_connect_timeout_ms: 5_000,
            upstream_timeout_ms: 30_000,
            header_read_timeout_ms: 10_000,
            max_body_bytes: 10 * 1024 * 1024,
            access_log: true,
            log_format: LogFormat::Text,
            drain_timeout_ms: 30_000,
            worker_threads: None,
            key_cache_capacity: 200_000,
            cors_origins: None,
            jwt: Vec::new(),
            upstream: Vec::new(),
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_api_base: None,
            billing_grace_hours: 72,
            smtp_url: None,
            mail_from: "Turnpike <noreply@localhost>".into(),
            trace_context: true,
            trace_sample_ratio: 1.0,
            otlp_endpoint: None,
            otlp_service_name: "turnpike".into(),
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Load `path` (if it exists) and the `TURNPIKE_*` environment, then validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if path.exists() {
            fig = fig.merge(Toml::file(path));
        }
        // Only the keys Turnpike defines; TURNPIKE_CONFIG and TURNPIKE_LOG are not settings.
        let env = Env::prefixed("TURNPIKE_").ignore(&["config", "log", "require_services", "test_postgres_url", "test_redis_url"]);
        let cfg: Config = fig.merge(env).extract().map_err(|e| {
            let key = e.path.join(".");
            let key = if key.is_empty() { "(file)".to_owned() } else { key };
            ConfigError(format!("key `{key}` (file {} or TURNPIKE_{}): {}", path.display(), key.to_uppercase(), e.kind))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database_url.expose();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError("key `database_url`: expected sqlite:… or postgres://…".into()));
        }
        self.validate_redis()?;
        for (key, v) in [
            ("flush_interval_ms", self.flush_interval_ms),
            ("follow_interval_ms", self.follow_interval_ms),
            ("redis_timeout_ms", self.redis_timeout_ms),
            ("database_timeout_ms", self.database_timeout_ms),
            ("upstream_connect_timeout_ms", self.upstream_connect_timeout_ms),
            ("upstream_timeout_ms", self.upstream_timeout_ms),
            ("max_body_bytes", self.max_body_bytes),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("key_cache_capacity", self.key_cache_capacity),
        ] {
            if v == 0 {
                return Err(ConfigError(format!("key `{key}`: must be greater than 0")));
            }
        }
        for (key, u) in [("portal_url", &self.portal_url), ("gateway_url", &self.gateway_url)] {
            if let Some(u) = u {
                if url::Url::parse(u).map(|p| !matches!(p.scheme(), "http" | "https")).unwrap_or(true) {
                    return Err(ConfigError(format!("key `{key}`: expected an http(s) URL, got {u:?}")));
                }
            }
        }
        if let Some(u) = &self.smtp_url {
            if !(u.expose().starts_with("smtp://") || u.expose().starts_with("smtps://")) {
                return Err(ConfigError("key `smtp_url`: expected smtp://… or smtps://…".into()));
            }
        }
        self.listener_tls("gateway")?;
        self.listener_tls("portal")?;
        self.validate_tracing()?;
        if self.worker_threads == Some(0) {
            return Err(ConfigError("key `worker_threads`: must be at least 1".into()));
        }
        for (i, o) in self.cors_origins.iter().flatten().enumerate() {
            let ok = url::Url::parse(o).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.origin().ascii_serialization() == *o);
            if !ok {
                return Err(ConfigError(format!("key `cors_origins[{i}]`: expected an origin like https://portal.example.com, got {o:?}")));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, j) in self.jwt.iter().enumerate() {
            if j.api.is_empty() || !seen.insert(j.api.as_str()) {
                return Err(ConfigError(format!("key `jwt[{i}].api`: name each API once by its slug")));
            }
            turnpike_gateway::jwt::JwtVerifier::new(j).map_err(|e| ConfigError(format!("key `jwt[{i}].{}", e.0.replacen(':', "`:", 1))))?;
            if !j.is_bound() {
                return Err(ConfigError(format!(
                    "key `jwt[{i}].apps`: bind the block for API {:?} to the app ids (`apps = [..]`) and/or account ids \
                     (`accounts = [..]`) whose keys its tokens may name",
                    j.api
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.upstream.iter().enumerate() {
            if t.api.is_empty() || !seen.insert(t.api.as_str()) {
                return Err(ConfigError(format!("key `upstream[{i}].api`: name each API once by its slug")));
            }
            if t.timeout_ms == Some(0) {
                return Err(ConfigError(format!("key `upstream[{i}].timeout_ms`: must be greater than 0")));
            }
            turnpike_gateway::upstream_tls::client_config(Some(t))
                .map_err(|e| ConfigError(format!("key `upstream[{i}].{}", e.0.replacen(':', "`:", 1))))?;
        }
        self.trusted_proxies()?;
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(['{', '}', ' ']) {
            return Err(ConfigError("key `redis_prefix`: must be non-empty without braces or spaces".into()));
        }
        self.validate_stripe()
    }

    fn validate_tracing(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            return Err(ConfigError(format!("key `trace_sample_ratio`: expected 0.0 to 1.0, got {}", self.trace_sample_ratio)));
        }
        if let Some(e) = &self.otlp_endpoint {
            turnpike_gateway::otlp::traces_url(e).map_err(|err| ConfigError(format!("key `otlp_endpoint`: {err}, got {e:?}")))?;
            if !self.trace_context {
                return Err(ConfigError("key `otlp_endpoint`: needs `trace_context = true` (spans need the trace ids)".into()));
            }
        }
        if self.otlp_service_name.trim().is_empty() {
            return Err(ConfigError("key `otlp_service_name`: must not be empty".into()));
        }
        Ok(())
    }

    /// The parsed `trusted_proxies`, shared by the gateway and the portal.
    pub fn trusted_proxies(&self) -> Result<turnpike_store::net::TrustedProxies, ConfigError> {
        turnpike_store::net::TrustedProxies::parse(&self.trusted_proxies).map_err(|e| ConfigError(format!("key `trusted_proxies`: {e}")))
    }

    /// The TLS files of the `gateway` or `portal` listener: both keys or neither.
    pub fn listener_tls(&self, listener: &str) -> Result<Option<turnpike_tls::TlsFiles>, ConfigError> {
        let (cert, key) = match listener {
            "gateway" => (&self.gateway_tls_cert_file, &self.gateway_tls_key_file),
            _ => (&self.portal_tls_cert_file, &self.portal_tls_key_file),
        };
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(turnpike_tls::TlsFiles { cert: cert.clone(), key: key.clone() })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError(format!("key `{listener}_tls_key_file`: set it with `{listener}_tls_cert_file`"))),
            (None, Some(_)) => Err(ConfigError(format!("key `{listener}_tls_cert_file`: set it with `{listener}_tls_key_file`"))),
        }
    }

    /// Gateway settings derived from this configuration.
    pub fn gateway(&self, portal_url: &str) -> Result<turnpike_gateway::GatewayConfig, ConfigError> {
        let cors_origins = match &self.cors_origins {
            Some(list) => list.clone(),
            None => url::Url::parse(portal_url).map(|u| vec![u.origin().ascii_serialization()]).unwrap_or_default(),
        };
        let mut jwt = std::collections::HashMap::new();
        for (i, j) in self.jwt.iter().enumerate() {
            if !j.is_bound() {
                return Err(ConfigError(format!("key `jwt[{i}].apps`: the block for API {:?} names no apps or accounts", j.api)));
            }
            let v = turnpike_gateway::jwt::JwtVerifier::new(j).map_err(|e| ConfigError(format!("key `jwt[{i}]`: {}", e.0)))?;
            jwt.insert(j.api.clone(), std::sync::Arc::new(v));
        }
        let mut upstream_tls = std::collections::HashMap::new();
        let mut upstream_options = std::collections::HashMap::new();
        for (i, t) in self.upstream.iter().enumerate() {
            if let Some(o) = t.options() {
                upstream_options.insert(t.api.clone(), o);
            }
            let c =
                turnpike_gateway::upstream_tls::client_config(Some(t)).map_err(|e| ConfigError(format!("key `upstream[{i}]`: {}", e.0)))?;
            upstream_tls.insert(t.api.clone(), c);
        }
        Ok(turnpike_gateway::GatewayConfig {
            upstream_tls,
            upstream_options,
            trusted_proxies: std::sync::Arc::new(self.trusted_proxies()?),
            proxy_protocol: self.proxy_protocol,
            cors_origins: cors_origins.iter().filter_map(|o| http::HeaderValue::from_str(o).ok()).collect(),
            jwt,
            portal_url: portal_url.to_owned(),
            connect_timeout: Duration::from_millis(self.upstream_connect_timeout_ms),
            response_timeout: Duration::from_millis(self.upstream_timeout_ms),
            max_body_bytes: self.max_body_bytes,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            follow_interval: Duration::from_millis(self.follow_interval_ms),
            access_log: self.access_log,
            drain_timeout: Duration::from_millis(self.drain_timeout_ms),
            key_cache_capacity: self.key_cache_capacity,
            lookup_timeout: Duration::from_millis(self.database_timeout_ms),
            trace_context: self.trace_context,
            trace_sample_ratio: self.trace_sample_ratio,
            ..Default::default()
        })
    }
}

impl Config {
    /// One URL, or with `redis_cluster` one or more seed node URLs separated by commas.
    fn validate_redis(&self) -> Result<(), ConfigError> {
        let Some(r) = &self.redis_url else {
            if self.redis_cluster {
                return Err(ConfigError("key `redis_cluster`: needs redis_url (the cluster's seed nodes)".into()));
            }
            return Ok(());
        };
        let scheme_ok = |u: &str| u.starts_with("redis://") || u.starts_with("rediss://");
        if !self.redis_cluster {
            // One URL, taken whole (a password may contain a comma); a list is a forgotten flag.
            if r.expose().split(',').skip(1).any(|part| scheme_ok(part.trim_start())) {
                return Err(ConfigError("key `redis_url`: a list of nodes needs redis_cluster = true".into()));
            }
            if !scheme_ok(r.expose()) {
                return Err(ConfigError("key `redis_url`: expected redis://… or rediss://…".into()));
            }
            return Ok(());
        }
        let seeds = self.redis_seeds();
        if seeds.iter().any(|u| u.is_empty()) {
            return Err(ConfigError("key `redis_url`: empty entry in the list of cluster nodes".into()));
        }
        if !seeds.iter().all(|u| scheme_ok(u)) {
            return Err(ConfigError("key `redis_url`: expected redis://host:port,redis://host:port,… (redis_cluster)".into()));
        }
        Ok(())
    }

    /// With `redis_cluster`: the seed node URLs listed in `redis_url`, trimmed.
    pub fn redis_seeds(&self) -> Vec<&str> {
        self.redis_url.as_ref().map(|r| r.expose().split(',').map(str::trim).collect()).unwrap_or_default()
    }

    /// Stripe is on only with both secrets; one without the other is a mistake worth stopping for.
    fn validate_stripe(&self) -> Result<(), ConfigError> {
        let set = |s: &Option<Secret>| s.as_ref().is_some_and(|s| !s.expose().is_empty());
        match (set(&self.stripe_secret_key), set(&self.stripe_webhook_secret)) {
            (true, false) => return Err(ConfigError("key `stripe_webhook_secret`: required when stripe_secret_key is set".into())),
            (false, true) => return Err(ConfigError("key `stripe_secret_key`: required when stripe_webhook_secret is set".into())),
            _ => {}
        }
        if let Some(u) = &self.stripe_api_base {
            if url::Url::parse(u).map(|p| !matches!(p.scheme(), "http" | "https")).unwrap_or(true) {
                return Err(ConfigError(format!("key `stripe_api_base`: expected an http(s) URL, got {u:?}")));
            }
        }
        if self.billing_grace_hours > 24 * 365 {
            return Err(ConfigError("key `billing_grace_hours`: at most 8760 (a year)".into()));
        }
        Ok(())
    }

    /// The Stripe bridge settings, when Stripe is configured.
    pub fn stripe(&self, portal_url: &str) -> Option<turnpike_stripe::StripeSettings> {
        let key = self.stripe_secret_key.as_ref().filter(|s| !s.expose().is_empty())?;
        let hook = self.stripe_webhook_secret.as_ref().filter(|s| !s.expose().is_empty())?;
        Some(turnpike_stripe::StripeSettings {
            secret_key: key.expose().to_owned(),
            webhook_secret: hook.expose().to_owned(),
            api_base: self.stripe_api_base.clone(),
            grace_seconds: i64::try_from(self.billing_grace_hours).unwrap_or(0) * 3600,
            portal_url: portal_url.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let cfg = Config {
            database_url: Secret::from("postgres://u:hunter2@db/x"),
            stripe_secret_key: Some("sk_live_hunter3".into()),
            stripe_webhook_secret: Some("whsec_hunter4".into()),
            ..Config::default()
        };
        let shown = format!("{cfg:?} {:?}", cfg.stripe("http://p"));
        assert!(!shown.contains("hunter"), "{shown}");
    }

    #[test]
    fn tracing_keys_are_checked() {
        let bad = Config { trace_sample_ratio: 1.5, ..Config::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("trace_sample_ratio"));
        let bad = Config { otlp_endpoint: Some("collector:4318".into()), ..Config::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("otlp_endpoint"));
        let off = Config { otlp_endpoint: Some("http://collector:4318".into()), trace_context: false, ..Config::default() };
        assert!(off.validate().unwrap_err().to_string().contains("trace_context"));
        let ok = Config { otlp_endpoint: Some("http://collector:4318".into()), trace_sample_ratio: 0.5, ..Config::default() };
        ok.validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let cfg = Config { database_url: Secret::from("mysql://x"), ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("database_url"));
        let cfg = Config { flush_interval_ms: 0, ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("flush_interval_ms"));
        let cfg = Config { gateway_url: Some("ftp://x".into()), ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("gateway_url"));
        let cfg = Config { cors_origins: Some(vec!["https://portal.example.com/path".into()]), ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("cors_origins[0]"));
        let jwt = turnpike_gateway::jwt::JwtSettings { api: "echo".into(), hs256_secret: Some("short".into()), ..Default::default() };
        let cfg = Config { jwt: vec![jwt.clone()], ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("jwt[0].hs256_secret"), "{}", cfg.validate().unwrap_err());
        let unbound = turnpike_gateway::jwt::JwtSettings { hs256_secret: Some("x".repeat(32)), ..jwt };
        let cfg = Config { jwt: vec![unbound.clone()], ..Config::default() };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("jwt[0].apps") && e.contains("\"echo\""), "an unbound [[jwt]] block is refused: {e}");
        let ok = turnpike_gateway::jwt::JwtSettings { accounts: vec![1], ..unbound };
        let cfg = Config { jwt: vec![ok.clone()], ..Config::default() };
        assert!(cfg.validate().is_ok());
        let cfg = Config { jwt: vec![ok.clone(), ok], ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("jwt[1].api"));
        let cfg = Config { stripe_secret_key: Some("sk_test_x".into()), ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("stripe_webhook_secret"));
        let cfg = Config { stripe_webhook_secret: Some("whsec_x".into()), ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("stripe_secret_key"));
    }

    #[test]
    fn redis_cluster_takes_a_seed_list() {
        let two = Some(Secret::from("redis://127.0.0.1:7000, redis://127.0.0.1:7001"));
        let cfg = Config { redis_url: two.clone(), ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("redis_cluster = true"), "a list needs cluster mode");
        let cfg = Config { redis_url: two, redis_cluster: true, ..Config::default() };
        cfg.validate().unwrap();
        assert_eq!(cfg.redis_seeds(), ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]);
        let cfg = Config { redis_url: Some("redis://a:1,http://b:2".into()), redis_cluster: true, ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("key `redis_url`"));
        let cfg = Config { redis_url: Some("redis://a:1,,redis://b:2".into()), redis_cluster: true, ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("empty entry"));
        let cfg = Config { redis_cluster: true, ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("key `redis_cluster`"));
        // One node: the URL is taken whole, as before (a comma in a password stays).
        let cfg = Config { redis_url: Some("redis://:pa,ss@127.0.0.1:6379/2".into()), ..Config::default() };
        cfg.validate().unwrap();
    }

    #[test]
    fn file_values_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("turnpike.toml");
        std::fs::write(&p, "portal_addr = \"not an address\"\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("portal_addr"), "{e}");
        std::fs::write(&p, "gateway_addr = \"127.0.0.1:18000\"\nredis_prefix = \"x\"\n").unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.gateway_addr.port(), 18000);
    }
}
