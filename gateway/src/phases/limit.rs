//! Phase 3, limit: the plan's rate limit and quota, checked and consumed atomically in one step
//! (one Lua script in Redis, one critical section in process); the admitted count is the
//! billable truth. Rejected requests consume nothing. While Redis is unreachable each plan's
//! policy decides: fail closed (503) or admit on this gateway's own limits for a grace period.

use std::sync::atomic::Ordering;

use http::header::{self, HeaderValue};

use super::authenticate::Authenticated;
use super::{Ctx, Step};
use crate::counters::{Admission, Counters, Decision, Verdict};
use crate::gateway::Inner;
use crate::headers::LimitState;
use crate::problem::Problem;
use crate::routes::Route;

/// An admitted request: counted, in `decision.bucket`, by `metered_by`.
pub(crate) struct Admitted<'a> {
    pub(crate) decision: Decision,
    /// The counters the request was counted by (the fail-open fallback's during an outage).
    pub(crate) metered_by: &'a Counters,
    /// `RateLimit-Policy` and `RateLimit` for the response.
    pub(crate) policy: HeaderValue,
    pub(crate) remaining: HeaderValue,
}

pub(crate) async fn run<'a>(inner: &'a Inner, route: &Route, auth: &Authenticated, ctx: &Ctx) -> Step<Admitted<'a>> {
    let (identity, grant) = (&auth.identity, auth.grant());
    let now_us = ctx.now_us;
    let now = now_us.div_euclid(1_000_000);
    let (period, policy) = grant.period_at(now, |p| LimitState::policy_for(grant.burst, grant.rate, grant.quota, p.end - p.start));
    let admission = Admission {
        sub_id: grant.sub_id,
        key_id: identity.key_id,
        api_id: route.api_id,
        now_us,
        rate: grant.rate,
        burst: grant.burst,
        quota: grant.quota,
        period,
        seed_used: if grant.seed_period_start == period.start { grant.seed_used } else { 0 },
    };
    let mut metered_by = &inner.counters;
    let decision = match inner.counters.admit(&admission).await {
        Ok(d) => {
            if inner.outage_since.load(Ordering::Relaxed) != 0 {
                outage_over(inner);
            }
            d
        }
        Err(e) => {
            let since = match inner.outage_since.compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    tracing::error!(error = %e, "counter store unavailable: fail-closed plans answer 503, fail-open plans run on local limits");
                    now
                }
                Err(t) => t,
            };
            match (&inner.fallback, grant.fail_open) {
                (Some((local, as_counters)), Some(grace)) if now - since < grace => {
                    inner.decisions[4].increment(1);
                    metered_by = as_counters;
                    local.admit_now(&admission)
                }
                _ => {
                    inner.decisions[3].increment(1);
                    return Err(Problem::Unavailable.response());
                }
            }
        }
    };
    let remaining = decision.limits.remaining();
    match decision.verdict {
        Verdict::Admitted => {
            if std::ptr::eq(metered_by, &inner.counters) {
                inner.decisions[0].increment(1);
            }
        }
        Verdict::RateLimited { retry_after } | Verdict::QuotaExceeded { retry_after } => {
            inner.decisions[if matches!(decision.verdict, Verdict::RateLimited { .. }) { 1 } else { 2 }].increment(1);
            let problem =
                if matches!(decision.verdict, Verdict::RateLimited { .. }) { Problem::RateLimited } else { Problem::QuotaExceeded };
            let mut r = problem.response_with(&format!(",\"retry_after\":{retry_after}"));
            let h = r.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            h.insert(&crate::proxy::RATELIMIT_POLICY, policy);
            h.insert(&crate::proxy::RATELIMIT, remaining);
            return Err(r);
        }
    }
    if now - identity.last_touch.load(Ordering::Relaxed) >= 60 {
        identity.last_touch.store(now, Ordering::Relaxed);
        inner.touches.lock().unwrap_or_else(|p| p.into_inner()).insert(identity.key_id, now);
    }
    Ok(Admitted { decision, metered_by, policy, remaining })
}

/// The counter store answers again: add what the fail-open fallback admitted meanwhile to the
/// shared quota counters (its usage rows reach the database under its own source).
fn outage_over(inner: &Inner) {
    let since = inner.outage_since.swap(0, Ordering::AcqRel);
    if since == 0 {
        return;
    }
    let (Some((local, _)), Counters::Redis(redis)) = (&inner.fallback, &inner.counters) else { return };
    let (local, redis) = (local.clone(), redis.clone());
    tracing::info!(outage_started = since, "counter store back; reconciling fail-open admissions");
    tokio::spawn(async move {
        let items = local.take_unreconciled();
        for (i, (sub_id, period_start, n)) in items.iter().enumerate() {
            if let Err(e) = redis.add_used(*sub_id, *period_start, *n).await {
                tracing::warn!(error = %e, "reconciliation failed; retrying after the next outage ends");
                local.restore_unreconciled(&items[i..]);
                return;
            }
        }
    });
}
