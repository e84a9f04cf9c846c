#![no_main]
//! Route matching: any set of APIs (prefixes, hosts, visibility, upstreams) and any request host
//! and path give the longest whole-segment prefix match, host-specific first, and a healthy
//! weighted target when there is one.

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use turnpike_gateway::fuzzing::check_route_matching;
use turnpike_store::{Api, Upstream, Visibility};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    apis: Vec<ApiSpec<'a>>,
    host: Option<Text<'a>>,
    path: Text<'a>,
    failures: Vec<u8>,
    now_us: u64,
}

#[derive(Debug, Arbitrary)]
struct ApiSpec<'a> {
    prefix: Text<'a>,
    /// Mapped onto DNS name characters: the admin form only accepts host names.
    host: Option<&'a [u8]>,
    visibility: u8,
    upstreams: Vec<(UpstreamUrl<'a>, u16)>,
}

/// Text either from a small alphabet (so that prefixes, paths and hosts collide often) or as is.
#[derive(Debug, Arbitrary)]
enum Text<'a> {
    Small(&'a [u8]),
    Raw(&'a str),
}

impl Text<'_> {
    fn render(&self, alphabet: &[u8]) -> String {
        match self {
            Text::Small(b) => b.iter().map(|c| char::from(alphabet[usize::from(*c) % alphabet.len()])).collect(),
            Text::Raw(s) => (*s).to_owned(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum UpstreamUrl<'a> {
    Http { host: u8, port: Option<u16>, path: Text<'a> },
    Https,
    Raw(&'a str),
}

impl UpstreamUrl<'_> {
    fn render(&self) -> String {
        match self {
            UpstreamUrl::Http { host, port, path } => {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("http://h{}.test{port}/{}", host % 4, path.render(b"/ab"))
            }
            UpstreamUrl::Https => "https://secure.test/v1".into(),
            UpstreamUrl::Raw(s) => (*s).to_owned(),
        }
    }
}

fuzz_target!(|input: Input<'_>| {
    let apis: Vec<Api> = input
        .apis
        .iter()
        .take(16)
        .enumerate()
        .map(|(i, a)| Api {
            id: i as i64,
            slug: format!("api{i}"),
            name: String::new(),
            description: String::new(),
            route_prefix: a.prefix.render(b"/ab/"),
            host: a.host.map(|h| h.iter().map(|c| char::from(b"aAbB.-0"[usize::from(*c) % 7])).collect()),
            upstreams: a.upstreams.iter().take(8).map(|(u, w)| Upstream { url: u.render(), weight: u32::from(*w % 1001) }).collect(),
            openapi: None,
            visibility: match a.visibility % 3 {
                0 => Visibility::Draft,
                1 => Visibility::Public,
                _ => Visibility::Private,
            },
            allow_query_key: false,
            updated_at: 0,
        })
        .collect();
    let host = input.host.as_ref().map(|h| h.render(b"aAbB.-0:[]1"));
    let path = input.path.render(b"/ab?=.%");
    let now_us = i64::try_from(input.now_us % (1 << 53)).unwrap_or(0);
    check_route_matching(&apis, host.as_deref(), &path, &input.failures, now_us);
});
