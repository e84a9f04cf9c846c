//! The request path as explicit phases over a per-request context, like pingora's `ProxyHttp`
//! callbacks: each phase takes the context and returns what the next phase needs ("continue")
//! or a response to answer with now ([`Step`]'s `Err`). `Gateway::handle` only lists them:
//!
//! 1. [`route`]: host + path → API; refuse what must not be routed at all.
//! 2. [`authenticate`]: credential (key or JWT) → identity → the app's grant on this API.
//! 3. [`limit`]: rate + quota checked and consumed atomically; the admitted count is billable.
//! 4. [`forward`]: the upstream request, streamed both ways, errors classified.
//! 5. [`meter`]: status, bytes and latency into the request's bucket when the body ends; the
//!    gateway's own metrics and the access log.

// A phase's early answer is the response itself, moved out once per request; boxing it to make
// `Err` smaller would add an allocation to every refused request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};

use crate::auth::Identity;
use crate::proxy::BoxBody;
use crate::routes::Route;

pub(crate) mod authenticate;
pub(crate) mod forward;
pub(crate) mod limit;
pub(crate) mod meter;
pub(crate) mod route;

/// A phase's outcome: continue with `T`, or answer with this response now.
pub(crate) type Step<T> = Result<T, Response<BoxBody>>;

/// Everything known about one request, filled in phase by phase; the meter phase reads it at
/// the end for the metrics and the access log.
pub(crate) struct Ctx {
    pub(crate) started: Instant,
    pub(crate) request_id: HeaderValue,
    /// The API, once routed.
    pub(crate) route: Option<Arc<Route>>,
    /// The key, once resolved.
    pub(crate) identity: Option<Arc<Identity>>,
    /// Request counters labelled with the API and the plan, once the plan is known.
    pub(crate) plan_requests: Option<Arc<[metrics::Counter; 4]>>,
    /// Time to the upstream's response headers.
    pub(crate) upstream: Option<std::time::Duration>,
    /// Unix microseconds, read once the request carries a well-formed credential.
    pub(crate) now_us: i64,
    /// The client behind a trusted proxy (`None`: the TCP peer is the client).
    pub(crate) client: Option<Box<str>>,
}

impl Ctx {
    pub(crate) fn new<B>(req: &Request<B>) -> Ctx {
        Ctx {
            started: Instant::now(),
            request_id: req.headers().get("x-request-id").filter(|v| v.len() <= 128).cloned().unwrap_or_else(new_request_id),
            route: None,
            identity: None,
            plan_requests: None,
            upstream: None,
            now_us: 0,
            client: None,
        }
    }
}

fn new_request_id() -> HeaderValue {
    let id: u128 = rand::random();
    HeaderValue::from_maybe_shared(Bytes::from(format!("{id:032x}"))).unwrap_or(HeaderValue::from_static("0"))
}
