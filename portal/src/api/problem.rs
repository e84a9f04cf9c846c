//! RFC 9457 problem details: the one error shape of the JSON API, including for bodies axum
//! would otherwise reject with plain text (malformed JSON, wrong types, wrong content type).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use turnpike_store::StoreError;
use utoipa::{IntoResponses, ToSchema};

use crate::error::PortalError;
use crate::service::{NameError, ServiceError};

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of problem, e.g. `urn:turnpike:problem:not-found`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for a person.
    pub detail: String,
    /// Per-field validation errors (422 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub errors: Vec<FieldError>,
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name in the request (body field or query parameter).
    pub field: String,
    /// Why it was refused.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError { field: field.to_owned(), message: message.into() }
    }
}

/// Why an API request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid session or personal access token.
    #[error("unauthorized")]
    Unauthorized,
    /// No such resource, or one the caller does not own (never 403: that would leak it exists).
    #[error("not found")]
    NotFound,
    /// Fields failed validation; nothing changed.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// A unique name is taken, or the resource's state forbids the change; nothing changed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Authenticated, but the account may not do this yet; nothing changed.
    #[error("forbidden: {code}")]
    Forbidden {
        /// Stable problem code, e.g. `email-unverified`.
        code: &'static str,
        /// What to do about it.
        detail: String,
    },
    /// The body or query string could not be read (syntax, types, content type).
    #[error("bad request: {detail}")]
    BadRequest {
        /// 400, 413, 415 or 422.
        status: StatusCode,
        /// What was wrong.
        detail: String,
    },
    /// Anything else: logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<PortalError> for ApiError {
    fn from(e: PortalError) -> Self {
        match e {
            PortalError::NotFound | PortalError::Store(StoreError::NotFound) => ApiError::NotFound,
            PortalError::LoginRequired => ApiError::Unauthorized,
            e => ApiError::Internal(e.to_string()),
        }
    }
}

/// The field error for a refused name.
fn name_error(e: NameError) -> ApiError {
    let message = match e {
        NameError::Empty => "must not be empty",
        NameError::TooLong => "must be at most 80 characters",
        NameError::ControlCharacter => "must not contain control characters",
    };
    ApiError::Validation(vec![FieldError::new("name", message)])
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::InvalidName(n) => name_error(n),
            ServiceError::AppNameTaken(name) => ApiError::Conflict(format!("You already have an app called “{name}”.")),
            ServiceError::EmailUnverified => ApiError::Forbidden {
                code: "email-unverified",
                detail: "Confirm your email address before creating keys: open the link we emailed you.".into(),
            },
            ServiceError::NotRotatable => ApiError::Conflict("This key is revoked, suspended or already expiring.".into()),
            ServiceError::HasBillingHistory => ApiError::Conflict(
                "This app has metered usage or invoices, which are kept for billing. Revoke its keys to stop it instead.".into(),
            ),
            ServiceError::SlugTaken => ApiError::Conflict("This slug is taken.".into()),
            ServiceError::EmailTaken => ApiError::Conflict("This email address already has an account.".into()),
            ServiceError::NotOpen => ApiError::Conflict("Only open invoices can change.".into()),
            ServiceError::Stale => ApiError::Conflict("This changed meanwhile: reload and try again.".into()),
            ServiceError::StripeBilled => ApiError::Conflict("This is billed through Stripe: change it there.".into()),
            ServiceError::Invalid(problems) => {
                ApiError::Validation(problems.iter().map(|p| FieldError::new(p.field, p.message.clone())).collect())
            }
            ServiceError::RouteTaken => ApiError::Conflict("Another API already uses this route prefix (and host).".into()),
            ServiceError::Billing(e) => ApiError::Internal(e),
            ServiceError::Store(e) => ApiError::Internal(e.to_string()),
        }
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

fn problem(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Problem {
    Problem {
        type_: format!("urn:turnpike:problem:{code}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail: detail.into(),
        errors: Vec::new(),
    }
}

impl ApiError {
    /// The document sent to the client.
    pub fn to_problem(&self) -> Problem {
        match self {
            ApiError::Unauthorized => problem(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
                "Send a personal access token as `Authorization: Bearer tp_pat_…`, or call from a logged-in portal session.",
            ),
            ApiError::NotFound => problem(StatusCode::NOT_FOUND, "not-found", "Not found", "No such resource, or it is not yours."),
            ApiError::Validation(errors) => Problem {
                errors: errors.clone(),
                ..problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation",
                    "Invalid request",
                    "Some fields are invalid; nothing was changed.",
                )
            },
            ApiError::Conflict(detail) => problem(StatusCode::CONFLICT, "conflict", "Conflict", detail.clone()),
            ApiError::Forbidden { code, detail } => {
                let title = if *code == "insufficient-scope" || *code == "admin-only" { "Not allowed" } else { "Not allowed yet" };
                problem(StatusCode::FORBIDDEN, code, title, detail.clone())
            }
            ApiError::BadRequest { status, detail } => {
                let (code, title) = match *status {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Unsupported media type"),
                    StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "Request body too large"),
                    StatusCode::UNPROCESSABLE_ENTITY => ("invalid-body", "Invalid request body"),
                    _ => ("bad-request", "Malformed request"),
                };
                problem(*status, code, title, detail.clone())
            }
            ApiError::Internal(_) => problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "Something went wrong on our side; nothing you sent was wrong. Please retry later.",
            ),
        }
    }
}

/// A problem document as a response.
pub fn problem_response(p: &Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(p).unwrap_or_default();
    (status, [(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))], body).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, "api request failed");
        }
        let mut res = problem_response(&self.to_problem());
        if matches!(self, ApiError::Unauthorized) {
            res.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"turnpike\""));
        }
        res
    }
}

/// A JSON body whose rejections are problem documents: no `Content-Type: application/json` →
/// 415, malformed JSON → 400, missing fields or wrong types → 422. Unknown fields are ignored.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(r: &JsonRejection) -> ApiError {
    let (status, detail) = match r {
        JsonRejection::MissingJsonContentType(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Send the body as JSON with `Content-Type: application/json`.".to_owned())
        }
        JsonRejection::JsonSyntaxError(e) => (StatusCode::BAD_REQUEST, format!("The body is not valid JSON: {}", e.body_text())),
        JsonRejection::JsonDataError(e) => {
            (StatusCode::UNPROCESSABLE_ENTITY, format!("The JSON does not match the schema: {}", e.body_text()))
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "The body is too large.".to_owned()),
        _ => (StatusCode::BAD_REQUEST, "The body could not be read.".to_owned()),
    };
    ApiError::BadRequest { status, detail }
}

/// A query-string rejection as a 400 problem.
pub fn query_rejection(r: &QueryRejection) -> ApiError {
    ApiError::BadRequest { status: StatusCode::BAD_REQUEST, detail: format!("Invalid query string: {}", r.body_text()) }
}

/// Errors any authenticated operation can answer.
#[derive(IntoResponses)]
pub enum AuthErrors {
    /// No valid session or personal access token.
    #[response(status = 401, description = "Not authenticated", content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Server failure.
    #[response(status = 500, description = "Internal error", content_type = "application/problem+json")]
    Internal(Problem),
}

/// Errors of a developer operation that reads no resource of the caller's by id.
#[derive(IntoResponses)]
pub enum ScopedErrors {
    /// No valid session or personal access token.
    #[response(status = 401, description = "Not authenticated", content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// A token without the `developer` scope, or a cookie-authenticated write without the
    /// session's `X-CSRF-Token`.
    #[response(
        status = 403,
        description = "The token lacks the `developer` scope, or CSRF check failed (cookie-authenticated writes only)",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    /// Server failure.
    #[response(status = 500, description = "Internal error", content_type = "application/problem+json")]
    Internal(Problem),
}

/// Errors of an operation on one of the caller's resources.
#[derive(IntoResponses)]
pub enum OwnedErrors {
    /// No valid session or personal access token.
    #[response(status = 401, description = "Not authenticated", content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// A token without the `developer` scope.
    #[response(status = 403, description = "The token lacks the `developer` scope", content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource, or not the caller's.
    #[response(status = 404, description = "Not found (or not yours)", content_type = "application/problem+json")]
    NotFound(Problem),
    /// Server failure.
    #[response(status = 500, description = "Internal error", content_type = "application/problem+json")]
    Internal(Problem),
}

/// Errors of an operation that reads a JSON body.
#[derive(IntoResponses)]
pub enum BodyErrors {
    /// Malformed JSON.
    #[response(status = 400, description = "Malformed JSON", content_type = "application/problem+json")]
    BadRequest(Problem),
    /// Body too large.
    #[response(status = 413, description = "Body too large", content_type = "application/problem+json")]
    TooLarge(Problem),
    /// Not `application/json`.
    #[response(status = 415, description = "Body is not JSON", content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// Missing fields, wrong types or invalid values.
    #[response(status = 422, description = "Invalid fields; nothing changed", content_type = "application/problem+json")]
    Invalid(Problem),
}

/// Path parameters whose rejections (a non-numeric id, bad percent-encoding) are 404
/// problems: such a resource cannot exist.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|_| ApiError::NotFound)
    }
}

/// The CSRF guard's answer on `/api/` paths: a cookie-carrying write without the session's
/// token in `X-CSRF-Token` (or with a foreign `Origin`).
pub fn csrf_refused() -> Response {
    problem_response(&problem(
        StatusCode::FORBIDDEN,
        "csrf",
        "CSRF check failed",
        "Requests that carry the portal's session cookie must send the session's CSRF token in `X-CSRF-Token` and no foreign \
         `Origin`. Scripts should send a personal access token and no cookie.",
    ))
}

/// Errors of a state-changing operation: authentication, CSRF (session callers only),
/// ownership.
#[derive(IntoResponses)]
pub enum WriteErrors {
    /// No valid session or personal access token.
    #[response(status = 401, description = "Not authenticated", content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// A session-cookie request without the session's `X-CSRF-Token`, or a token without the
    /// `developer` scope.
    #[response(
        status = 403,
        description = "CSRF check failed (cookie-authenticated requests only), or the token lacks the `developer` scope",
        content_type = "application/problem+json"
    )]
    Csrf(Problem),
    /// No such resource, or not the caller's.
    #[response(status = 404, description = "Not found (or not yours)", content_type = "application/problem+json")]
    NotFound(Problem),
    /// Server failure.
    #[response(status = 500, description = "Internal error", content_type = "application/problem+json")]
    Internal(Problem),
}
