//! IETF `RateLimit` / `RateLimit-Policy` header values (draft-ietf-httpapi-ratelimit-headers),
//! one list member for the burst window and one for the monthly quota; and the small writers the
//! request path builds its per-request values with.

use std::fmt::Write;

use bytes::Bytes;
use http::HeaderValue;

/// The decimal digits of `n`, without `core::fmt`. Issue 14: a `write!` of an integer goes
/// through the formatter's dynamic dispatch and padding logic (callgrind: ~250 instructions per
/// integer); this is a few per digit.
pub(crate) fn decimal(n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[i..];
        }
    }
}

/// Append `n` in decimal (with a `-` if negative) to `out`.
pub(crate) fn push_int(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(decimal(n.unsigned_abs(), &mut [0; 20]));
}

/// A header value assembled on the stack and copied once into its `HeaderValue` (one allocation
/// of the exact size; a `String` turned into `Bytes` costs a second one when its capacity is not
/// its length). Bytes past `N` are dropped: callers size `N` for their longest value.
pub(crate) struct Assembled<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Assembled<N> {
    pub(crate) fn new() -> Self {
        Assembled { buf: [0; N], len: 0 }
    }

    pub(crate) fn push(&mut self, s: &[u8]) -> &mut Self {
        let end = (self.len + s.len()).min(N);
        self.buf[self.len..end].copy_from_slice(&s[..end - self.len]);
        self.len = end;
        self
    }

    /// A non-negative integer (every Structured Field integer written here is).
    pub(crate) fn int(&mut self, n: i64) -> &mut Self {
        self.push(decimal(n.unsigned_abs(), &mut [0; 20]))
    }

    pub(crate) fn value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.buf[..self.len]).unwrap_or(HeaderValue::from_static(""))
    }
}

/// What the limiter knows after a decision, for the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    /// Burst size (requests at once).
    pub burst: i64,
    /// Requests left in the burst allowance.
    pub burst_remaining: i64,
    /// Seconds until the burst allowance is full again.
    pub burst_reset: i64,
    /// Quota per period, if limited.
    pub quota: Option<i64>,
    /// Requests left this period.
    pub quota_remaining: i64,
    /// Seconds until the period ends.
    pub quota_reset: i64,
}

/// The largest Structured Field integer (RFC 8941 §3.3.1: at most 15 digits). A longer number
/// makes strict parsers drop the whole field, so larger counts (quotas may be set up to
/// `i64::MAX / 2`) are sent as this.
const SF_INTEGER_MAX: i64 = 999_999_999_999_999;

/// `n` as a Structured Field integer of at least `min`.
fn sf(n: i128, min: i64) -> i64 {
    i64::try_from(n.clamp(i128::from(min), i128::from(SF_INTEGER_MAX))).unwrap_or(SF_INTEGER_MAX)
}

fn header(s: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(s)).unwrap_or(HeaderValue::from_static(""))
}

impl LimitState {
    /// `RateLimit-Policy` value for a plan: the burst window is the time an empty burst
    /// allowance takes to refill at `rate`; the quota window is the period's length.
    pub fn policy_for(burst: i64, rate: i64, quota: Option<i64>, period_secs: i64) -> HeaderValue {
        let emission = (1_000_000 / rate.max(1)).max(1);
        // In i128: an emission interval times a burst overflows i64 for absurd plans.
        let burst_window = (i128::from(emission) * i128::from(burst.max(1)) + 999_999) / 1_000_000;
        let mut s = String::with_capacity(64);
        let _ = write!(s, "\"burst\";q={};w={}", sf(burst.into(), 0), sf(burst_window, 1));
        if let Some(q) = quota {
            let _ = write!(s, ", \"quota\";q={};w={}", sf(q.into(), 0), sf(period_secs.into(), 1));
        }
        header(s)
    }

    /// `RateLimit` value. Built for every admitted request, so without `core::fmt` (issue 14:
    /// `remaining` cost 1,511 instructions per request in callgrind, most of it in `core::fmt`; the policy value, which only
    /// changes with the plan and period, stays formatted and cached per grant).
    pub fn remaining(&self) -> HeaderValue {
        // The longest value: two members of 8 + 15 + 3 + 15 bytes, and ", ".
        let mut v = Assembled::<96>::new();
        v.push(b"\"burst\";r=").int(sf(self.burst_remaining.into(), 0)).push(b";t=").int(sf(self.burst_reset.into(), 0));
        if self.quota.is_some() {
            v.push(b", \"quota\";r=").int(sf(self.quota_remaining.into(), 0)).push(b";t=").int(sf(self.quota_reset.into(), 0));
        }
        v.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_structured_field_lists() {
        let s = LimitState { burst: 20, burst_remaining: 19, burst_reset: 0, quota: Some(1000), quota_remaining: 999, quota_reset: 100 };
        assert_eq!(LimitState::policy_for(20, 10, Some(1000), 2_678_400), "\"burst\";q=20;w=2, \"quota\";q=1000;w=2678400");
        assert_eq!(LimitState::policy_for(20, 10, None, 2_678_400), "\"burst\";q=20;w=2");
        assert_eq!(s.remaining(), "\"burst\";r=19;t=0, \"quota\";r=999;t=100");
        let unlimited = LimitState { quota: None, ..s };
        assert_eq!(unlimited.remaining(), "\"burst\";r=19;t=0");
    }

    /// Found by `fuzzing::check_rate_limit_headers` (proptest and the `ratelimit_headers` fuzz
    /// target): a quota the plan form accepts (up to `i64::MAX / 2`) was written with 16+ digits,
    /// which is not a Structured Field integer, and a huge burst overflowed the window.
    #[test]
    fn numbers_stay_valid_sf_integers() {
        let big = LimitState {
            burst: 0,
            burst_remaining: 0,
            burst_reset: 0,
            quota: Some(0),
            quota_remaining: 1_000_000_000_000_000,
            quota_reset: 0,
        };
        assert_eq!(big.remaining(), "\"burst\";r=0;t=0, \"quota\";r=999999999999999;t=0");
        assert_eq!(LimitState { burst_reset: i64::MAX, quota: None, ..big }.remaining(), "\"burst\";r=0;t=999999999999999");
        assert_eq!(
            LimitState::policy_for(20, 10, Some(i64::MAX / 2), 2_678_400),
            "\"burst\";q=20;w=2, \"quota\";q=999999999999999;w=2678400"
        );
        assert_eq!(LimitState::policy_for(i64::MAX, 1, None, 0), "\"burst\";q=999999999999999;w=999999999999999");
        assert_eq!(LimitState::policy_for(-5, i64::MIN, Some(-1), i64::MIN), "\"burst\";q=0;w=1, \"quota\";q=0;w=1");
        let longest = LimitState { burst: 1, burst_remaining: i64::MAX, burst_reset: i64::MAX, quota: Some(1), ..big };
        let longest = longest.remaining();
        assert_eq!(longest, "\"burst\";r=999999999999999;t=999999999999999, \"quota\";r=999999999999999;t=0");
    }

    #[test]
    fn integers_are_written_like_display() {
        for n in [0, 7, 10, 99, 100, 123_456_789, i64::MAX, -1, -10, i64::MIN] {
            let mut out = Vec::new();
            push_int(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes(), "{n}");
        }
    }
}
