#![no_main]
//! Key parsing: `ApiKey::verify`/`parse` on any text and on typos of real keys, and the
//! gateway's credential extraction (`Authorization: Bearer`, `X-API-Key`, `?api_key=`, JWT shape).

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use turnpike_gateway::fuzzing::check_credentials;
use turnpike_store::fuzzing::{check_generated_key, check_presented_key};

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    /// Any text presented as a key (also sent as a Bearer token).
    Presented(&'a str),
    /// A real key from these bits, with up to four characters replaced.
    Typo { random: [u8; 32], at: usize, in_checksum: bool, replacement: &'a [u8] },
    /// A request's credential-bearing parts.
    Credentials { authorization: Option<Authorization<'a>>, x_api_key: Option<&'a [u8]>, query: Option<&'a str>, allow_query: bool },
}

#[derive(Debug, Arbitrary)]
enum Authorization<'a> {
    Raw(&'a [u8]),
    /// `Bearer` in some letter case with some whitespace around the token.
    Bearer {
        case: u8,
        before: u8,
        between: u8,
        after: u8,
        token: &'a str,
    },
}

fn whitespace(n: u8) -> impl Iterator<Item = u8> {
    (0..n % 4).map(move |i| if (n >> (4 + i)) & 1 == 1 { b'\t' } else { b' ' })
}

impl Authorization<'_> {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Authorization::Raw(b) => b.to_vec(),
            Authorization::Bearer { case, before, between, after, token } => {
                let mut v: Vec<u8> = whitespace(*before).collect();
                v.extend(b"bearer".iter().enumerate().map(|(i, c)| if (case >> i) & 1 == 1 { c.to_ascii_uppercase() } else { *c }));
                v.push(b' ');
                v.extend(whitespace(*between));
                v.extend_from_slice(token.as_bytes());
                v.extend(whitespace(*after));
                v
            }
        }
    }
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Presented(s) => {
        check_presented_key(s);
        check_credentials(Some(format!("Bearer {s}").as_bytes()), Some(s.as_bytes()), None, false);
    }
    Input::Typo { random, at, in_checksum, replacement } => check_generated_key(random, at, in_checksum, replacement),
    Input::Credentials { authorization, x_api_key, query, allow_query } => {
        check_credentials(authorization.map(|a| a.bytes()).as_deref(), x_api_key, query, allow_query)
    }
});
