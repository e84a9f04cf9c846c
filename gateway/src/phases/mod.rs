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

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

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
    /// The request's place in a trace (`trace_context` on).
    pub(crate) trace: Option<crate::trace::Trace>,
}

impl Ctx {
    /// Note the end of a phase on a recorded span.
    pub(crate) fn mark(&mut self, m: crate::trace::Mark) {
        if let Some(t) = self.trace.as_mut().filter(|t| t.recorded) {
            t.mark(m, self.started);
        }
    }

    pub(crate) fn new<B>(req: &Request<B>) -> Ctx {
        Ctx {
            started: Instant::now(),
            request_id: req.headers().get(&crate::proxy::X_REQUEST_ID).filter(|v| v.len() <= 128).cloned().unwrap_or_else(new_request_id),
            route: None,
            identity: None,
            plan_requests: None,
            upstream: None,
            now_us: 0,
            client: None,
            trace: None,
        }
    }
}

/// A fresh request id: 32 hex digits, unique without a random draw or `format!` per request
/// (issue 14: `rand::random::<u128>()` and `format!("{:032x}")` cost 911 instructions per request
/// in callgrind, with three allocations). The first half is drawn once per thread; the second is a per-thread
/// counter through a bijective mixer (so ids do not reveal the request count), hence never the
/// same twice within a thread, and across threads only if the 64-bit draws collide.
fn new_request_id() -> HeaderValue {
    thread_local! {
        static NEXT: Cell<(u64, u64)> = Cell::new((rand::random(), rand::random()));
    }
    let (prefix, n) = NEXT.with(|c| {
        let (prefix, n) = c.get();
        c.set((prefix, n.wrapping_add(1)));
        (prefix, n)
    });
    let mut id = [0u8; 32];
    hex(prefix, &mut id[..16]);
    hex(crate::counters::splitmix64(n), &mut id[16..]);
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("0"))
}

fn hex(v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, o) in out.iter_mut().enumerate().take(16) {
        *o = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_32_hex_digits_and_distinct() {
        let ids: std::collections::HashSet<HeaderValue> = (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        let mut s = [0u8; 16];
        hex(0x0123_4567_89ab_cdef, &mut s);
        assert_eq!(&s, b"0123456789abcdef");
    }
}
