#![no_main]
//! `Stripe-Signature` parsing and verification: any header is judged without a panic, and a
//! header Stripe would send verifies exactly within the tolerance of the clock, at any clock
//! and timestamp value.

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use turnpike_stripe::fuzzing::{check_signature_header, check_signed};

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    Header { header: Option<&'a str>, payload: &'a [u8], now: i64 },
    Signed { secret: &'a str, payload: &'a [u8], t: i64, now: Now, extra: Vec<String>, at: usize },
}

/// The clock: near the timestamp (where the tolerance matters) or anywhere.
#[derive(Debug, Arbitrary)]
enum Now {
    Skew(i16),
    At(i64),
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Header { header, payload, now } => check_signature_header("whsec_fuzz", payload, header, now),
    Input::Signed { secret, payload, t, now, extra, at } => {
        let now = match now {
            Now::Skew(s) => t.wrapping_add(i64::from(s)),
            Now::At(n) => n,
        };
        check_signed(secret, payload, t, now, &extra, at);
    }
});
