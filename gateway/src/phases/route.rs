//! Phase 1, route: the path normalised (dot-segments resolved or refused, see [`crate::path`]),
//! then host + path prefix → API (the precompiled table, swapped atomically on change). Also
//! refused here, before anything is authenticated or counted: an upgrade to
//! anything but WebSocket, and a declared body over the limit.

use std::borrow::Cow;
use std::sync::Arc;

use http::header;
use http::Request;

use super::{Ctx, Step};
use crate::gateway::Inner;
use crate::problem::Problem;
use crate::proxy::{self, UpgradeAsk};
use crate::routes::Route;

/// The routed request.
pub(crate) struct Routed {
    pub(crate) route: Arc<Route>,
    /// A WebSocket handshake, to be tunnelled after a 101.
    pub(crate) websocket: bool,
    /// The normalised path when it differs from the request's (`None`: the request's own).
    pub(crate) path: Option<String>,
}

pub(crate) fn run<B>(inner: &Inner, req: &Request<B>, ctx: &mut Ctx) -> Step<Routed> {
    let Ok(path) = crate::path::normalize(req.uri().path()) else {
        return Err(Problem::BadPath.response());
    };
    let routes = inner.routes.load();
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().host());
    let Some(route) = routes.find(host, &path).cloned() else {
        return Err(Problem::NoRoute.response());
    };
    drop(routes);
    ctx.route = Some(route.clone());

    // Only a WebSocket handshake may be tunnelled; any other upgrade is refused before it is
    // authenticated or counted, and never reaches the upstream.
    let ask = proxy::upgrade_ask(req.method(), req.version(), req.headers());
    if ask == UpgradeAsk::Refused {
        return Err(Problem::UpgradeRefused.response());
    }

    // A declared body over the limit is refused before it is authenticated or counted (like
    // nginx's client_max_body_size); a streamed body is cut off at the limit while forwarded.
    let declared_len = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > inner.cfg.max_body_bytes) {
        return Err(Problem::BodyTooLarge.response());
    }
    let path = match path {
        Cow::Borrowed(_) => None,
        Cow::Owned(p) => Some(p),
    };
    Ok(Routed { route, websocket: ask == UpgradeAsk::WebSocket, path })
}
