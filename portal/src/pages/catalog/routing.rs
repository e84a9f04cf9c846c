//! Whether the gateway routes an API, by the gateway's own rule: the admin console and the
//! catalog say what the gateway does. Saving an unroutable target is refused with a field error,
//! but stored rows can still hold one (older data, direct SQL, a future `apply`).

use turnpike_store::Api;

/// Why the gateway routes none of `api`'s upstream targets, if it routes none: every target
/// fails [`turnpike_store::check_upstream_url`] (the check `turnpike_gateway::check_target`
/// applies when it builds its route table), or there is no target at all. `None` when at least
/// one target is routed (the gateway leaves the others out).
pub fn unroutable_reason(api: &Api) -> Option<String> {
    let mut first_problem = None;
    for (i, u) in api.upstreams.iter().enumerate() {
        match turnpike_store::check_upstream_url(&u.url) {
            Ok(()) => return None,
            Err(why) if first_problem.is_none() => first_problem = Some(format!("upstream target {} ({}): {why}", i + 1, u.url)),
            Err(_) => {}
        }
    }
    Some(first_problem.unwrap_or_else(|| "no upstream target".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_store::{Upstream, Visibility};

    fn api(urls: &[&str]) -> Api {
        Api {
            id: 1,
            slug: "a".into(),
            name: "A".into(),
            description: String::new(),
            route_prefix: "/a".into(),
            host: None,
            upstreams: urls.iter().map(|u| Upstream { url: (*u).into(), weight: 1 }).collect(),
            visibility: Visibility::Public,
            allow_query_key: false,
            openapi: None,
            updated_at: 0,
        }
    }

    #[test]
    fn routed_when_any_target_is_usable() {
        assert_eq!(unroutable_reason(&api(&["https://api.example.com/v1"])), None);
        assert_eq!(unroutable_reason(&api(&["ftp://x", "http://10.0.0.5:8080"])), None);
        let why = unroutable_reason(&api(&["ftp://files.example.com", "http://u:p@h"])).unwrap_or_default();
        assert!(why.starts_with("upstream target 1 (ftp://files.example.com): the scheme"), "{why}");
        assert_eq!(unroutable_reason(&api(&[])).as_deref(), Some("no upstream target"));
    }
}
