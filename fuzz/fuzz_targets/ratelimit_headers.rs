#![no_main]
//! `RateLimit-Policy` and `RateLimit` values for any plan and limiter state: valid Structured
//! Field lists whose numbers round-trip (clamped to the sf-integer range).

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use turnpike_gateway::fuzzing::{check_rate_limit_headers, LimitState};

#[derive(Debug, Arbitrary)]
struct Input {
    burst: i64,
    rate: i64,
    quota: Option<i64>,
    period_secs: i64,
    burst_remaining: i64,
    burst_reset: i64,
    quota_remaining: i64,
    quota_reset: i64,
}

fuzz_target!(|i: Input| {
    let state = LimitState {
        burst: i.burst,
        burst_remaining: i.burst_remaining,
        burst_reset: i.burst_reset,
        quota: i.quota,
        quota_remaining: i.quota_remaining,
        quota_reset: i.quota_reset,
    };
    check_rate_limit_headers(i.burst, i.rate, i.quota, i.period_secs, state);
});
