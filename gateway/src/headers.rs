//! IETF `RateLimit` / `RateLimit-Policy` header values (draft-ietf-httpapi-ratelimit-headers),
//! one list member for the burst window and one for the monthly quota.

use std::fmt::Write;

use bytes::Bytes;
use http::HeaderValue;

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

    /// `RateLimit` value.
    pub fn remaining(&self) -> HeaderValue {
        let mut s = String::with_capacity(64);
        let _ = write!(s, "\"burst\";r={};t={}", sf(self.burst_remaining.into(), 0), sf(self.burst_reset.into(), 0));
        if self.quota.is_some() {
            let _ = write!(s, ", \"quota\";r={};t={}", sf(self.quota_remaining.into(), 0), sf(self.quota_reset.into(), 0));
        }
        header(s)
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
    }
}
