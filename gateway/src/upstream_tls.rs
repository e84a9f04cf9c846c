//! TLS to `https://` upstreams: rustls (ring), verification against the target's host name with
//! the webpki roots or a per-API CA bundle, an optional client certificate (mTLS), SNI from the
//! target's host, ALPN h2 + http/1.1, pooled connections with session resumption. Plain-HTTP
//! targets never touch any of this (they keep their own client).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::proxy::BoxBody;

/// One API's upstream settings (`[[upstream]]` in `turnpike.toml`): TLS for its `https://`
/// targets, the `Host` sent, and the upstream timeout.
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSettings {
    /// Slug of the API these settings apply to.
    pub api: String,
    /// Send the client's `Host` upstream instead of the target's (HTTP/1.1 upstreams; the
    /// target's host is still used for SNI and certificate verification).
    pub pass_client_host: bool,
    /// Time for this API's upstream to send response headers, milliseconds (cold starts);
    /// unset: `upstream_timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// PEM file of the CA certificates to trust instead of the webpki roots (private PKI).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the upstream (mTLS); with `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

/// What the forward phase applies per API (only APIs with `pass_client_host` or `timeout_ms`).
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamOptions {
    /// Send the client's `Host`.
    pub pass_client_host: bool,
    /// Upstream response-header timeout for this API.
    pub timeout: Option<Duration>,
}

impl UpstreamSettings {
    /// The per-request options, if any differ from the defaults.
    pub fn options(&self) -> Option<UpstreamOptions> {
        (self.pass_client_host || self.timeout_ms.is_some())
            .then(|| UpstreamOptions { pass_client_host: self.pass_client_host, timeout: self.timeout_ms.map(Duration::from_millis) })
    }
}

/// A configuration error, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsConfigError(pub String);

/// The rustls client configuration for `settings` (`None`: webpki roots, no client
/// certificate). Files are read now so that a bad one stops the start.
pub fn client_config(settings: Option<&UpstreamSettings>) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    match settings.and_then(|s| s.ca_file.as_ref()) {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsConfigError(format!("ca_file: {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsConfigError(format!("ca_file: {}: no CA certificate in it", path.display())));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError(format!("tls: {e}")))?
        .with_root_certificates(roots);
    let cfg = match settings.map(|s| (&s.client_cert_file, &s.client_key_file)) {
        Some((Some(cert), Some(key))) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsConfigError(format!("client_cert_file: {}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsConfigError(format!("client_key_file: {}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| TlsConfigError(format!("client_cert_file: {e}")))?
        }
        Some((None, None)) | None => builder.with_no_client_auth(),
        Some(_) => return Err(TlsConfigError("client_cert_file: needs client_key_file too (and the other way round)".into())),
    };
    Ok(Arc::new(cfg))
}

/// The client for `https://` targets.
pub type TlsClient = Client<TimeoutConnector<HttpsConnector<HttpConnector>>, BoxBody>;

/// A pooled client over `config` (ALPN h2 + http/1.1 added here); `connect_timeout` covers the
/// TCP connect and the TLS handshake together.
pub fn client(config: &ClientConfig, connect_timeout: Duration) -> TlsClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let mut config = config.clone();
    config.alpn_protocols.clear();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_only().enable_all_versions().wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        .build(TimeoutConnector { inner: https, timeout: connect_timeout })
}

/// A connector whose whole connect (TCP + TLS handshake) must finish within `timeout`.
#[derive(Clone, Debug)]
pub struct TimeoutConnector<C> {
    inner: C,
    timeout: Duration,
}

/// The connect (TCP + handshake) did not finish in time.
#[derive(Debug, thiserror::Error)]
#[error("upstream connect or TLS handshake timed out")]
pub struct HandshakeTimeout;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower_service::Service<Uri> for TimeoutConnector<C>
where
    C: tower_service::Service<Uri> + Send,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let fut = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(Box::new(HandshakeTimeout) as BoxError),
            }
        })
    }
}

/// Why a request to an `https://` target failed in TLS, if it did: a short reason for the log
/// (`unknown CA`, `expired certificate`, `name mismatch`, `handshake timeout`, or rustls' own).
pub(crate) fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::CertificateError as C;
    let mut next = Some(e);
    while let Some(err) = next {
        if err.is::<HandshakeTimeout>() {
            return Some("handshake timeout".into());
        }
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(match t {
                rustls::Error::InvalidCertificate(C::UnknownIssuer) => "unknown CA".into(),
                rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => "expired certificate".into(),
                rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => "name mismatch".into(),
                other => other.to_string(),
            });
        }
        // An `io::Error` hides what it wraps from `source()` (tokio-rustls wraps the rustls
        // error in one, hyper-rustls wraps that in another).
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}
