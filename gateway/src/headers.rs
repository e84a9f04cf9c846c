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

fn header(s: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(s)).unwrap_or(HeaderValue::from_static(""))
}

impl LimitState {
    /// `RateLimit-Policy` value for a plan: the burst window is the time an empty burst
    /// allowance takes to refill at `rate`; the quota window is the period's length.
    pub fn policy_for(burst: i64, rate: i64, quota: Option<i64>, period_secs: i64) -> HeaderValue {
        let emission = (1_000_000 / rate.max(1)).max(1);
        let burst_window = (emission * burst.max(1) + 999_999) / 1_000_000;
        let mut s = String::with_capacity(64);
        let _ = write!(s, "\"burst\";q={};w={}", burst, burst_window.max(1));
        if let Some(q) = quota {
            let _ = write!(s, ", \"quota\";q={};w={}", q, period_secs.max(1));
        }
        header(s)
    }

    /// `RateLimit` value.
    pub fn remaining(&self) -> HeaderValue {
        let mut s = String::with_capacity(64);
        let _ = write!(s, "\"burst\";r={};t={}", self.burst_remaining.max(0), self.burst_reset.max(0));
        if self.quota.is_some() {
            let _ = write!(s, ", \"quota\";r={};t={}", self.quota_remaining.max(0), self.quota_reset.max(0));
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
}
