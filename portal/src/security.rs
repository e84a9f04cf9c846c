//! Cross-cutting protections: the CSRF guard on every state-changing request and the security
//! headers on every response.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{HeaderName, HOST, ORIGIN};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::Session;

use crate::error::PortalError;
use crate::PortalState;

/// Largest form body the portal reads. Its forms are a few short fields.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The only content the pages load: their own stylesheet, script and images.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; object-src 'none'";

/// Refuse any non-GET/HEAD/OPTIONS request whose `Origin` is foreign or whose form lacks the
/// session's CSRF token. Runs inside the session layer (it reads the session) and before any
/// handler, so no handler can forget it.
pub async fn csrf_guard(State(state): State<PortalState>, session: Session, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let path = req.uri().path();
    // Webhooks authenticate by their own signature, never by a cookie.
    if path.starts_with("/webhooks/") {
        return next.run(req).await;
    }
    // JSON API calls without a cookie carry no ambient authority, so there is nothing to forge;
    // the API authenticates them itself (a personal access token, or 401 problem+json).
    let api = path.starts_with("/api/");
    if api && !req.headers().contains_key(axum::http::header::COOKIE) {
        return next.run(req).await;
    }
    // The JSON API answers problem+json, pages answer the error page.
    let refuse = move || if api { crate::api::problem::csrf_refused() } else { PortalError::Csrf.into_response() };
    if !same_origin(&req) {
        return refuse();
    }
    // Script callers (the JSON API from the portal's own pages) send the token as a header.
    if let Some(sent) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned) {
        let Some(expected) = crate::ctx::session_csrf(&session).await else {
            return refuse();
        };
        if !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
            return refuse();
        }
        return next.run(req).await;
    }
    // A session without a token cannot send a valid form: refused before any body is read.
    let Some(expected) = crate::ctx::session_csrf(&session).await else {
        return refuse();
    };
    // File uploads (the admin console's OpenAPI documents) carry the token as a form field of a
    // multipart body. Only an administrator's session may make the guard read that much (16 MiB);
    // anyone else, anonymous visitors included, is held to the small form limit.
    let boundary = multipart_boundary(&req);
    let limit = match &boundary {
        Some(_) if path.starts_with("/admin/") && is_admin_session(&session, &state).await => MAX_UPLOAD_BYTES,
        _ => MAX_FORM_BYTES,
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) if boundary.is_some() => return upload_too_large(),
        Err(_) => return refuse(),
    };
    let matches = match &boundary {
        Some(b) => multipart_token_matches(bytes.clone(), b, &expected).await,
        None => form_token_matches(&bytes, &expected),
    };
    if !matches {
        return refuse();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

async fn is_admin_session(session: &Session, state: &PortalState) -> bool {
    matches!(crate::ctx::session_account(session, state).await, Ok(Some(a)) if a.role == turnpike_store::Role::Admin)
}

/// Largest multipart body the admin console reads: an OpenAPI document of up to 16 MiB plus
/// the form's other fields.
pub const MAX_UPLOAD_BYTES: usize = crate::openapi_import::MAX_SPEC_BYTES + 1024 * 1024;

/// The boundary of a `multipart/form-data` request, if it is one.
fn multipart_boundary(req: &Request) -> Option<String> {
    let ct = req.headers().get(axum::http::header::CONTENT_TYPE)?.to_str().ok()?;
    if !ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data") {
        return None;
    }
    multer::parse_boundary(ct).ok()
}

/// Whether the multipart body's `csrf` field equals `expected`.
async fn multipart_token_matches(body: Bytes, boundary: &str, expected: &str) -> bool {
    let mut form = multer::Multipart::new(Body::from(body).into_data_stream(), boundary);
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("csrf") {
            return match field.text().await {
                Ok(p) if !expected.is_empty() => bool::from(p.as_bytes().ct_eq(expected.as_bytes())),
                _ => false,
            };
        }
    }
    false
}

fn upload_too_large() -> Response {
    crate::error_page::ErrorPage::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "That upload is too large",
        "OpenAPI documents of up to 16 MiB can be uploaded. Go back and choose a smaller file.",
    )
    .into_response()
}

/// Header carrying the CSRF token on script requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An absent `Origin` passes (older browsers, curl); a present one must name this host.
fn same_origin(req: &Request) -> bool {
    let Some(origin) = req.headers().get(ORIGIN) else {
        return true;
    };
    let Some(host) = req.headers().get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    !authority.is_empty() && authority.eq_ignore_ascii_case(host)
}

fn form_token_matches(body: &Bytes, expected: &str) -> bool {
    let presented = form_urlencoded::parse(body).find(|(k, _)| k == "csrf").map(|(_, v)| v);
    match presented {
        Some(p) if !expected.is_empty() => bool::from(p.as_bytes().ct_eq(expected.as_bytes())),
        _ => false,
    }
}

/// The security headers, as layers; each only set if the handler did not set it.
pub fn header_layers() -> [SetResponseHeaderLayer<HeaderValue>; 4] {
    [
        header("x-content-type-options", "nosniff"),
        header("x-frame-options", "DENY"),
        header("referrer-policy", "same-origin"),
        header("content-security-policy", CSP),
    ]
}

fn header(name: &'static str, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(HeaderName::from_static(name), HeaderValue::from_static(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(origin: Option<&str>, host: &str) -> Request {
        let mut b = Request::builder().method(Method::POST).uri("/x").header(HOST, host);
        if let Some(o) = origin {
            b = b.header(ORIGIN, o);
        }
        b.body(Body::empty()).unwrap()
    }

    #[test]
    fn origin_must_match_host() {
        assert!(same_origin(&post(None, "portal.example.com")));
        assert!(same_origin(&post(Some("https://portal.example.com"), "portal.example.com")));
        assert!(same_origin(&post(Some("http://127.0.0.1:8080"), "127.0.0.1:8080")));
        assert!(!same_origin(&post(Some("https://evil.example"), "portal.example.com")));
        assert!(!same_origin(&post(Some("null"), "portal.example.com")));
        assert!(!same_origin(&post(Some("http://127.0.0.1:8081"), "127.0.0.1:8080")));
    }

    #[tokio::test]
    async fn multipart_token() {
        let body = |token: &str| {
            Bytes::from(format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"openapi\"; filename=\"a.yaml\"\r\n\r\nopenapi: 3.1.0\r\n\
                 --XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n--XyZ--\r\n"
            ))
        };
        assert!(multipart_token_matches(body("abc123"), "XyZ", "abc123").await);
        assert!(!multipart_token_matches(body("abc124"), "XyZ", "abc123").await);
        assert!(!multipart_token_matches(body(""), "XyZ", "").await);
        assert!(!multipart_token_matches(Bytes::from_static(b"not multipart"), "XyZ", "abc123").await);
        let req = Request::builder()
            .method(Method::POST)
            .uri("/admin/apis")
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(Body::empty())
            .unwrap();
        assert_eq!(multipart_boundary(&req).as_deref(), Some("XyZ"));
        assert_eq!(multipart_boundary(&post(None, "h")), None);
    }

    #[test]
    fn token_compare() {
        let body = Bytes::from_static(b"name=a&csrf=abc123");
        assert!(form_token_matches(&body, "abc123"));
        assert!(!form_token_matches(&body, "abc124"));
        assert!(!form_token_matches(&Bytes::from_static(b"name=a"), "abc123"));
        assert!(!form_token_matches(&Bytes::from_static(b"csrf="), ""));
    }
}
