//! Oracles shared by the fuzz targets in `fuzz/` and this crate's property tests: each runs the
//! code under test on one input and panics when a property does not hold, so that `cargo fuzz`
//! (nightly, minutes) and proptest (stable, in `cargo test`) check the same things. Not API.

use http::{HeaderMap, HeaderValue};
use turnpike_store::domain::ApiKey;
use turnpike_store::{Api, Visibility};

use crate::auth::{extract, CredentialSource};
use crate::jwt::{looks_like_jwt, JwtError, JwtSettings, JwtVerifier};
use crate::routes::RouteTable;

pub use crate::headers::LimitState;

/// The largest Structured Field integer (RFC 8941 §3.3.1: at most 15 digits).
pub const SF_INTEGER_MAX: i64 = 999_999_999_999_999;

/// Credential extraction on any `Authorization`, `X-API-Key` and query: the credential comes
/// from the first source that carries one (a Bearer token, then the key header, then the first
/// `api_key=` pair where allowed), trimmed, and is never both JWT-shaped and a valid key.
pub fn check_credentials(authorization: Option<&[u8]>, x_api_key: Option<&[u8]>, query: Option<&str>, allow_query: bool) {
    let auth = authorization.and_then(|v| HeaderValue::from_bytes(v).ok());
    let key_header = x_api_key.and_then(|v| HeaderValue::from_bytes(v).ok());
    let mut headers = HeaderMap::new();
    if let Some(v) = &auth {
        headers.insert(http::header::AUTHORIZATION, v.clone());
    }
    if let Some(v) = &key_header {
        headers.insert("x-api-key", v.clone());
    }
    // RFC 6750 §2.1: `Bearer` (any case), one or more spaces, the token.
    let bearer = auth.as_ref().and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let expected = match (bearer, key_header.as_ref().and_then(|v| v.to_str().ok())) {
        (Some(token), _) => Some((token, CredentialSource::Authorization)),
        (None, Some(key)) => Some((key.trim(), CredentialSource::Header)),
        (None, None) if allow_query => {
            query.and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("api_key="))).map(|key| (key, CredentialSource::Query))
        }
        (None, None) => None,
    };
    let got = extract(&headers, query, allow_query);
    assert_eq!(got, expected, "authorization {auth:?}, x-api-key {key_header:?}, query {query:?}, allow_query {allow_query}");
    if let Some((credential, _)) = got {
        let jwt = looks_like_jwt(credential);
        assert_eq!(jwt, credential.starts_with("eyJ") && credential.matches('.').count() == 2, "{credential:?}");
        assert!(!(jwt && ApiKey::verify(credential).is_ok()), "{credential:?} is both a JWT and a key");
    }
}

/// A token's claims, as the fuzzer or proptest chose them.
#[derive(Debug, Clone, Default)]
pub struct JwtCase {
    /// Verifier settings.
    pub issuer: Option<String>,
    /// Verifier settings.
    pub audience: Option<String>,
    /// Verifier settings: `None`, `sub`, `iss` or another claim name.
    pub consumer_claim: Option<String>,
    /// Verifier settings.
    pub leeway_seconds: Option<i64>,
    /// Claims.
    pub exp: Option<i64>,
    /// Claims.
    pub nbf: Option<i64>,
    /// Claims.
    pub iss: Option<String>,
    /// Claims: one audience or a list.
    pub aud: Option<Vec<String>>,
    /// Claims: the value of the consumer claim (`sub` unless configured otherwise).
    pub consumer: Option<String>,
    /// The verifier's clock.
    pub now: i64,
    /// Flip one character of the signed token at this index (mod length), if set.
    pub tamper_at: Option<usize>,
}

const JWT_SECRET: &str = "fuzzing-secret-of-at-least-32-bytes!";

/// The verifier's answer for a token signed with its own secret, computed without overflow.
fn expected_jwt(c: &JwtCase) -> Result<i64, JwtError> {
    let leeway = i128::from(c.leeway_seconds.unwrap_or(30).max(0));
    let now = i128::from(c.now);
    match c.exp {
        Some(exp) if now <= i128::from(exp) + leeway => {}
        _ => return Err(JwtError::Expired),
    }
    if c.nbf.is_some_and(|nbf| now + leeway < i128::from(nbf)) {
        return Err(JwtError::NotYetValid);
    }
    if c.issuer.as_ref().is_some_and(|want| c.iss.as_ref() != Some(want)) {
        return Err(JwtError::WrongAudience);
    }
    if c.audience.as_ref().is_some_and(|want| !c.aud.iter().flatten().any(|a| a == want)) {
        return Err(JwtError::WrongAudience);
    }
    let consumer = match c.consumer_claim.as_deref() {
        Some("iss") => c.iss.as_deref(),
        _ => c.consumer.as_deref(),
    };
    let id = consumer.and_then(|s| s.strip_prefix("key_")).and_then(|n| n.parse::<i64>().ok()).filter(|n| *n > 0);
    id.ok_or(JwtError::NoConsumer)
}

/// An HS256 token with the case's claims verifies exactly as the rules say (time with leeway,
/// issuer, audience, consumer), with no overflow at any clock or claim value; any tampered
/// token is refused; and any text at all is answered without a panic.
pub fn check_jwt(c: &JwtCase, arbitrary_token: &str) {
    let settings = JwtSettings {
        api: "fuzz".into(),
        issuer: c.issuer.clone(),
        audience: c.audience.clone(),
        hs256_secret: Some(JWT_SECRET.into()),
        consumer_claim: c.consumer_claim.clone(),
        leeway_seconds: c.leeway_seconds,
        ..JwtSettings::default()
    };
    let verifier = JwtVerifier::new(&settings).expect("valid settings");
    let _ = verifier.verify(arbitrary_token, c.now);

    let mut claims = serde_json::Map::new();
    let mut put = |k: &str, v: Option<serde_json::Value>| {
        if let Some(v) = v {
            claims.insert(k.to_owned(), v);
        }
    };
    put("exp", c.exp.map(Into::into));
    put("nbf", c.nbf.map(Into::into));
    put("iss", c.iss.clone().map(Into::into));
    put("aud", c.aud.clone().map(|a| if a.len() == 1 { a[0].clone().into() } else { a.into() }));
    let consumer_claim = c.consumer_claim.clone().unwrap_or_else(|| "sub".into());
    if consumer_claim != "iss" && !["exp", "nbf", "aud"].contains(&consumer_claim.as_str()) {
        put(&consumer_claim, c.consumer.clone().map(Into::into));
    }
    let Ok(token) = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    ) else {
        return;
    };
    assert!(looks_like_jwt(&token), "{token}");
    let mut case = c.clone();
    if ["exp", "nbf", "aud"].contains(&consumer_claim.as_str()) {
        case.consumer = None;
    }
    assert_eq!(verifier.verify(&token, c.now), expected_jwt(&case), "{c:?}");

    if let Some(at) = c.tamper_at {
        let mut bytes = token.clone().into_bytes();
        let i = at % bytes.len();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ASCII");
        if tampered != token {
            assert!(verifier.verify(&tampered, c.now).is_err(), "tampered token {tampered} accepted");
        }
    }
}

/// Whether `path` lies under `prefix` on a segment boundary.
fn under_prefix(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

/// The host name of a `Host` value, without a port (keeps an IPv6 literal whole).
fn host_name(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(host, |end| &host[..end + 2]),
        None => host.split(':').next().unwrap_or(host),
    }
}

/// Whether the gateway can send requests to `url`: http or https with a host, without
/// credentials or a query string, and a port (when one is written) from 1 to 65535.
fn usable_upstream(url: &str) -> bool {
    url.parse::<http::Uri>().is_ok_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https"))
            && u.authority().is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'))
            && u.query().is_none()
            && written_port_ok(url)
    })
}

/// The port written in `url`'s authority, read from the text: none, or a number 1–65535.
fn written_port_ok(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let after_host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, r)| r),
        None => authority.find(':').map_or("", |i| &authority[i..]),
    };
    match after_host.strip_prefix(':') {
        None => after_host.is_empty(),
        Some(p) => {
            !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && (1..=65_535).contains(&p.parse::<u32>().unwrap_or(0))
        }
    }
}

/// Route matching on any set of APIs (ids `0..n`; hosts are DNS names, as the admin form
/// requires; weights are the form's 0–1000) and any request host and path: the table holds the
/// routable APIs, and `find` answers the longest whole-segment prefix match (host-specific
/// before host-agnostic), or nothing when no API matches. `pick` then chooses one of the
/// route's targets, a healthy one when there is one with weight, after `failures[i]` failures
/// of target `i` at `now_us` (a realistic clock: `0..2^53`).
pub fn check_route_matching(apis: &[Api], host: Option<&str>, path: &str, failures: &[u8], now_us: i64) {
    let table = RouteTable::build(apis);
    let routable = |a: &Api| a.visibility != Visibility::Draft && a.upstreams.iter().any(|u| usable_upstream(&u.url));
    assert_eq!(table.len(), apis.iter().filter(|a| routable(a)).count());
    let matches = |a: &Api| {
        let host_ok = match (&a.host, host) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(host_name(got)),
            (Some(_), None) => false,
        };
        routable(a) && host_ok && under_prefix(a.route_prefix.trim_end_matches('/'), path)
    };
    // Rank: prefix length, then host-specific over host-agnostic.
    let rank = |a: &Api| (a.route_prefix.trim_end_matches('/').len(), a.host.is_some());
    let best = apis.iter().filter(|a| matches(a)).map(rank).max();
    let found = table.find(host, path);
    let Some(route) = found else {
        assert_eq!(best, None, "no route for host {host:?} path {path:?}, but an API matches");
        return;
    };
    let api = usize::try_from(route.api_id).ok().and_then(|i| apis.get(i)).expect("a route of one of the APIs");
    assert!(matches(api), "route {:?} does not match host {host:?} path {path:?}", api.route_prefix);
    assert_eq!(Some(rank(api)), best, "route {:?} is not the best match for {host:?} {path:?}", api.route_prefix);

    let targets: Vec<_> = api.upstreams.iter().filter(|u| usable_upstream(&u.url)).collect();
    for (i, t) in route.targets.iter().enumerate() {
        for _ in 0..failures.get(i).copied().unwrap_or(0) % 8 {
            t.report(false, now_us);
        }
    }
    let picked = route.pick(now_us).expect("a route has targets");
    let index = route.targets.iter().position(|t| std::ptr::eq(t, picked)).expect("one of the route's targets");
    assert_eq!(picked.base_path, targets[index].url.parse::<http::Uri>().expect("usable").path().trim_end_matches('/'));
    let weighted_healthy = route.targets.iter().any(|t| t.weight > 0 && t.healthy(now_us));
    if route.targets.len() > 1 && weighted_healthy {
        assert!(picked.weight > 0 && picked.healthy(now_us), "picked an ejected or weightless target");
    }
}

/// A Structured Field list member: a string and its integer parameters, in order.
type SfMember = (String, Vec<(String, i64)>);

/// A parsed Structured Field list of strings with integer parameters (RFC 8941 §4.2), strictly.
fn parse_sf_list(s: &str) -> Result<Vec<SfMember>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        if b.get(i) != Some(&b'"') {
            return Err(format!("member at {i} is not a string"));
        }
        i += 1;
        let mut name = String::new();
        loop {
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => match b.get(i + 1) {
                    Some(c @ (b'"' | b'\\')) => {
                        name.push(char::from(*c));
                        i += 1;
                    }
                    _ => return Err("bad escape".into()),
                },
                Some(c @ 0x20..=0x7e) => name.push(char::from(*c)),
                _ => return Err("bad string".into()),
            }
            i += 1;
        }
        i += 1;
        let mut params = Vec::new();
        while b.get(i) == Some(&b';') {
            i += 1;
            let start = i;
            if !matches!(b.get(i), Some(b'a'..=b'z' | b'*')) {
                return Err("bad key".into());
            }
            while matches!(b.get(i), Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')) {
                i += 1;
            }
            let key = s[start..i].to_owned();
            if b.get(i) != Some(&b'=') {
                return Err(format!("parameter {key} has no value"));
            }
            i += 1;
            let start = i;
            if b.get(i) == Some(&b'-') {
                i += 1;
            }
            let digits = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == digits || i - digits > 15 {
                return Err(format!("parameter {key} is not an sf-integer: {:?}", &s[start..i]));
            }
            params.push((key, s[start..i].parse::<i64>().map_err(|e| e.to_string())?));
        }
        out.push((name, params));
        if i == b.len() {
            return Ok(out);
        }
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        if b.get(i) != Some(&b',') {
            return Err(format!("junk at {i}"));
        }
        i += 1;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
    }
}

fn sf_clamp(n: i128, min: i128) -> i64 {
    i64::try_from(n.clamp(min, i128::from(SF_INTEGER_MAX))).unwrap_or(SF_INTEGER_MAX)
}

fn parsed(h: &HeaderValue) -> Vec<SfMember> {
    let text = h.to_str().expect("visible ASCII");
    parse_sf_list(text).unwrap_or_else(|e| panic!("{text:?} is not a valid Structured Field list: {e}"))
}

/// `RateLimit-Policy` and `RateLimit` for any plan and limiter state: valid header values that
/// parse as Structured Field lists whose numbers are exactly the inputs (the burst window
/// derived from the rate), clamped to `0..=SF_INTEGER_MAX` (windows at least 1).
pub fn check_rate_limit_headers(burst: i64, rate: i64, quota: Option<i64>, period_secs: i64, state: LimitState) {
    let policy = parsed(&LimitState::policy_for(burst, rate, quota, period_secs));
    let emission = (1_000_000 / i128::from(rate.max(1))).max(1);
    let window = (emission * i128::from(burst.max(1)) + 999_999) / 1_000_000;
    let mut want = vec![("burst".to_owned(), vec![("q".to_owned(), sf_clamp(burst.into(), 0)), ("w".to_owned(), sf_clamp(window, 1))])];
    if let Some(q) = quota {
        want.push(("quota".to_owned(), vec![("q".to_owned(), sf_clamp(q.into(), 0)), ("w".to_owned(), sf_clamp(period_secs.into(), 1))]));
    }
    assert_eq!(policy, want, "RateLimit-Policy for burst {burst}, rate {rate}, quota {quota:?}, period {period_secs}");

    let remaining = parsed(&state.remaining());
    let mut want = vec![(
        "burst".to_owned(),
        vec![("r".to_owned(), sf_clamp(state.burst_remaining.into(), 0)), ("t".to_owned(), sf_clamp(state.burst_reset.into(), 0))],
    )];
    if state.quota.is_some() {
        want.push((
            "quota".to_owned(),
            vec![("r".to_owned(), sf_clamp(state.quota_remaining.into(), 0)), ("t".to_owned(), sf_clamp(state.quota_reset.into(), 0))],
        ));
    }
    assert_eq!(remaining, want, "RateLimit for {state:?}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use turnpike_store::Upstream;

    fn visibility() -> impl Strategy<Value = Visibility> {
        prop_oneof![Just(Visibility::Draft), Just(Visibility::Public), Just(Visibility::Private)]
    }

    fn upstream() -> impl Strategy<Value = Upstream> {
        (prop_oneof!["http://[a-c]\\.test(:[0-9]{1,4})?(/[a-z]{0,3}){0,2}/?", "https://a\\.test/x", "[a-z:/]{0,8}"], 0u32..=1000)
            .prop_map(|(url, weight)| Upstream { url, weight })
    }

    fn apis() -> impl Strategy<Value = Vec<Api>> {
        proptest::collection::vec(
            ("(/[ab]{1,2}){0,3}/?", proptest::option::of("[aB]{1,2}(\\.t)?"), visibility(), proptest::collection::vec(upstream(), 0..4)),
            0..8,
        )
        .prop_map(|specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (route_prefix, host, visibility, upstreams))| Api {
                    id: i as i64,
                    slug: format!("api{i}"),
                    name: String::new(),
                    description: String::new(),
                    route_prefix,
                    host,
                    upstreams,
                    openapi: None,
                    visibility,
                    allow_query_key: false,
                    updated_at: 0,
                })
                .collect()
        })
    }

    fn limit_state() -> impl Strategy<Value = LimitState> {
        (any::<i64>(), any::<i64>(), any::<i64>(), proptest::option::of(any::<i64>()), any::<i64>(), any::<i64>()).prop_map(
            |(burst, burst_remaining, burst_reset, quota, quota_remaining, quota_reset)| LimitState {
                burst,
                burst_remaining,
                burst_reset,
                quota,
                quota_remaining,
                quota_reset,
            },
        )
    }

    fn timestamp() -> impl Strategy<Value = i64> {
        prop_oneof![any::<i64>(), 0i64..4_000_000_000, Just(i64::MAX), Just(i64::MIN)]
    }

    proptest! {
        #[test]
        fn credentials_come_from_the_first_source_that_has_one(
            authorization in proptest::option::of(prop_oneof![
                "(?i:bearer)[ \t]{0,3}[ -~]{0,20}[ \t]{0,2}".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..24),
            ]),
            x_api_key in proptest::option::of(prop_oneof![
                "[ \t]{0,2}(eyJ[a-z.]{0,8}|tp_live_[0-9A-Za-z_]{0,50})[ \t]{0,2}".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..24),
            ]),
            query in proptest::option::of("((api_key|x|api_keys)=[a-z=]{0,4}&?){0,3}"),
            allow_query in any::<bool>(),
        ) {
            check_credentials(authorization.as_deref(), x_api_key.as_deref(), query.as_deref(), allow_query);
        }

        #[test]
        fn jwts_verify_by_the_rules(
            issuer in proptest::option::of("[ab]"),
            audience in proptest::option::of("[ab]"),
            consumer_claim in proptest::option::of(prop_oneof![Just("sub".to_owned()), Just("iss".to_owned()), Just("client_id".to_owned())]),
            leeway_seconds in proptest::option::of(prop_oneof![any::<i64>(), 0i64..100]),
            (exp, nbf, now) in (proptest::option::of(timestamp()), proptest::option::of(timestamp()), timestamp()),
            iss in proptest::option::of("[ab]|key_[0-9]{1,3}"),
            aud in proptest::option::of(proptest::collection::vec("[ab]", 1..3)),
            consumer in proptest::option::of(prop_oneof!["key_-?[0-9]{1,20}", "[ -~]{0,8}"]),
            tamper_at in proptest::option::of(any::<usize>()),
            arbitrary_token in "(eyJ[A-Za-z0-9_.-]{0,40})|[ -~]{0,20}",
        ) {
            let case = JwtCase { issuer, audience, consumer_claim, leeway_seconds, exp, nbf, iss, aud, consumer, now, tamper_at };
            check_jwt(&case, &arbitrary_token);
        }

        #[test]
        fn the_longest_matching_route_wins(
            apis in apis(),
            host in proptest::option::of("[aAB]{1,2}(\\.t)?(:[0-9]{0,3})?|\\[::1\\](:80)?"),
            path in "(/[ab]{0,2}){0,4}(\\?[a-z=]{0,3})?",
            failures in proptest::collection::vec(any::<u8>(), 0..4),
            now_us in 0i64..(1 << 53),
        ) {
            check_route_matching(&apis, host.as_deref(), &path, &failures, now_us);
        }

        #[test]
        fn rate_limit_headers_are_valid_structured_fields(
            burst in prop_oneof![any::<i64>(), 1i64..10_000_000],
            rate in prop_oneof![any::<i64>(), 1i64..1_000_000],
            quota in proptest::option::of(prop_oneof![any::<i64>(), 1i64..i64::MAX / 2]),
            period_secs in prop_oneof![any::<i64>(), 2_419_200i64..=2_678_400],
            state in limit_state(),
        ) {
            check_rate_limit_headers(burst, rate, quota, period_secs, state);
        }
    }
}
