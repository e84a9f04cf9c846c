//! RFC 9457 `application/problem+json` answers produced by the gateway itself.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::proxy::BoxBody;

/// A problem the gateway answers with; `code` is stable and documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// 404: no API matches the host and path.
    NoRoute,
    /// 401: no credential presented.
    MissingKey,
    /// 401: malformed key, bad checksum, or unknown key.
    InvalidKey,
    /// 401: a JWT with a bad signature, expired, not yet valid, for another issuer or audience,
    /// or naming no key; `reason` says which.
    InvalidToken,
    /// 403: key revoked, expired or suspended, or its account suspended.
    KeyDisabled,
    /// 403: the key's app is not subscribed to this API.
    NotSubscribed,
    /// 402: the subscription is unpaid.
    PaymentRequired,
    /// 429: rate limit.
    RateLimited,
    /// 429: monthly quota used up.
    QuotaExceeded,
    /// 400: the request body could not be read (bad framing, cut off).
    BadRequest,
    /// 400: a path with an ambiguous spelling or one that climbs above the root.
    BadPath,
    /// 400: an `Upgrade` to anything but WebSocket, or a malformed WebSocket handshake.
    UpgradeRefused,
    /// 413: request body too large.
    BodyTooLarge,
    /// 502: upstream unreachable or broke the connection.
    BadGateway,
    /// 502: TLS to an `https://` upstream failed (unknown CA, expired, name mismatch, handshake
    /// timeout); the reason is logged, not returned.
    UpstreamTls,
    /// 504: upstream too slow.
    GatewayTimeout,
    /// 503: counter store unavailable and the plan fails closed.
    Unavailable,
}

impl Problem {
    /// HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Problem::NoRoute => StatusCode::NOT_FOUND,
            Problem::MissingKey | Problem::InvalidKey | Problem::InvalidToken => StatusCode::UNAUTHORIZED,
            Problem::KeyDisabled | Problem::NotSubscribed => StatusCode::FORBIDDEN,
            Problem::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
            Problem::RateLimited | Problem::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            Problem::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Problem::BadRequest | Problem::UpgradeRefused | Problem::BadPath => StatusCode::BAD_REQUEST,
            Problem::BadGateway | Problem::UpstreamTls => StatusCode::BAD_GATEWAY,
            Problem::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Problem::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Problem::NoRoute => "no_route",
            Problem::MissingKey => "missing_key",
            Problem::InvalidKey => "invalid_key",
            Problem::InvalidToken => "invalid_token",
            Problem::KeyDisabled => "key_disabled",
            Problem::NotSubscribed => "not_subscribed",
            Problem::PaymentRequired => "payment_required",
            Problem::RateLimited => "rate_limited",
            Problem::QuotaExceeded => "quota_exceeded",
            Problem::BodyTooLarge => "body_too_large",
            Problem::BadRequest => "bad_request",
            Problem::UpgradeRefused => "upgrade_refused",
            Problem::BadPath => "bad_path",
            Problem::BadGateway => "bad_gateway",
            Problem::UpstreamTls => "upstream_tls",
            Problem::GatewayTimeout => "gateway_timeout",
            Problem::Unavailable => "unavailable",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Problem::NoRoute => "No API is published at this path",
            Problem::MissingKey => "An API key is required",
            Problem::InvalidKey => "The API key is not valid",
            Problem::InvalidToken => "The bearer token is not valid",
            Problem::KeyDisabled => "The API key is disabled",
            Problem::NotSubscribed => "The key's app is not subscribed to this API",
            Problem::PaymentRequired => "Payment is required",
            Problem::RateLimited => "Too many requests",
            Problem::QuotaExceeded => "Monthly quota exceeded",
            Problem::BodyTooLarge => "Request body too large",
            Problem::BadRequest => "The request body could not be read",
            Problem::UpgradeRefused => "Only WebSocket upgrades are allowed",
            Problem::BadPath => "The request path is ambiguous",
            Problem::BadGateway => "The upstream service could not be reached",
            Problem::UpstreamTls => "The upstream service's TLS connection failed",
            Problem::GatewayTimeout => "The upstream service did not answer in time",
            Problem::Unavailable => "The gateway cannot enforce limits right now",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Problem::NoRoute => "Check the URL against the API catalog in the developer portal.",
            Problem::MissingKey => "Send your key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
            Problem::InvalidKey => "Check that the key was copied completely; keys look like tp_live_…",
            Problem::InvalidToken => "Get a fresh token from your identity provider; `reason` says what was wrong with this one.",
            Problem::KeyDisabled => {
                "The key was revoked or has expired, or the account is suspended. Create a new key in the developer portal."
            }
            Problem::NotSubscribed => "Subscribe the key's app to a plan of this API in the developer portal.",
            Problem::PaymentRequired => "The subscription has an unpaid invoice. Pay it on the billing page to resume.",
            Problem::RateLimited => "Slow down: retry after the number of seconds in Retry-After.",
            Problem::QuotaExceeded => "The plan's quota for this billing period is used up. Upgrade the plan or wait for the next period.",
            Problem::BodyTooLarge => "Send a smaller request body.",
            Problem::BadRequest => "Check the body's framing: Content-Length or chunked Transfer-Encoding.",
            Problem::BadPath => {
                "Send the path without encoded slashes or backslashes, double encoding, dot-segments with parameters, or dot-segments above the root."
            }
            Problem::UpgradeRefused => {
                "Send a WebSocket opening handshake (RFC 6455: GET, Upgrade: websocket, Sec-WebSocket-Version: 13, Sec-WebSocket-Key), or no Upgrade header."
            }
            Problem::BadGateway => "Retry later; the API owner has been notified through the gateway's metrics.",
            Problem::UpstreamTls => "The upstream's certificate could not be verified; the API owner has to fix it. The gateway's log has the reason.",
            Problem::GatewayTimeout => "Retry later, or with a smaller request.",
            Problem::Unavailable => "Retry after the number of seconds in Retry-After.",
        }
    }

    /// The full response, with `extra` JSON members appended (already escaped, starting with `,`).
    pub fn response_with(self, extra: &str) -> Response<BoxBody> {
        let body = format!(
            "{{\"type\":\"urn:turnpike:problem:{code}\",\"title\":\"{title}\",\"status\":{status},\"code\":\"{code}\",\"detail\":\"{detail}\"{extra}}}",
            code = self.code(),
            title = self.title(),
            status = self.status().as_u16(),
            detail = self.detail(),
        );
        let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync());
        *r.status_mut() = self.status();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            // The rest of the body was not read: the connection cannot carry another request.
            Problem::BodyTooLarge | Problem::BadRequest => {
                r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Problem::MissingKey | Problem::InvalidKey | Problem::InvalidToken => {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"turnpike\""));
            }
            Problem::Unavailable => {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        r
    }

    /// The response.
    pub fn response(self) -> Response<BoxBody> {
        self.response_with("")
    }
}
