//! Counter stores: the limiter step (rate + quota, checked and consumed atomically, rejected
//! requests consume nothing) and the per key × API × hour usage buckets that it feeds.
//!
//! * [`LocalCounters`]: in-process, for the embedded single-node mode. One short critical section
//!   per subscription (GCRA + quota), atomics for the buckets.
//! * [`RedisCounters`]: one Lua script per request does GCRA, quota and the billable count in a
//!   single round trip; every key the script touches carries the subscription's hash tag, so it
//!   works on Redis Cluster too.

//!
//! This module is the interface both share ([`Counters`], [`Admission`], [`Decision`], …);
//! `local` and `redis` hold the two implementations.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use turnpike_store::period::Period;
use turnpike_store::UsageRow;

use crate::headers::LimitState;

mod local;
mod redis;

pub use self::local::LocalCounters;
pub use self::redis::RedisCounters;

/// One admission request.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// Subscription (rate and quota are per app × API).
    pub sub_id: i64,
    /// Key presented.
    pub key_id: i64,
    /// API called.
    pub api_id: i64,
    /// Now, unix microseconds.
    pub now_us: i64,
    /// Sustained requests per second (≥ 1).
    pub rate: i64,
    /// Burst (≥ 1).
    pub burst: i64,
    /// Quota per period.
    pub quota: Option<i64>,
    /// Current billing period.
    pub period: Period,
    /// Requests already used this period according to the database when the key was loaded
    /// (seeds a counter that does not exist yet, e.g. after a restart).
    pub seed_used: i64,
}

impl Admission {
    fn bucket(&self) -> BucketId {
        BucketId {
            sub_id: self.sub_id,
            key_id: self.key_id,
            api_id: self.api_id,
            hour: turnpike_store::clock::hour_start(self.now_us / 1_000_000),
        }
    }
    fn emission_us(&self) -> i64 {
        (1_000_000 / self.rate.max(1)).max(1)
    }
    fn tau_us(&self) -> i64 {
        self.emission_us() * self.burst.max(1)
    }
}

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; forward it.
    Admitted,
    /// Over the rate; retry after this many seconds.
    RateLimited { retry_after: i64 },
    /// Quota for the period used up; retry after this many seconds (the period's end).
    QuotaExceeded { retry_after: i64 },
}

/// Verdict plus header state.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// For `RateLimit` headers.
    pub limits: LimitState,
    /// The bucket the request was counted in.
    pub bucket: BucketId,
}

/// Identity of a usage bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BucketId {
    /// Subscription.
    pub sub_id: i64,
    /// Key.
    pub key_id: i64,
    /// API.
    pub api_id: i64,
    /// Hour start, unix seconds.
    pub hour: i64,
}

/// What happened after admission, recorded into the request's bucket.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// Response status.
    pub status: u16,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Total latency, ms.
    pub latency_ms: u64,
}

/// Counter store failures (only Redis can fail).
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    /// Redis answered with an error or the connection broke.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Redis did not answer within the configured timeout.
    #[error("redis timed out")]
    Timeout,
    /// A Redis Cluster node reports the cluster down (a master lost and its slots unserved).
    #[error("redis cluster state is not ok")]
    ClusterDown,
}

/// Hasher for maps keyed by the gateway's own ids (subscriptions, usage buckets): database ids
/// and hours, never chosen by a client, so they need no SipHash (issue 14: SipHash showed 2,843
/// instructions per request in callgrind; three of its four uses per request were the
/// subscription and the 32-byte bucket id, at admission and when the outcome is recorded; the
/// key cache, keyed by what clients present, keeps SipHash). Multiply-rotate per word, then splitmix64's
/// finaliser so that every bit of the hash depends on every bit of the key.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        splitmix64(self.0)
    }
}

/// splitmix64's finaliser: a bijection on u64 in which every output bit depends on every input
/// bit (the id hasher's finish, and the request id's counter half).
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A map keyed by the gateway's own ids.
pub(crate) type IdMap<K, V> = dashmap::DashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

#[allow(clippy::too_many_arguments)]
fn limit_state(a: &Admission, tat_minus_now: i64, used: i64) -> LimitState {
    let t = a.emission_us();
    let now_s = a.now_us / 1_000_000;
    LimitState {
        burst: a.burst,
        burst_remaining: ((a.tau_us() - tat_minus_now) / t).clamp(0, a.burst),
        burst_reset: (tat_minus_now.max(0) + 999_999) / 1_000_000,
        quota: a.quota,
        quota_remaining: a.quota.map(|q| q - used).unwrap_or(0),
        quota_reset: a.period.end - now_s,
    }
}

/// One usage bucket's counts, shared by both implementations (Redis mode records outcomes
/// locally and adds them to Redis in batches).
#[derive(Debug, Default)]
struct Bucket {
    /// Changed since the last snapshot: only changed buckets are written to the database.
    dirty: AtomicBool,
    admitted: AtomicI64,
    s2: AtomicI64,
    s3: AtomicI64,
    s4: AtomicI64,
    s5: AtomicI64,
    bytes_in: AtomicI64,
    bytes_out: AtomicI64,
    latency_ms: AtomicI64,
}

impl Bucket {
    fn record(&self, o: &Outcome) {
        let class = match o.status {
            // Informational (101 Switching Protocols) counts with the successes.
            100..=299 => &self.s2,
            300..=399 => &self.s3,
            400..=499 => &self.s4,
            _ => &self.s5,
        };
        class.fetch_add(1, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Release);
        self.bytes_in.fetch_add(i64::try_from(o.bytes_in).unwrap_or(i64::MAX), Ordering::Relaxed);
        self.bytes_out.fetch_add(i64::try_from(o.bytes_out).unwrap_or(i64::MAX), Ordering::Relaxed);
        self.latency_ms.fetch_add(i64::try_from(o.latency_ms).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    fn row(&self, id: &BucketId) -> UsageRow {
        UsageRow {
            key_id: id.key_id,
            api_id: id.api_id,
            subscription_id: id.sub_id,
            hour: id.hour,
            admitted: self.admitted.load(Ordering::Acquire),
            status_2xx: self.s2.load(Ordering::Relaxed),
            status_3xx: self.s3.load(Ordering::Relaxed),
            status_4xx: self.s4.load(Ordering::Relaxed),
            status_5xx: self.s5.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            latency_ms_sum: self.latency_ms.load(Ordering::Relaxed),
            generation: 0,
        }
    }
}

/// The counter store in use.
#[derive(Debug, Clone)]
pub enum Counters {
    /// In-process.
    Local(Arc<LocalCounters>),
    /// Redis.
    Redis(Arc<RedisCounters>),
}

impl Counters {
    /// Check and consume rate + quota; count the request if admitted.
    pub async fn admit(&self, a: &Admission) -> Result<Decision, CounterError> {
        match self {
            Counters::Local(c) => Ok(c.admit(a)),
            Counters::Redis(c) => c.admit(a).await,
        }
    }

    /// Record the outcome of an admitted request.
    pub fn record(&self, id: &BucketId, o: &Outcome) {
        match self {
            Counters::Local(c) => c.record(id, o),
            Counters::Redis(c) => c.record(id, o),
        }
    }

    /// Absolute values of the buckets that changed since the last snapshot, for the flusher.
    /// If writing them fails, hand them back with [`Counters::remark`].
    pub async fn snapshot(&self, now: i64) -> Result<Vec<UsageRow>, CounterError> {
        match self {
            Counters::Local(c) => Ok(c.snapshot()),
            Counters::Redis(c) => c.snapshot(now, None).await,
        }
    }

    /// Absolute values of every bucket of the last `hours` hours (start-up recovery after a
    /// crash; Redis mode sweeps the shared dirty sets).
    pub async fn snapshot_hours(&self, now: i64, hours: i64) -> Result<Vec<UsageRow>, CounterError> {
        let hour = turnpike_store::clock::hour_start(now);
        match self {
            Counters::Local(c) => Ok(c.snapshot_all()),
            Counters::Redis(c) => c.snapshot(now, Some(&(0..hours).map(|i| hour - i * 3600).collect::<Vec<_>>())).await,
        }
    }

    /// Writing these snapshot rows failed: include them in the next snapshot again.
    pub fn remark(&self, rows: &[UsageRow]) {
        match self {
            Counters::Local(c) => c.remark(rows),
            Counters::Redis(c) => {
                let ids: Vec<BucketId> =
                    rows.iter().map(|r| BucketId { sub_id: r.subscription_id, key_id: r.key_id, api_id: r.api_id, hour: r.hour }).collect();
                c.remark_ids(&ids);
            }
        }
    }

    /// Drop buckets that can no longer change, after a successful flush.
    pub fn prune(&self, now: i64) {
        if let Counters::Local(c) = self {
            c.prune(turnpike_store::clock::hour_start(now) - 2 * 3600);
        }
    }

    /// The usage-row source name.
    pub fn source(&self) -> &str {
        match self {
            Counters::Local(c) => &c.source,
            Counters::Redis(_) => "redis",
        }
    }

    /// Whether the counter store answers.
    pub async fn ping(&self) -> Result<(), CounterError> {
        match self {
            Counters::Local(_) => Ok(()),
            Counters::Redis(c) => c.ping().await,
        }
    }

    /// `local` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self {
            Counters::Local(_) => "local",
            Counters::Redis(_) => "redis",
        }
    }
}
