#![no_main]
//! JWT credentials: HS256 tokens with chosen claims verify exactly by the rules (time with
//! leeway, issuer, audience, consumer claim) at any clock value; tampered tokens and any text
//! are refused without a panic.

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use turnpike_gateway::fuzzing::{check_jwt, JwtCase};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    issuer: Option<Name>,
    audience: Option<Name>,
    consumer_claim: Option<Claim>,
    leeway_seconds: Option<i64>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iss: Option<Name>,
    aud: Option<Vec<Name>>,
    consumer: Option<Consumer<'a>>,
    now: i64,
    tamper_at: Option<usize>,
    token: &'a str,
}

/// Issuers and audiences from a small set, so that they match often.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Name {
    A,
    B,
    Key7,
}

impl Name {
    fn text(self) -> String {
        match self {
            Name::A => "a".into(),
            Name::B => "b".into(),
            Name::Key7 => "key_7".into(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Claim {
    Sub,
    Iss,
    ClientId,
}

#[derive(Debug, Arbitrary)]
enum Consumer<'a> {
    Key(i64),
    Text(&'a str),
}

fuzz_target!(|i: Input<'_>| {
    let case = JwtCase {
        issuer: i.issuer.map(Name::text),
        audience: i.audience.map(Name::text),
        consumer_claim: i.consumer_claim.map(|c| match c {
            Claim::Sub => "sub".into(),
            Claim::Iss => "iss".into(),
            Claim::ClientId => "client_id".into(),
        }),
        leeway_seconds: i.leeway_seconds,
        exp: i.exp,
        nbf: i.nbf,
        iss: i.iss.map(Name::text),
        aud: i.aud.map(|a| a.into_iter().take(4).map(Name::text).collect::<Vec<_>>()).filter(|a| !a.is_empty()),
        consumer: i.consumer.map(|c| match c {
            Consumer::Key(n) => format!("key_{n}"),
            Consumer::Text(s) => s.to_owned(),
        }),
        now: i.now,
        tamper_at: i.tamper_at,
    };
    check_jwt(&case, i.token);
});
