//! In-process counters, for the embedded single-node mode (and the fail-open fallback in Redis
//! mode): one short critical section per subscription (GCRA + quota), atomics for the buckets.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use turnpike_store::UsageRow;

use super::{limit_state, Admission, Bucket, BucketId, Decision, IdMap, Outcome, Verdict};

#[derive(Debug)]
struct SubState {
    tat_us: i64,
    period_start: i64,
    used: i64,
    /// Admitted since the last [`LocalCounters::take_unreconciled`] (fail-open fallback only).
    unreconciled: i64,
}

/// In-process counters.
#[derive(Debug)]
pub struct LocalCounters {
    pub(super) source: String,
    subs: IdMap<i64, Mutex<SubState>>,
    buckets: IdMap<BucketId, Arc<Bucket>>,
}

impl LocalCounters {
    /// Counters writing usage rows under `source` (unique per process: rows of different
    /// processes add up instead of overwriting each other).
    pub fn new(source: impl Into<String>) -> LocalCounters {
        LocalCounters { source: source.into(), subs: IdMap::default(), buckets: IdMap::default() }
    }

    /// Check and consume in process (the fail-open fallback calls this directly).
    pub(crate) fn admit_now(&self, a: &Admission) -> Decision {
        self.admit(a)
    }

    pub(super) fn admit(&self, a: &Admission) -> Decision {
        let bucket = a.bucket();
        let entry = self
            .subs
            .entry(a.sub_id)
            .or_insert_with(|| Mutex::new(SubState { tat_us: 0, period_start: a.period.start, used: a.seed_used, unreconciled: 0 }));
        // A std mutex held for a few arithmetic operations, never across an await.
        let mut st = entry.lock().unwrap_or_else(|p| p.into_inner());
        if st.period_start != a.period.start {
            st.period_start = a.period.start;
            st.used = 0;
            st.unreconciled = 0;
        }
        let new_tat = st.tat_us.max(a.now_us) + a.emission_us();
        let ahead = new_tat - a.now_us;
        if ahead > a.tau_us() {
            let prev_ahead = (st.tat_us - a.now_us).max(0);
            let limits = limit_state(a, prev_ahead, st.used);
            let retry_after = ((ahead - a.tau_us() + 999_999) / 1_000_000).max(1);
            return Decision { verdict: Verdict::RateLimited { retry_after }, limits, bucket };
        }
        if let Some(q) = a.quota {
            if st.used >= q {
                let limits = limit_state(a, (st.tat_us - a.now_us).max(0), st.used);
                return Decision { verdict: Verdict::QuotaExceeded { retry_after: limits.quota_reset.max(1) }, limits, bucket };
            }
        }
        st.tat_us = new_tat;
        st.used += 1;
        st.unreconciled += 1;
        let used = st.used;
        drop(st);
        drop(entry);
        let b = self.buckets.entry(bucket).or_default();
        b.admitted.fetch_add(1, Ordering::AcqRel);
        b.dirty.store(true, Ordering::Release);
        Decision { verdict: Verdict::Admitted, limits: limit_state(a, ahead, used), bucket }
    }

    pub(super) fn record(&self, id: &BucketId, o: &Outcome) {
        if let Some(b) = self.buckets.get(id) {
            b.record(o);
        }
    }

    /// Buckets changed since the last snapshot (the flag is cleared before the values are read,
    /// so a concurrent change marks the bucket again).
    pub(super) fn snapshot(&self) -> Vec<UsageRow> {
        self.buckets.iter().filter(|e| e.value().dirty.swap(false, Ordering::AcqRel)).map(|e| e.value().row(e.key())).collect()
    }

    /// Every bucket, changed or not (start-up recovery and tests).
    pub(super) fn snapshot_all(&self) -> Vec<UsageRow> {
        self.buckets.iter().map(|e| e.value().row(e.key())).collect()
    }

    /// The write of these rows failed: take them again next time.
    pub(super) fn remark(&self, rows: &[UsageRow]) {
        for r in rows {
            let id = BucketId { sub_id: r.subscription_id, key_id: r.key_id, api_id: r.api_id, hour: r.hour };
            if let Some(b) = self.buckets.get(&id) {
                b.dirty.store(true, Ordering::Release);
            }
        }
    }

    /// Requests admitted per (subscription, period start) since the last call, for adding to
    /// the shared quota counters after an outage; the state is reset so the next outage starts
    /// from the quota the gateway loads then. Give them back with
    /// [`restore_unreconciled`](Self::restore_unreconciled) if they could not be added.
    pub fn take_unreconciled(&self) -> Vec<(i64, i64, i64)> {
        let mut out = Vec::new();
        self.subs.retain(|sub_id, st| {
            let st = st.get_mut().unwrap_or_else(|p| p.into_inner());
            if st.unreconciled > 0 {
                out.push((*sub_id, st.period_start, st.unreconciled));
            }
            false
        });
        out
    }

    /// Undo [`take_unreconciled`](Self::take_unreconciled) after a failed reconciliation.
    pub fn restore_unreconciled(&self, items: &[(i64, i64, i64)]) {
        for (sub_id, period_start, n) in items {
            let e = self
                .subs
                .entry(*sub_id)
                .or_insert_with(|| Mutex::new(SubState { tat_us: 0, period_start: *period_start, used: 0, unreconciled: 0 }));
            let mut st = e.lock().unwrap_or_else(|p| p.into_inner());
            if st.period_start == *period_start {
                st.unreconciled += n;
            }
        }
    }

    /// Forget flushed buckets older than `before`.
    pub(super) fn prune(&self, before_hour: i64) {
        self.buckets.retain(|id, b| id.hour >= before_hour || b.dirty.load(Ordering::Acquire));
    }
}
