//! The route table: compiled once from the published APIs and swapped atomically on change.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

use http::uri::{Authority, Scheme};
use http::HeaderValue;
use rand::Rng;
use std::collections::HashMap;
use turnpike_store::{Api, Visibility};

use crate::operations::{OpId, Operations};

/// One upstream target, parsed once.
#[derive(Debug)]
pub struct Target {
    pub(crate) scheme: Scheme,
    /// `https://`: sent through the TLS client.
    pub(crate) tls: bool,
    pub(crate) authority: Authority,
    /// Path prefix on the upstream, without a trailing slash.
    pub(crate) base_path: String,
    pub(crate) weight: u32,
    /// Consecutive connect failures and timeouts (passive health).
    failures: AtomicU32,
    /// Unix microseconds until which the target is ejected.
    ejected_until: AtomicI64,
}

/// Passive health: a target that fails this many times in a row is ejected…
pub const EJECT_AFTER_FAILURES: u32 = 3;
/// …for this long; then one request probes it (and a failure ejects it again at once).
pub const EJECT_FOR_MICROS: i64 = 10_000_000;

impl Target {
    pub(crate) fn healthy(&self, now_us: i64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) <= now_us
    }

    /// Record the outcome of a request to this target.
    pub(crate) fn report(&self, ok: bool, now_us: i64) {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
        } else if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= EJECT_AFTER_FAILURES {
            self.ejected_until.store(now_us + EJECT_FOR_MICROS, Ordering::Relaxed);
        }
    }
}

/// A routable API.
#[derive(Debug)]
pub struct Route {
    pub(crate) api_id: i64,
    pub(crate) slug: Arc<str>,
    /// Path prefix without a trailing slash ("" for the root).
    pub(crate) prefix: String,
    host: Option<String>,
    pub(crate) allow_query_key: bool,
    pub(crate) targets: Vec<Target>,
    total_weight: u32,
    pub(crate) api_header: HeaderValue,
    /// `turnpike_gateway_requests_total` by status class (2xx, 3xx, 4xx, 5xx) for requests
    /// refused before a plan is known (`plan="-"`), registered once.
    pub(crate) requests: [metrics::Counter; 4],
    /// The API's operations, compiled from its OpenAPI document (`None`: no document).
    operations: Option<Arc<Operations>>,
}

impl Route {
    /// The operation a request matches (0: unmatched), for analytics.
    pub(crate) fn operation(&self, method: &http::Method, path: &str) -> OpId {
        self.operations.as_ref().map_or(0, |o| o.find(method, path))
    }

    /// A healthy target chosen at random in proportion to the weights. When every target is
    /// ejected, all of them are candidates again: a partial outage must not become a total one.
    pub(crate) fn pick(&self, now_us: i64) -> Option<&Target> {
        if self.targets.len() <= 1 || self.total_weight == 0 {
            return self.targets.first();
        }
        let healthy_weight: u32 = self.targets.iter().filter(|t| t.healthy(now_us)).map(|t| t.weight).sum();
        let all = healthy_weight == 0;
        let total = if all { self.total_weight } else { healthy_weight };
        let mut n = rand::thread_rng().gen_range(0..total);
        for t in self.targets.iter().filter(|t| all || t.healthy(now_us)) {
            if n < t.weight {
                return Some(t);
            }
            n -= t.weight;
        }
        self.targets.last()
    }
}

/// Every routable API, longest prefix first.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

/// Whether the gateway can route to `url`; the reason if not. Pure, so that the portal can
/// refuse an unroutable upstream when an API is saved instead of publishing an API that the
/// gateway answers with `no_route`.
pub fn check_target(url: &str) -> Result<(), &'static str> {
    turnpike_store::check_upstream_url(url)
}

fn parse_target(url: &str, weight: u32) -> Result<Target, &'static str> {
    check_target(url)?;
    let uri: http::Uri = url.parse().map_err(|_| "not a valid URL")?;
    let scheme = uri.scheme().cloned().ok_or("no scheme")?;
    Ok(Target {
        tls: scheme == Scheme::HTTPS,
        scheme,
        authority: uri.authority().ok_or("no host")?.clone(),
        base_path: uri.path().trim_end_matches('/').to_owned(),
        weight,
        failures: AtomicU32::new(0),
        ejected_until: AtomicI64::new(0),
    })
}

impl RouteTable {
    /// Compile the table from APIs; drafts and APIs without a usable upstream are left out.
    pub fn build(apis: &[Api]) -> RouteTable {
        RouteTable::build_with(apis, &HashMap::new())
    }

    /// [`RouteTable::build`] with each API's compiled operations.
    pub(crate) fn build_with(apis: &[Api], operations: &HashMap<i64, Arc<Operations>>) -> RouteTable {
        let mut routes: Vec<Arc<Route>> = apis
            .iter()
            .filter(|a| a.visibility != Visibility::Draft)
            .filter_map(|a| {
                let mut targets = Vec::with_capacity(a.upstreams.len());
                for u in &a.upstreams {
                    match parse_target(&u.url, u.weight) {
                        Ok(t) => targets.push(t),
                        Err(reason) => tracing::warn!(api = %a.slug, url = %u.url, reason, "upstream target not routable; left out"),
                    }
                }
                if targets.is_empty() {
                    tracing::warn!(api = %a.slug, "API has no usable upstream; not routed");
                    return None;
                }
                Some(Arc::new(Route {
                    api_id: a.id,
                    slug: Arc::from(a.slug.as_str()),
                    prefix: a.route_prefix.trim_end_matches('/').to_owned(),
                    host: a.host.as_ref().map(|h| h.to_ascii_lowercase()),
                    allow_query_key: a.allow_query_key,
                    total_weight: targets.iter().map(|t| t.weight).sum(),
                    targets,
                    api_header: HeaderValue::from_str(&a.slug).unwrap_or(HeaderValue::from_static("unknown")),
                    requests: ["2xx", "3xx", "4xx", "5xx"]
                        .map(|class| metrics::counter!("turnpike_gateway_requests_total", "api" => a.slug.clone(), "plan" => "-", "status" => class)),
                    operations: operations.get(&a.id).cloned(),
                }))
            })
            .collect();
        // Longest prefix first; host-specific routes before host-agnostic ones of equal length.
        routes.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()).then(b.host.is_some().cmp(&a.host.is_some())));
        RouteTable { routes }
    }

    /// The route for `host` and `path`, matching whole path segments.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let host = host.map(|h| h.split(':').next().unwrap_or(h));
        self.routes.iter().find(|r| {
            let host_ok = match (&r.host, host) {
                (None, _) => true,
                (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                (Some(_), None) => false,
            };
            host_ok && path.starts_with(r.prefix.as_str()) && matches!(path.as_bytes().get(r.prefix.len()), None | Some(b'/') | Some(b'?'))
        })
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_store::Upstream;

    fn api(id: i64, prefix: &str, host: Option<&str>, vis: Visibility) -> Api {
        Api {
            id,
            slug: format!("api{id}"),
            name: String::new(),
            description: String::new(),
            route_prefix: prefix.into(),
            host: host.map(Into::into),
            upstreams: vec![Upstream { url: "http://127.0.0.1:9/base/".into(), weight: 1 }],
            openapi: None,
            visibility: vis,
            allow_query_key: false,
            updated_at: 0,
        }
    }

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let t = RouteTable::build(&[
            api(1, "/pay", None, Visibility::Public),
            api(2, "/pay/v2", None, Visibility::Public),
            api(3, "/draft", None, Visibility::Draft),
            api(4, "/pay", Some("eu.example.com"), Visibility::Private),
        ]);
        assert_eq!(t.len(), 3);
        let id = |h: Option<&str>, p: &str| t.find(h, p).map(|r| r.api_id);
        assert_eq!(id(None, "/pay/v2/x"), Some(2));
        assert_eq!(id(None, "/pay/v1"), Some(1));
        assert_eq!(id(None, "/pay"), Some(1));
        assert_eq!(id(None, "/payments"), None);
        assert_eq!(id(None, "/draft/x"), None);
        assert_eq!(id(Some("EU.example.com:8000"), "/pay/x"), Some(4));
        assert_eq!(t.find(None, "/pay/x").unwrap().pick(0).unwrap().base_path, "/base");
    }

    #[test]
    fn https_targets_are_routed_and_unroutable_ones_say_why() {
        for ok in ["http://10.0.0.5:8080/v1", "https://api.github.com", "https://abc.lambda-url.eu-west-1.on.aws/prod/", "http://[::1]:9"] {
            assert_eq!(check_target(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("ftp://x", "scheme"),
            ("api.github.com", "absolute"),
            ("/v1", "absolute"),
            ("https://user:pw@x.test", "credentials"),
            ("https://x.test/v1?a=1", "query"),
            ("not a url", "valid"),
        ] {
            assert!(check_target(bad).is_err_and(|r| r.contains(why)), "{bad}: {:?}", check_target(bad));
        }
        let mut a = api(1, "/gh", None, Visibility::Public);
        a.upstreams = vec![Upstream { url: "https://api.github.com/base/".into(), weight: 1 }];
        let t = RouteTable::build(&[a]);
        let target = t.find(None, "/gh/x").expect("an https target is routed").pick(0).unwrap();
        assert_eq!((target.scheme.as_str(), target.authority.as_str(), target.base_path.as_str()), ("https", "api.github.com", "/base"));
    }
}
